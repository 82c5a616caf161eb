//! What the process holds, read from `/proc/self`: open fds, threads, resident memory.

use std::io;

/// Open fds of this process (entries of `/proc/self/fd`, less the one `read_dir` holds).
///
/// # Errors
/// The kernel's, if `/proc` cannot be read (not Linux, or not mounted).
pub fn fd_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")?
        .count()
        .saturating_sub(1))
}

/// Threads of this process (entries of `/proc/self/task`).
///
/// # Errors
/// As [`fd_count`].
pub fn thread_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// Resident set size, in bytes (`VmRSS` of `/proc/self/status`).
///
/// # Errors
/// As [`fd_count`]; `InvalidData` if the line is missing.
pub fn rss_bytes() -> io::Result<u64> {
    status_kib(&std::fs::read_to_string("/proc/self/status")?, "VmRSS")
        .map(|kib| kib * 1024)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS in /proc/self/status"))
}

/// The value in KiB of `key` in a `/proc/*/status` text (`VmRSS:\t  1234 kB`).
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        if k != key {
            return None;
        }
        v.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_values_are_read_in_kib() {
        let text = "Name:\tx\nVmPeak:\t   9000 kB\nVmRSS:\t    1234 kB\nThreads:\t3\n";
        assert_eq!(status_kib(text, "VmRSS"), Some(1234));
        assert_eq!(status_kib(text, "VmPeak"), Some(9000));
        assert_eq!(status_kib(text, "Threads"), None, "not in kB");
        assert_eq!(status_kib(text, "VmSwap"), None);
    }

    #[test]
    fn open_files_and_threads_are_counted() {
        // Other tests open and close fds in parallel: only a floor holds for sure.
        let files: Vec<_> = (0..20)
            .map(|_| std::fs::File::open("/proc/self/status").unwrap())
            .collect();
        assert!(fd_count().unwrap() >= 20);
        drop(files);
        assert!(thread_count().unwrap() >= 1);
        assert!(rss_bytes().unwrap() > 0);
    }
}
