//! Unit tests of the uring selector: what only it can get wrong (generations, batching,
//! refusal), and the single-shot vs multishot measurement behind its design. The contract
//! itself is tested on every backend alike by `tests/selectors.rs` and the differential test.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Instant;

use rustix::io_uring::IoringPollFlags;

use super::*;
use crate::fd;

fn ready_now(sel: &mut UringSelector) -> Vec<Event> {
    let mut events = Vec::new();
    sel.select(&mut events, Some(Duration::ZERO)).unwrap();
    events
}

fn send(fd: &OwnedFd, bytes: &[u8]) {
    assert_eq!(fd::write(fd.as_fd(), bytes).unwrap(), bytes.len());
}

#[test]
#[cfg_attr(miri, ignore = "io_uring")]
fn a_steady_select_is_one_enter_whatever_it_re_arms() {
    let mut sel = UringSelector::new().unwrap();
    let pairs: Vec<_> = (0..16).map(|_| fd::socketpair().unwrap()).collect();
    for (i, (a, _)) in pairs.iter().enumerate() {
        sel.register(a.as_raw_fd(), Interest::WRITABLE, Token(i))
            .unwrap();
    }
    assert_eq!(ready_now(&mut sel).len(), 16, "every end is writable");
    for _ in 0..5 {
        let (syscalls, enters) = (sel.syscalls(), sel.enters());
        assert_eq!(
            ready_now(&mut sel).len(),
            16,
            "still writable: level-triggered"
        );
        assert_eq!(
            sel.syscalls() - syscalls,
            1,
            "16 re-arms and the wait in one call"
        );
        assert_eq!(sel.enters() - enters, 1);
    }
}

#[test]
#[cfg_attr(miri, ignore = "io_uring")]
fn a_replaced_or_removed_poll_never_reports_a_stale_event() {
    let mut sel = UringSelector::new().unwrap();
    let (a, peer) = fd::socketpair().unwrap();
    let raw = a.as_raw_fd();
    sel.register(raw, Interest::READABLE, Token(1)).unwrap();
    assert!(ready_now(&mut sel).is_empty(), "armed, nothing to read");

    // The armed poll fires (its completion is posted), then modify replaces it before any
    // select reaps it: only the new registration's events may appear.
    send(&peer, b"x");
    sel.modify(raw, Interest::WRITABLE, Token(2)).unwrap();
    let events = ready_now(&mut sel);
    assert_eq!(events, [Event::new(Token(2), Ready::WRITABLE)]);

    // A poll that fired just before unregister: its completion is dropped.
    sel.modify(raw, Interest::READABLE, Token(3)).unwrap();
    sel.unregister(raw).unwrap();
    assert!(ready_now(&mut sel).is_empty());
    // Registered again: the new token only, reported at every select while unread.
    sel.register(raw, Interest::READABLE, Token(4)).unwrap();
    for _ in 0..3 {
        let events = ready_now(&mut sel);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].token(), Token(4));
        assert!(events[0].is_readable());
    }
}

#[test]
#[cfg_attr(miri, ignore = "io_uring")]
fn unregister_releases_the_file_at_once_so_a_close_reaches_the_peer() {
    let mut sel = UringSelector::new().unwrap();
    let (a, peer) = fd::socketpair().unwrap();
    sel.register(a.as_raw_fd(), Interest::READABLE, Token(1))
        .unwrap();
    assert!(ready_now(&mut sel).is_empty(), "the poll is in the kernel");
    sel.unregister(a.as_raw_fd()).unwrap();
    drop(a);
    // No select in between: the peer sees EOF, not WouldBlock.
    rustix::io::ioctl_fionbio(&peer, true).unwrap();
    assert_eq!(fd::read(peer.as_fd(), &mut [0; 8]).unwrap(), 0);
}

#[test]
#[cfg_attr(miri, ignore = "io_uring")]
fn dropping_the_selector_with_polls_in_flight_is_safe() {
    let pairs: Vec<_> = (0..8).map(|_| fd::socketpair().unwrap()).collect();
    for round in 0..3 {
        let mut sel = UringSelector::new().unwrap();
        for (i, (a, _)) in pairs.iter().enumerate() {
            sel.register(a.as_raw_fd(), Interest::READABLE, Token(i))
                .unwrap();
        }
        if round > 0 {
            assert!(ready_now(&mut sel).is_empty());
        }
        drop(sel);
    }
    send(&pairs[0].1, b"still usable");
    assert_eq!(fd::read(pairs[0].0.as_fd(), &mut [0; 32]).unwrap(), 12);
}

