//! The `etcd_restore` Ansible binary module.
fn main() {
    etcd_modules::protocol::run_module::<etcd_modules::restore::Restore>()
}
