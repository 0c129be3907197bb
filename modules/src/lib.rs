//! Ansible binary modules for operating etcd clusters.
//!
//! [`protocol`] speaks Ansible's module protocol for every module,
//! [`connection`] turns the shared connection options into etcd clients,
//! and each module lives in its own file beside its argument struct.

pub mod alloc;
pub mod bbolt;
pub mod connection;
pub mod doctor;
pub mod downgrade;
pub mod etcd_version;
pub mod fsutil;
pub mod health;
pub mod maintenance;
pub mod member;
pub mod multicall;
pub mod protocol;
pub mod remote_shell;
pub mod restore;
pub mod restore_versions;
pub mod snapshot;
pub mod snapshot_file;
pub mod version_endpoint;
