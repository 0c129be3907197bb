//! The `etcd_snapshot` binary's global allocator.

/// A global allocator for the `etcd_snapshot` binary: the system allocator
/// plus a small cache of freed medium-sized blocks.
///
/// Why: musl's malloc (the modules are static musl binaries) returns freed
/// blocks of a few tens of KiB to the kernel at once, and a snapshot
/// stream allocates and frees several such buffers per 32 KiB message, so
/// each message cost a dozen fresh page faults (>100k per 200 MB, most of
/// the module's CPU time). Reusing the last freed blocks of the same size
/// removes that. Bounded: at most [`CACHE_SLOTS`] blocks and
/// [`CACHE_BYTES`] bytes are held.
pub struct ChunkCache {
    locked: std::sync::atomic::AtomicBool,
    state: std::cell::UnsafeCell<CacheState>,
}

/// Blocks kept for reuse at most.
pub const CACHE_SLOTS: usize = 32;
/// Bytes kept for reuse at most.
pub const CACHE_BYTES: usize = 4 << 20;

struct CacheState {
    slots: [(usize, *mut u8); CACHE_SLOTS],
    bytes: usize,
}

// SAFETY: the state is only touched with `locked` held.
unsafe impl Sync for ChunkCache {}

impl Default for ChunkCache {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkCache {
    /// An empty cache (usable in a `static`).
    pub const fn new() -> Self {
        ChunkCache {
            locked: std::sync::atomic::AtomicBool::new(false),
            state: std::cell::UnsafeCell::new(CacheState {
                slots: [(0, std::ptr::null_mut()); CACHE_SLOTS],
                bytes: 0,
            }),
        }
    }

    fn cacheable(layout: std::alloc::Layout) -> bool {
        // Alignment up to 16 is what malloc gives every block, so a cached
        // block fits any such request of the same size.
        layout.align() <= 16 && (4096..=(1 << 20)).contains(&layout.size())
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut CacheState) -> T) -> T {
        use std::sync::atomic::Ordering;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        // SAFETY: we hold the lock.
        let out = f(unsafe { &mut *self.state.get() });
        self.locked.store(false, Ordering::Release);
        out
    }
}

// SAFETY: every block handed out comes from `System` with a layout of the
// same size and an alignment it satisfies; blocks go back to `System` or
// into the cache, never both.
unsafe impl std::alloc::GlobalAlloc for ChunkCache {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if Self::cacheable(layout) {
            let size = layout.size();
            let cached = self.with_state(|st| {
                let slot = st
                    .slots
                    .iter_mut()
                    .find(|(s, p)| *s == size && !p.is_null())?;
                let ptr = std::mem::replace(slot, (0, std::ptr::null_mut())).1;
                st.bytes -= size;
                Some(ptr)
            });
            if let Some(ptr) = cached {
                return ptr;
            }
        }
        // SAFETY: forwarded as is.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        if Self::cacheable(layout) {
            let size = layout.size();
            let kept = self.with_state(|st| {
                if st.bytes + size > CACHE_BYTES {
                    return false;
                }
                match st.slots.iter_mut().find(|(_, p)| p.is_null()) {
                    Some(slot) => {
                        *slot = (size, ptr);
                        st.bytes += size;
                        true
                    }
                    None => false,
                }
            });
            if kept {
                return;
            }
        }
        // SAFETY: `ptr` came from `System` (directly or via the cache) with this size.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // Growing buffers (h2 and tonic read buffers) go through here once
        // per message: route them through the cache too.
        // SAFETY: the caller guarantees new_size is valid for layout's alignment.
        let new_layout =
            unsafe { std::alloc::Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !Self::cacheable(layout) && !Self::cacheable(new_layout) {
            // SAFETY: forwarded as is.
            return unsafe { std::alloc::System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: a fresh block for the new layout, the old one's bytes
        // copied (the smaller of both sizes), then the old one released.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_cache_reuses_blocks_and_keeps_contents_on_realloc() {
        use std::alloc::{GlobalAlloc, Layout};
        let cache = ChunkCache::new();
        let layout = Layout::from_size_align(32 * 1024, 8).unwrap();
        // SAFETY: blocks are used within their layouts and released once.
        unsafe {
            let a = cache.alloc(layout);
            a.write_bytes(0xAB, layout.size());
            cache.dealloc(a, layout);
            let b = cache.alloc(layout);
            assert_eq!(a, b, "a freed block of the same size is reused");
            let grown = cache.realloc(b, layout, 64 * 1024);
            assert_eq!(
                *grown.add(32 * 1024 - 1),
                0xAB,
                "contents survive a realloc"
            );
            let big = Layout::from_size_align(64 * 1024, 8).unwrap();
            let small = cache.realloc(grown, big, 100);
            assert_eq!(*small.add(99), 0xAB);
            cache.dealloc(small, Layout::from_size_align(100, 8).unwrap());
            // Never more than CACHE_BYTES held: the rest goes back to the system.
            let huge = Layout::from_size_align(1 << 20, 16).unwrap();
            let blocks: Vec<*mut u8> = (0..8).map(|_| cache.alloc(huge)).collect();
            for p in blocks {
                cache.dealloc(p, huge);
            }
            assert!(cache.with_state(|st| st.bytes) <= CACHE_BYTES);
        }
    }
}
