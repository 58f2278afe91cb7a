//! Memory the process holds for fjall and the allocator, kept in bounds.
//!
//! - fjall's block cache is the one cache of stored records (headers,
//!   steps, vectors read at start-up): [`BLOCK_CACHE_BYTES`]. A miss costs
//!   a read from the OS page cache, which is not this process's memory.
//! - After the start-up rebuilds, the allocator is asked to return the
//!   pages their temporary buffers freed ([`release_free_memory`]).

/// fjall's block cache (its default is 32 MiB).
pub const BLOCK_CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// Returns freed heap pages to the OS (glibc keeps them otherwise, in
/// each thread's arena).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
