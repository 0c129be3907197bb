//! The `etcd_doctor` Ansible binary module.
fn main() {
    etcd_modules::protocol::run_module::<etcd_modules::doctor::Doctor>()
}
