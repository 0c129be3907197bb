//! The `etcd_snapshot` Ansible binary module.

/// See [`etcd_modules::snapshot_file::ChunkCache`]: streaming through musl's
/// malloc otherwise page-faults on every chunk.
#[global_allocator]
static ALLOCATOR: etcd_modules::snapshot_file::ChunkCache =
    etcd_modules::snapshot_file::ChunkCache::new();

fn main() {
    etcd_modules::protocol::run_module::<etcd_modules::snapshot::Snapshot>()
}