#[test]
fn a_refused_ring_is_a_clear_error_of_the_errno_kind() {
    let e = UringSelector::with_refusal(Some(libc::EPERM)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
    assert!(
        e.to_string().contains("uring backend cannot be used"),
        "{e}"
    );
    assert!(e.to_string().contains("EPERM"), "{e}");
    let e = UringSelector::with_refusal(Some(libc::ENOSYS)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::Unsupported);
    assert!(e.to_string().contains("ENOSYS"), "{e}");
}

#[test]
fn poll_masks_become_the_poll_backends_readiness() {
    let mask = |bits: libc::c_short| bits as u16 as u32;
    let r = ready_from_mask(Interest::READABLE, mask(libc::POLLRDHUP));
    assert_eq!(r, Ready::READABLE | Ready::HANGUP);
    // POLLRDHUP is a hang-up only for a reader (io_uring reports it to every poll).
    let w = ready_from_mask(Interest::WRITABLE, mask(libc::POLLOUT | libc::POLLRDHUP));
    assert_eq!(w, Ready::WRITABLE);
    let e = ready_from_mask(Interest::BOTH, mask(libc::POLLERR));
    assert_eq!(e, Ready::READABLE | Ready::WRITABLE | Ready::ERROR);
}

/// The measurement behind single-shot polls (README, "The uring backend"): `N` socketpairs,
/// every round makes all `N` readable, waits for their `N` completions in one enter, and
/// drains them. Single-shot polls re-arm the `N` fds in the next round's enter; multishot
/// polls stay armed. Interleaved, best of five. Run with `cargo test --release -p tulip-sys --lib -- --ignored
/// --nocapture measure_`.
#[test]
#[ignore = "a measurement, not a test: prints ns per round"]
fn measure_single_shot_re_arm_against_multishot() {
    for n in [1usize, 16, 256] {
        let rounds = (100_000 / n).max(500);
        // Interleaved, best of five: the machine is shared and noisy.
        let (mut single, mut multi) = (f64::MAX, f64::MAX);
        for _ in 0..5 {
            single = single.min(poll_rounds(n, rounds, false));
            multi = multi.min(poll_rounds(n, rounds, true));
        }
        println!(
            "N={n:4}: single-shot {single:8.0} ns/round, multishot {multi:8.0} ns/round, \
             re-arm {:6.0} ns per fired fd",
            (single - multi) / n as f64
        );
    }
}

fn poll_rounds(n: usize, rounds: usize, multishot: bool) -> f64 {
    let mut ring = RawRing::new(SQ_DEPTH, Some(CQ_ENTRIES)).unwrap();
    let pairs: Vec<_> = (0..n).map(|_| fd::socketpair().unwrap()).collect();
    let arm = |ring: &mut RawRing, i: usize| {
        let mut sqe = poll_add_sqe(pairs[i].0.as_raw_fd(), libc::POLLIN as u32, i as u64);
        if multishot {
            sqe.len.poll_flags = IoringPollFlags::ADD_MULTI;
        }
        if ring.sq_is_full() {
            let queued = ring.unconsumed();
            ring.enter(queued, 0, IoringEnterFlags::empty()).unwrap();
        }
        // SAFETY: a poll SQE points at no memory.
        unsafe { ring.write_sqe(sqe) };
        ring.publish();
    };
    for i in 0..n {
        arm(&mut ring, i);
    }
    let mut fired = Vec::with_capacity(n);
    let mut buf = [0u8; 8];
    let start = Instant::now();
    for _ in 0..rounds {
        for (_, peer) in &pairs {
            fd::write(peer.as_fd(), b"x").unwrap();
        }
        let mut seen = 0;
        while seen < n {
            let submit = ring.unconsumed();
            ring.enter_with_timeout(submit, (n - seen) as u32, None)
                .unwrap();
            seen += ring.reap(|data, _| fired.push(data as usize)) as usize;
        }
        for &i in &fired {
            fd::read(pairs[i].0.as_fd(), &mut buf).unwrap();
        }
        if !multishot {
            for &i in &fired {
                arm(&mut ring, i);
            }
        }
        fired.clear();
    }
    start.elapsed().as_nanos() as f64 / rounds as f64
}
