//! `fork(2)` and the loop (README, "fork"): a child that inherited a loop gets
//! `LoopError::Forked` from it until `after_fork`, after which readers, timers, signals and
//! wakes from other threads work in the child; a loop made in the child just works; and the
//! parent's loop keeps its registrations whatever the child did.
//!
//! The children are made with `fork` itself, since fork is the point. The test harness is
//! multi-threaded, so the child runs in a process where only the forking thread exists and a
//! lock another thread held stays held: each test is `exclusive` (no other test of this file
//! runs meanwhile), the child's work is short, and it ends with `_exit`, its status saying
//! whether its checks held (a panic in the child is status 2).

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tulip::selectors::{fd, Backend};
use tulip::{EventLoop, LoopError};

#[macro_use]
#[path = "support/per_backend.rs"]
mod per_backend;

/// Run `child` in a forked child process; panics unless it returned without panicking.
fn in_child(child: impl FnOnce()) {
    // SAFETY: the child runs `child` and leaves with `_exit`, never returning into the test
    // harness; see the file's doc for what a child of a multi-threaded process may do.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = match catch_unwind(AssertUnwindSafe(child)) {
            Ok(()) => 0,
            Err(_) => 2,
        };
        // SAFETY: ends the child without running the parent's atexit handlers or destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: `pid` is our child and `status` a valid out-pointer.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid, "waitpid: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child's checks failed (wait status {status:#x})"
    );
}

fn is_forked_error(result: std::io::Result<impl Sized>) -> bool {
    matches!(result, Err(e) if LoopError::of(&e) == Some(LoopError::Forked))
}

/// A loop with a reader on a socketpair, counting its calls (and draining the socket).
fn loop_with_reader(b: Backend) -> (EventLoop, OwnedFd, OwnedFd, Rc<Cell<u32>>) {
    let lp = EventLoop::with_backend(b).unwrap();
    let (a, peer) = fd::socketpair().unwrap();
    let reads = Rc::new(Cell::new(0));
    let counter = reads.clone();
    let raw = a.as_raw_fd();
    lp.add_reader(raw, move |_| {
        let mut buf = [0u8; 64];
        let mut file = std::mem::ManuallyDrop::new(unsafe_file(raw));
        let _ = file.read(&mut buf);
        counter.set(counter.get() + 1);
    })
    .unwrap();
    (lp, a, peer, reads)
}

/// A `File` view of an fd the caller keeps owning (wrap it in `ManuallyDrop`).
fn unsafe_file(raw: i32) -> std::fs::File {
    use std::os::fd::FromRawFd;
    // SAFETY: `raw` is open for the duration of the view, which is never dropped (the caller
    // wraps it in `ManuallyDrop`), so the fd is not closed twice.
    unsafe { std::fs::File::from_raw_fd(raw) }
}

fn send(peer: &OwnedFd) {
    let mut file = std::mem::ManuallyDrop::new(unsafe_file(peer.as_raw_fd()));
    file.write_all(b"x").unwrap();
}

/// The parent's loop sees its reader's next event (its registration survived the child).
fn parent_reader_still_works(lp: &EventLoop, peer: &OwnedFd, reads: &Rc<Cell<u32>>) {
    let before = reads.get();
    send(peer);
    let timeout = lp
        .call_later(Duration::from_secs(5), |lp| lp.stop())
        .unwrap();
    lp.run_until(|_| reads.get() > before).unwrap();
    timeout.cancel();
}

