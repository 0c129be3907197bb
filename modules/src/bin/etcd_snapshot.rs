//! The `etcd_snapshot` Ansible binary module.

/// See [`etcd_modules::alloc::ChunkCache`]: streaming through musl's
/// malloc otherwise page-faults on every chunk.
#[global_allocator]
static ALLOCATOR: etcd_modules::alloc::ChunkCache = etcd_modules::alloc::ChunkCache::new();

fn main() {
    etcd_modules::protocol::run_module::<etcd_modules::snapshot::Snapshot>()
}
