//! Asynchronous file I/O (`tulip::aio`): every behaviour written once and run on both engines
//! (`name::uring` on Linux, `name::pool`), in both styles (futures, and the seed's
//! callbacks).

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tulip::aio::AioEngine;
use tulip::{EventLoop, Future, LoopError};

/// `fn name(lp: &EventLoop) { ... }` becomes `mod name` with a test per engine, each on a new
/// loop set to that engine.
macro_rules! per_engine {
    ($(fn $name:ident($lp:ident: &EventLoop) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn run($lp: &EventLoop) $body

            #[cfg(target_os = "linux")]
            #[test]
            fn uring() {
                run(&engine_loop(AioEngine::Uring))
            }

            #[test]
            fn pool() {
                run(&engine_loop(AioEngine::Pool))
            }
        }
    )*};
}

fn engine_loop(engine: AioEngine) -> EventLoop {
    let lp = EventLoop::new().expect("a loop");
    lp.set_aio_engine(engine).expect("the engine starts");
    assert_eq!(lp.aio_engine(), engine);
    lp
}

/// A file in the temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn with(content: &[u8]) -> TempFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("tulip-aio-{}-{n}", std::process::id()));
        std::fs::write(&path, content).expect("the temporary file is written");
        TempFile(path)
    }

    fn read_only(&self) -> Arc<File> {
        Arc::new(File::open(&self.0).expect("opened for reading"))
    }

    fn read_write(&self) -> Arc<File> {
        let file = OpenOptions::new().read(true).write(true).open(&self.0);
        Arc::new(file.expect("opened for reading and writing"))
    }

    fn write_only(&self) -> Arc<File> {
        Arc::new(
            OpenOptions::new()
                .write(true)
                .open(&self.0)
                .expect("opened for writing"),
        )
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Known content: no two nearby 4 KiB blocks alike.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 4093) as u8).collect()
}

fn os_error<T: std::fmt::Debug>(result: io::Result<T>) -> i32 {
    let e = result.expect_err("an error");
    e.raw_os_error()
        .unwrap_or_else(|| panic!("an OS error, not {e:?}"))
}

