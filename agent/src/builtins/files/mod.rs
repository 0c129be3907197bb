//! File builtins run with plain POSIX tools on the target (no Python): `copy`, `template`,
//! `fetch` and `stat`, one file each, over the remote path layer (`remote.rs`) and the content
//! transfer (`transfer.rs`) that `file` and `lineinfile` share. Results carry the fields
//! Ansible's modules return.

pub(crate) mod content;
pub mod copy;
pub mod fetch;
pub(crate) mod remote;
pub mod stat;
pub mod template;
pub(crate) mod transfer;

pub(crate) use remote::{add_path_info, fail, info, mode_arg, set_attrs, sh, Info, R};
pub(crate) use transfer::write_remote;
