//! The `etcd_snapshot` Ansible binary module.
fn main() {
    etcd_modules::protocol::run_module::<etcd_modules::snapshot::Snapshot>()
}
