//! Process-wide settings the Vigil daemons share.

/// Malloc arenas the daemons use unless `MALLOC_ARENA_MAX` is set.
pub const MALLOC_ARENAS: i32 = 2;

/// Limits glibc's malloc to [`MALLOC_ARENAS`] arenas.
///
/// glibc gives threads that allocate concurrently their own arena, up to 8 per core.
/// The agent runs many threads (GStreamer streaming threads per camera, the detection
/// worker, tokio), and memory freed in one arena is not reused by the others, so RSS
/// kept climbing long after the pre-event rings were full: 4 cameras for 10 minutes
/// grew +46 MiB after the rings filled with the default arenas, and with two grew
/// +12 MiB, none in the last 4 minutes, ending 75 MiB lower (`bench/memory.sh`). `MALLOC_ARENA_MAX` in the environment still wins. Call first thing in
/// `main`, before any thread starts.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator tunables; it is called before any
        // other thread exists, so no allocation races with it.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
}

/// Allocations at least this large are always their own `mmap`, given back on free.
pub const MMAP_THRESHOLD: i32 = 4 * 1024 * 1024;

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD`] (unless `MALLOC_MMAP_THRESHOLD_`
/// is set), which also turns off its dynamic adjustment.
///
/// By default glibc raises the threshold to the size of the largest mmapped block freed
/// (up to 32 MiB), so from then on blocks of that size come from the heap and are not
/// given back. Every argon2 password check (MQTT logins, web logins) allocates 19 MiB:
/// the hub's RSS grew ~8 MiB per agent that logged in (100 idle agents: 840 MiB; with
/// the threshold fixed: 29 MiB, `bench/trust.sh`). 4 MiB keeps the hub's 256 KiB chunk
/// and 2 MiB packet buffers on the heap. Call first thing in `main`.
pub fn return_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only changes allocator tunables; called before other threads.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Arenas glibc has created so far, from `malloc_info`'s `<heap nr=...>` entries.
    fn arenas() -> usize {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("tempdir: {e}"),
        };
        let path = dir.path().join("malloc_info.xml");
        let Ok(c_path) = std::ffi::CString::new(path.to_string_lossy().as_bytes()) else {
            panic!("temp path has a NUL byte");
        };
        // SAFETY: fopen/malloc_info/fclose on a file this test owns; the FILE is closed once.
        unsafe {
            let file = libc::fopen(c_path.as_ptr(), c"w".as_ptr());
            assert!(!file.is_null(), "fopen {}", path.display());
            assert_eq!(libc::malloc_info(0, file), 0);
            libc::fclose(file);
        }
        let xml = std::fs::read_to_string(&path).unwrap_or_default();
        xml.matches("<heap nr=").count()
    }

    #[test]
    fn threads_allocating_at_once_share_the_limited_arenas() {
        limit_malloc_arenas();
        let limit = std::env::var("MALLOC_ARENA_MAX")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(MALLOC_ARENAS as usize);
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let held: Vec<Vec<u8>> = (0..200).map(|n| vec![i as u8; 64 + n]).collect();
                    barrier.wait();
                    held.len()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().ok(), Some(200));
        }
        let n = arenas();
        assert!(n >= 1, "malloc_info listed no heap");
        assert!(n <= limit, "{n} arenas for 8 threads, limit {limit}");
    }
}
