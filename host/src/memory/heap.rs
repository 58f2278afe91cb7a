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
    // One of the host's two audited unsafe blocks (the other loads its own
    // compiled artifacts, wasm/artifacts.rs): no safe wrapper exists, and
    // without it start-up RSS at 100k episodes was 291-295 MB instead of
    // 233-246 MB (README, "Episodic memory" figures).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim takes no pointers and only walks glibc's own free
    // lists, under glibc's own locks; any thread may call it at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
