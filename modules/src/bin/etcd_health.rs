//! The `etcd_health` Ansible binary module.
fn main() {
    etcd_modules::protocol::run_module::<etcd_modules::health::Health>()
}
