//! The `etcd_member` Ansible binary module.
fn main() {
    etcd_modules::protocol::run_module::<etcd_modules::member::EtcdMember>()
}
