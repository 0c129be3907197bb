//! The `etcd_maintenance` Ansible binary module.
fn main() {
    etcd_modules::protocol::run_module::<etcd_modules::maintenance::Maintenance>()
}