per_engine! {
    fn reads_and_writes_at_offsets_land_where_asked(lp: &EventLoop) {
        let tmp = TempFile::with(&pattern(10_000));
        let file = tmp.read_write();
        let f = Arc::clone(&file);
        let (written, read_back, middle) = lp
            .run_until_complete(async move {
                let written = tulip::aio::write_at(&f, 5_000, b"tulip".to_vec()).await?;
                let read_back = tulip::aio::read_at(&f, 4_998, 9).await?;
                let middle = tulip::aio::read_at(&f, 10, 20).await?;
                Ok::<_, io::Error>((written, read_back, middle))
            })
            .unwrap()
            .unwrap();
        let expected = pattern(10_000);
        assert_eq!(written, 5);
        assert_eq!(&read_back[..2], &expected[4_998..5_000]);
        assert_eq!(&read_back[2..7], b"tulip");
        assert_eq!(&read_back[7..], &expected[5_005..5_007]);
        assert_eq!(middle, &expected[10..30]);
        let on_disk = std::fs::read(&tmp.0).unwrap();
        assert_eq!(&on_disk[5_000..5_005], b"tulip");
    }

    fn a_read_at_or_past_the_end_of_the_file_is_short_or_empty(lp: &EventLoop) {
        let tmp = TempFile::with(b"0123456789");
        let file = tmp.read_only();
        let short = lp.read_at(&file, 6, 100);
        let at_end = lp.read_at(&file, 10, 100);
        let past_end = lp.read_at(&file, 1 << 40, 100);
        let empty_request = lp.read_at(&file, 0, 0);
        assert_eq!(lp.run_until_complete(short).unwrap().unwrap(), b"6789");
        assert!(lp.run_until_complete(at_end).unwrap().unwrap().is_empty());
        assert!(lp.run_until_complete(past_end).unwrap().unwrap().is_empty());
        assert!(lp.run_until_complete(empty_request).unwrap().unwrap().is_empty());
    }

    fn read_into_reuses_the_buffer_it_is_given_and_reads_up_to_its_capacity(lp: &EventLoop) {
        let content = pattern(10_000);
        let tmp = TempFile::with(&content);
        let file = tmp.read_only();
        let f = Arc::clone(&file);
        let (first, second, same_allocation, short) = lp
            .run_until_complete(async move {
                // Stale contents and length do not matter: the capacity is the length asked.
                let mut buf = Vec::with_capacity(100);
                buf.extend_from_slice(b"stale");
                let ptr = buf.as_ptr();
                let buf = tulip::aio::read_into(&f, 10, buf).await?;
                let first = buf.clone();
                let buf = tulip::aio::read_into(&f, 5_000, buf).await?;
                let same = buf.as_ptr() == ptr && buf.capacity() == 100;
                let second = buf.clone();
                let short = tulip::aio::read_into(&f, 9_990, buf).await?;
                Ok::<_, io::Error>((first, second, same, short))
            })
            .unwrap()
            .unwrap();
        assert_eq!(first, &content[10..110]);
        assert_eq!(second, &content[5_000..5_100]);
        assert!(same_allocation, "the buffer given is the buffer returned");
        assert_eq!(short, &content[9_990..]);
        // No capacity, nothing read; past the end, empty.
        let none = lp.read_into(&file, 0, Vec::new());
        assert!(lp.run_until_complete(none).unwrap().unwrap().is_empty());
        let past = lp.read_into(&file, 1 << 40, vec![1, 2, 3]);
        assert!(lp.run_until_complete(past).unwrap().unwrap().is_empty());
    }

    fn read_into_errors_as_read_at_and_a_cancelled_one_keeps_its_buffer_until_done(
        lp: &EventLoop
    ) {
        let tmp = TempFile::with(b"0123456789");
        let write_only = tmp.write_only();
        let denied = lp.read_into(&write_only, 0, Vec::with_capacity(4));
        assert_eq!(os_error(lp.run_until_complete(denied).unwrap()), libc::EBADF);
        let file = tmp.read_only();
        let past_off_t = lp.read_into(&file, u64::MAX, Vec::with_capacity(4));
        let e = lp.run_until_complete(past_off_t).unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // Cancelled at once: the request still completes (its buffer the engine's until then),
        // and a read after it finds it gone.
        let cancelled = lp.read_into(&file, 0, Vec::with_capacity(4));
        assert!(cancelled.cancel());
        let after = lp.read_into(&file, 2, Vec::with_capacity(3));
        assert_eq!(lp.run_until_complete(after).unwrap().unwrap(), b"234");
        lp.run_until(|lp| lp.aio_in_flight() == 0).unwrap();
        assert!(cancelled.cancelled());
    }

    fn a_thousand_concurrent_reads_each_return_their_own_block(lp: &EventLoop) {
        const BLOCK: usize = 4096;
        let content = pattern(1000 * BLOCK);
        let tmp = TempFile::with(&content);
        let file = tmp.read_only();
        let reads: Vec<Future<Vec<u8>>> = (0..1000)
            .map(|i| lp.read_at(&file, (i * BLOCK) as u64, BLOCK))
            .collect();
        let results = lp.run_until_complete(tulip::gather(reads)).unwrap().unwrap();
        assert_eq!(results.len(), 1000);
        for (i, block) in results.into_iter().enumerate() {
            assert_eq!(block, &content[i * BLOCK..(i + 1) * BLOCK], "block {i}");
        }
    }

    fn a_file_larger_than_the_ring_depth_times_the_request_size_reads_whole(lp: &EventLoop) {
        lp.set_aio_depth(4).unwrap();
        let content = pattern(4 * 4096 * 25 + 123);
        let tmp = TempFile::with(&content);
        let file = tmp.read_only();
        let reads: Vec<_> = (0..content.len().div_ceil(4096))
            .map(|i| lp.read_at(&file, (i * 4096) as u64, 4096))
            .collect();
        let mut whole = Vec::new();
        for block in lp.run_until_complete(tulip::gather(reads)).unwrap().unwrap() {
            whole.extend(block);
        }
        assert_eq!(whole, content);
    }

    fn fsync_and_fdatasync_complete_after_writes(lp: &EventLoop) {
        let tmp = TempFile::with(b"");
        let file = tmp.read_write();
        let f = Arc::clone(&file);
        lp.run_until_complete(async move {
            tulip::aio::write_at(&f, 0, vec![b'x'; 8192]).await?;
            tulip::aio::fdatasync(&f).await?;
            tulip::aio::write_at(&f, 8192, vec![b'y'; 10]).await?;
            tulip::aio::fsync(&f).await
        })
        .unwrap()
        .unwrap();
        assert_eq!(std::fs::metadata(&tmp.0).unwrap().len(), 8202);
    }

    fn reading_a_file_opened_only_for_writing_is_ebadf(lp: &EventLoop) {
        let tmp = TempFile::with(b"secret");
        let read = lp.read_at(&tmp.write_only(), 0, 6);
        assert_eq!(os_error(lp.run_until_complete(read).unwrap()), libc::EBADF);
        let write = lp.write_at(&tmp.read_only(), 0, b"x".to_vec());
        assert_eq!(os_error(lp.run_until_complete(write).unwrap()), libc::EBADF);
    }

    fn reading_a_directory_is_eisdir(lp: &EventLoop) {
        let dir = Arc::new(File::open(std::env::temp_dir()).unwrap());
        let read = lp.read_at(&dir, 0, 16);
        let result = lp.run_until_complete(read).unwrap();
        assert_eq!(os_error(result), libc::EISDIR);
    }

    fn syncing_a_pipe_is_einval(lp: &EventLoop) {
        let (reader, _writer) = tulip::selectors::fd::pipe().unwrap();
        let pipe = Arc::new(File::from(reader));
        let sync = lp.fsync(&pipe);
        assert_eq!(os_error(lp.run_until_complete(sync).unwrap()), libc::EINVAL);
    }

    fn an_offset_past_i64_max_or_a_huge_length_is_invalid_input(lp: &EventLoop) {
        let tmp = TempFile::with(b"abc");
        let file = tmp.read_only();
        for future in [
            lp.read_at(&file, u64::MAX, 1),
            lp.read_at(&file, 1 << 63, 1),
            lp.read_at(&file, 0, usize::MAX),
        ] {
            let e = lp.run_until_complete(future).unwrap().unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        }
        let write = lp.write_at(&tmp.read_write(), u64::MAX, b"x".to_vec());
        let e = lp.run_until_complete(write).unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    fn the_seeds_callbacks_receive_the_bytes_the_count_and_the_error(lp: &EventLoop) {
        let tmp = TempFile::with(b"Hello, callbacks");
        let file = tmp.read_write();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let (s1, s2, s3) = (seen.clone(), seen.clone(), seen.clone());
        let f = Arc::clone(&file);
        lp.aio_read(&file, 7, 9, move |lp, data| {
            s1.borrow_mut().push(format!("read {:?}", String::from_utf8(data.unwrap())));
            lp.aio_write(&f, 0, b"HELLO".to_vec(), move |_, n| {
                s2.borrow_mut().push(format!("wrote {}", n.unwrap()));
            })
            .unwrap();
        })
        .unwrap();
        lp.aio_read(&tmp.write_only(), 0, 1, move |lp, result| {
            s3.borrow_mut().push(format!("error {}", os_error(result)));
            lp.call_later(std::time::Duration::from_millis(50), |lp| lp.stop()).unwrap();
        })
        .unwrap();
        lp.run_forever().unwrap();
        let mut seen = seen.borrow().clone();
        seen.sort();
        assert_eq!(
            seen,
            [
                format!("error {}", libc::EBADF),
                "read Ok(\"callbacks\")".to_string(),
                "wrote 5".to_string()
            ]
        );
        assert_eq!(std::fs::read(&tmp.0).unwrap(), b"HELLO, callbacks");
    }

    fn cancelled_and_abandoned_reads_under_load_free_nothing_the_kernel_writes(lp: &EventLoop) {
        const BLOCK: usize = 65536;
        let content = pattern(64 * BLOCK);
        let tmp = TempFile::with(&content);
        let file = tmp.read_only();
        let mut kept = Vec::new();
        for round in 0..20 {
            for i in 0..64 {
                let future = lp.read_at(&file, (i * BLOCK) as u64, BLOCK);
                match (round + i) % 4 {
                    // Cancelled before it reached the kernel.
                    0 => assert!(future.cancel()),
                    // Abandoned: a task awaiting it is cancelled (dropped) next iteration.
                    1 => {
                        let task = lp.create_task(async move { future.await.map(|d| d.len()) });
                        lp.call_soon(move |_| {
                            task.cancel();
                        })
                        .unwrap();
                    }
                    // Cancelled once in the kernel (or done).
                    2 => {
                        lp.call_soon(move |_| {
                            future.cancel();
                        })
                        .unwrap();
                    }
                    _ => kept.push((i, future)),
                }
            }
            lp.run_once(Some(std::time::Duration::ZERO)).unwrap();
        }
        for (i, future) in kept {
            let block = lp.run_until_complete(future).unwrap().unwrap();
            assert_eq!(block, &content[i * BLOCK..(i + 1) * BLOCK]);
        }
        // Every request ends: cancelled ones complete too, and nothing is left behind.
        lp.run_until(|lp| lp.aio_in_flight() == 0).unwrap();
    }

    fn closing_the_loop_with_requests_in_flight_completes_every_one(lp: &EventLoop) {
        let content = pattern(256 * 4096);
        let tmp = TempFile::with(&content);
        let file = tmp.read_only();
        let reads: Vec<_> = (0..256)
            .map(|i| lp.read_at(&file, (i * 4096) as u64, 4096))
            .collect();
        // One iteration puts them in flight.
        lp.run_once(Some(std::time::Duration::ZERO)).unwrap();
        lp.close().unwrap();
        for (i, read) in reads.into_iter().enumerate() {
            assert!(read.done(), "read {i} completed by close");
            assert_eq!(read.take_result().unwrap(), &content[i * 4096..(i + 1) * 4096]);
        }
        let after = lp.read_at(&file, 0, 1);
        let e = after.take_result().unwrap_err();
        assert_eq!(LoopError::of(&e), Some(LoopError::Closed));
    }
}

/// The fallback, simulated: io_uring refused as seccomp (`EPERM`) or an old kernel
/// (`ENOSYS`) refuse it. The loop says so and reads on the pool.
#[test]
fn a_refused_io_uring_falls_back_to_the_pool_and_says_why() {
    for errno in [libc::EPERM, libc::ENOSYS] {
        let lp = EventLoop::new().unwrap();
        lp.simulate_io_uring_refusal(Some(errno)).unwrap();
        if AioEngine::from_env().unwrap().is_some() {
            return; // TULIP_AIO chose an engine: no automatic choice to test.
        }
        assert_eq!(lp.aio_engine(), AioEngine::Pool);
        let why = lp.aio_fallback().expect("the fallback says why");
        let expected = io::Error::from_raw_os_error(errno).to_string();
        assert!(why.contains(&expected), "{why:?} names {expected:?}");
        let tmp = TempFile::with(b"fallback");
        let read = lp.read_at(&tmp.read_only(), 4, 4);
        assert_eq!(lp.run_until_complete(read).unwrap().unwrap(), b"back");
    }
}

/// Asked for by name, a refused io_uring is an error, never a silent fallback.
#[test]
fn a_refused_io_uring_chosen_by_name_is_the_kernels_error() {
    let lp = EventLoop::new().unwrap();
    lp.simulate_io_uring_refusal(Some(libc::EPERM)).unwrap();
    let e = lp.set_aio_engine(AioEngine::Uring).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    let tmp = TempFile::with(b"x");
    let read = lp.read_at(&tmp.read_only(), 0, 1);
    assert_eq!(os_error(lp.run_until_complete(read).unwrap()), libc::EPERM);
    assert!(lp.aio_fallback().is_none());
}

#[cfg(target_os = "linux")]
mod uring_only {
    use super::*;
    use std::io::Read;
    use std::os::fd::{AsFd, AsRawFd};
    use std::time::Duration;
    use tulip::selectors::Backend;

    /// Requests made during one iteration reach the kernel in one `io_uring_enter`.
    #[test]
    fn the_submissions_of_one_iteration_go_in_one_io_uring_enter() {
        let lp = engine_loop(AioEngine::Uring);
        let content = pattern(64 * 4096);
        let tmp = TempFile::with(&content);
        let file = tmp.read_only();
        let reads: Vec<_> = (0..64)
            .map(|i| lp.read_at(&file, (i * 4096) as u64, 4096))
            .collect();
        assert_eq!(lp.aio_enters(), 0);
        lp.run_once(Some(std::time::Duration::ZERO)).unwrap();
        assert_eq!(lp.aio_enters(), 1);
        for result in lp
            .run_until_complete(tulip::gather(reads))
            .unwrap()
            .unwrap()
        {
            assert_eq!(result.len(), 4096);
        }
        assert_eq!(lp.aio_enters(), 1);
    }

    /// A blocking pipe nobody writes to, as a file whose reads stay in the kernel.
    fn idle_pipe() -> (Arc<File>, std::os::fd::OwnedFd) {
        let (reader, writer) = tulip::selectors::fd::pipe().unwrap();
        tulip::selectors::fd::set_nonblocking(reader.as_raw_fd(), false).unwrap();
        (Arc::new(File::from(reader)), writer)
    }

    /// Reads that stay in the kernel (an empty pipe) are cancelled with
    /// `IORING_OP_ASYNC_CANCEL`: their futures end cancelled once the kernel's completions
    /// arrive, and the kernel read nothing into the buffers it gave back.
    #[test]
    fn reads_pending_in_the_kernel_are_cancelled_and_then_complete() {
        let lp = engine_loop(AioEngine::Uring);
        let (reader, writer) = idle_pipe();
        let reads: Vec<_> = (0..100).map(|_| lp.read_at(&reader, 0, 4096)).collect();
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(lp.aio_in_flight(), 100, "the reads wait in the kernel");
        for read in &reads {
            assert!(read.cancel());
        }
        lp.call_later(Duration::from_secs(10), |lp| lp.stop())
            .unwrap();
        lp.run_until(|lp| lp.aio_in_flight() == 0).unwrap();
        assert!(reads.iter().all(Future::cancelled));
        // Nothing was read: what is written now is still there to read.
        tulip::selectors::fd::write(writer.as_fd(), b"still here").unwrap();
        let mut buf = [0u8; 16];
        let n = (&*reader).read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"still here");
    }

    /// Closing the loop cancels reads that would never complete, and returns.
    #[test]
    fn closing_the_loop_ends_reads_that_would_never_complete() {
        let lp = engine_loop(AioEngine::Uring);
        let (reader, _writer) = idle_pipe();
        let reads: Vec<_> = (0..10).map(|_| lp.read_at(&reader, 0, 64)).collect();
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(lp.aio_in_flight(), 10);
        lp.close().unwrap();
        for read in reads {
            let e = read.take_result().unwrap_err();
            assert_eq!(LoopError::of(&e), Some(LoopError::Cancelled));
        }
    }

    /// The ring's eventfd is an ordinary reader: completions arrive on every backend.
    #[test]
    fn completions_reach_the_loop_on_every_readiness_backend() {
        let tmp = TempFile::with(&pattern(8192));
        for &backend in Backend::available() {
            let lp = EventLoop::with_backend(backend).unwrap();
            lp.set_aio_engine(AioEngine::Uring).unwrap();
            let file = tmp.read_only();
            let reads: Vec<_> = (0..2).map(|i| lp.read_at(&file, i * 4096, 4096)).collect();
            let results = lp
                .run_until_complete(tulip::gather(reads))
                .unwrap()
                .unwrap();
            assert!(results.into_iter().all(|r| r.len() == 4096), "{backend}");
        }
    }

    /// A ring (its fd, its eventfd, its mappings) is released with its loop.
    #[test]
    fn a_loop_releases_its_ring_when_dropped() {
        let tmp = TempFile::with(b"fds");
        let file = tmp.read_only();
        let (maps_before, fds_before) = (mapped_rings(), ring_fds());
        for _ in 0..20 {
            let lp = engine_loop(AioEngine::Uring);
            let read = lp.read_at(&file, 0, 3);
            assert_eq!(lp.run_until_complete(read).unwrap().unwrap(), b"fds");
        }
        // Other tests run meanwhile: allow their few live rings, not twenty leaked ones (each
        // would leave two or three mappings and two fds, its own and its eventfd's).
        assert!(
            mapped_rings() <= maps_before + 8,
            "rings leak their mappings"
        );
        assert!(ring_fds() <= fds_before + 8, "rings leak their fds");
    }

    /// The fds of this process that are io_uring instances or eventfds.
    fn ring_fds() -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
            .filter(|target| {
                let target = target.to_string_lossy();
                target.contains("io_uring") || target.contains("eventfd")
            })
            .count()
    }

    fn mapped_rings() -> usize {
        std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .filter(|l| l.contains("io_uring"))
            .count()
    }
}

