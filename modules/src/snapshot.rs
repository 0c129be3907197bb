//! `etcd_snapshot` (in progress).