per_backend! {
    exclusive fn an_inherited_loop_refuses_every_call_until_after_fork(b: Backend) {
        let (lp, a, peer, reads) = loop_with_reader(b);
        let handle = lp.handle();
        let owner = std::cell::RefCell::new(Some(lp));
        in_child(|| {
            let lp = owner.borrow_mut().take().unwrap();
            assert!(lp.is_forked());
            assert!(is_forked_error(lp.call_soon(|_| {})));
            assert!(is_forked_error(lp.call_later(Duration::ZERO, |_| {})));
            assert!(is_forked_error(lp.add_reader(peer.as_raw_fd(), |_| {})));
            assert!(is_forked_error(lp.add_signal_handler(libc::SIGUSR2, |_| {})));
            assert!(is_forked_error(lp.run_once(Some(Duration::ZERO))));
            assert!(is_forked_error(handle.call_soon_threadsafe(|_| {})));
            // Forgotten by the loop only: the selector is the parent's.
            assert!(lp.remove_reader(a.as_raw_fd()));
            // Dropping it leaves the parent's selector alone too.
            drop(lp);
        });
        let lp = owner.into_inner().unwrap();
        assert!(!lp.is_forked());
        parent_reader_still_works(&lp, &peer, &reads);
    }

    exclusive fn after_fork_carries_readers_timers_and_signals_over(b: Backend) {
        let (lp, _a, peer, reads) = loop_with_reader(b);
        let signals = Rc::new(Cell::new(0));
        let counter = signals.clone();
        lp.add_signal_handler(libc::SIGUSR1, move |_| counter.set(counter.get() + 1))
            .unwrap();
        in_child(|| {
            // Before after_fork, a signal goes to no loop (not through the shared pipe to the
            // parent's).
            // SAFETY: raising a signal this process handles (through tulip's handler).
            assert_eq!(unsafe { libc::raise(libc::SIGUSR1) }, 0);
            lp.after_fork().unwrap();
            assert!(!lp.is_forked());
            // The reader registered in the parent.
            parent_reader_still_works(&lp, &peer, &reads);
            // A timer, and a wake from another thread.
            let fired = Rc::new(Cell::new(false));
            let flag = fired.clone();
            lp.call_later(Duration::from_millis(1), move |_| flag.set(true)).unwrap();
            lp.run_until(|_| fired.get()).unwrap();
            let handle = lp.handle();
            std::thread::spawn(move || handle.call_soon_threadsafe(|lp| lp.stop()).unwrap())
                .join()
                .unwrap();
            lp.run_forever().unwrap();
            // The signal handler installed in the parent, now the child's.
            // SAFETY: raising a signal this process handles (through tulip's handler).
            assert_eq!(unsafe { libc::raise(libc::SIGUSR1) }, 0);
            lp.run_until(|_| signals.get() == 1).unwrap();
            // Calling it again does nothing.
            lp.after_fork().unwrap();
        });
        // The child's signal did not reach the parent's loop, whose reader still works.
        lp.run_once(Some(Duration::from_millis(10))).unwrap();
        assert_eq!(signals.get(), 0);
        parent_reader_still_works(&lp, &peer, &reads);
        assert!(lp.remove_signal_handler(libc::SIGUSR1));
    }

    exclusive fn a_loop_made_in_the_child_just_works(b: Backend) {
        let (lp, _a, peer, reads) = loop_with_reader(b);
        in_child(|| {
            let (child_lp, _a, child_peer, child_reads) = loop_with_reader(b);
            parent_reader_still_works(&child_lp, &child_peer, &child_reads);
            drop(child_lp);
            // The inherited one is still refused, and dropping it leaves the parent's alone.
            assert!(is_forked_error(lp.call_soon(|_| {})));
        });
        parent_reader_still_works(&lp, &peer, &reads);
    }

    exclusive fn after_fork_carries_sockets_and_file_io_over(b: Backend) {
        let lp = EventLoop::with_backend(b).unwrap();
        let (x, y) = tulip::net::UnixStream::pair().unwrap();
        let (x, y) = (Rc::new(x), Rc::new(y));
        let path = std::env::temp_dir().join(format!("tulip-fork-{}-{b:?}", std::process::id()));
        std::fs::write(&path, b"0123456789").unwrap();
        let file = Arc::new(std::fs::File::open(&path).unwrap());
        // The reader waits (its socket registered with the selector) before the write comes.
        let round_trip = |lp: &EventLoop| {
            let (x, y) = (x.clone(), y.clone());
            let outcome = lp.run_until_complete(tulip::wait_for(async move {
                let reader = tulip::spawn(async move {
                    let mut buf = [0u8; 4];
                    y.read_exact(&mut buf).await.map(|()| buf)
                })?;
                tulip::sleep(Duration::from_millis(1)).await?;
                x.write_all(b"ping").await?;
                reader.await?
            }, Duration::from_secs(5)));
            assert_eq!(&outcome.unwrap().unwrap().unwrap(), b"ping");
        };
        let read = |lp: &EventLoop| {
            let future = lp.read_at(&file, 6, 100);
            assert_eq!(lp.run_until_complete(future).unwrap().unwrap(), b"6789");
        };
        round_trip(&lp);
        read(&lp);
        in_child(|| {
            lp.after_fork().unwrap();
            round_trip(&lp);
            read(&lp);
        });
        round_trip(&lp);
        read(&lp);
        let _ = std::fs::remove_file(&path);
    }

    fn after_fork_in_the_process_that_made_the_loop_does_nothing(b: Backend) {
        let lp = EventLoop::with_backend(b).unwrap();
        assert!(!lp.is_forked());
        lp.after_fork().unwrap();
        lp.close().unwrap();
        let err = lp.after_fork().unwrap_err();
        assert_eq!(LoopError::of(&err), Some(LoopError::Closed));
        assert_eq!(err.kind(), ErrorKind::Other);
    }
}
