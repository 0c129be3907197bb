//! `etcd_member` (in progress).
