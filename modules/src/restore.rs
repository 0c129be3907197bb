//! `etcd_restore` (in progress).
