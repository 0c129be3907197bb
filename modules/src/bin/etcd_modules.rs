//! `etcd_modules`: every module in one multi-call binary, run as the module
//! whose name it is invoked under (see [`etcd_modules::multicall`]).

/// The snapshot stream's allocator (see [`etcd_modules::alloc::ChunkCache`]):
/// the other modules allocate few blocks of the sizes it caches.
#[global_allocator]
static ALLOCATOR: etcd_modules::alloc::ChunkCache = etcd_modules::alloc::ChunkCache::new();

fn main() {
    etcd_modules::multicall::main()
}