#[path = "support/child.rs"]
mod child;

/// `TULIP_AIO` chooses the engine of new loops, and a value that names no engine is
/// `InvalidInput`, for the requests too. Each value runs in a child process of its own (the
/// environment is process-wide).
#[test]
fn tulip_aio_chooses_the_engine_and_a_bad_value_is_invalid_input() {
    const NAME: &str = "tulip_aio_chooses_the_engine_and_a_bad_value_is_invalid_input";
    if let Some(role) = child::child_role() {
        let lp = EventLoop::new().unwrap();
        match role.as_str() {
            "bogus" => {
                let e = lp.try_aio_engine().unwrap_err();
                assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
                assert!(e.to_string().contains("TULIP_AIO"), "{e}");
                let tmp = TempFile::with(b"x");
                let read = lp.read_at(&tmp.read_only(), 0, 1);
                let e = lp.run_until_complete(read).unwrap().unwrap_err();
                assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            }
            name => {
                let engine = lp.try_aio_engine().unwrap();
                assert_eq!(engine.name(), name);
                assert!(lp.aio_fallback().is_none());
            }
        }
        return;
    }
    let mut values = vec!["pool", "bogus"];
    if cfg!(target_os = "linux") {
        values.push("uring");
    }
    for value in values {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env(child::CHILD_ENV, value)
            .env(tulip::aio::AIO_ENV, value)
            .output()
            .expect("the test binary runs again");
        child::assert_child_passed(&output);
    }
}
