//! The `uring` backend: readiness through io_uring's `IORING_OP_POLL_ADD`, on the same ring
//! code as the completion [`Ring`](super::Ring).
//!
//! Every registered fd has at most one **single-shot** poll in the kernel. A poll that fires is
//! reported by the `select` that reaps it and re-armed by the next `select`, in the same
//! `io_uring_enter` that waits (`IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG`, the timeout a
//! relative timespec): a re-armed fd that is still ready completes during submission, so the
//! wait returns at once and readiness is level-triggered exactly as `poll(2)` has it. A steady
//! `select` is one system call, whatever it re-arms. Multishot polls (`IORING_POLL_ADD_MULTI`)
//! would spare the re-arm, but they post on readiness *changes* (wake-ups), not levels: a
//! level-triggered selector over them would have to re-poll anyway; and measured (README, "The
//! uring backend"; `measure_single_shot_re_arm_against_multishot`), the re-arm is lost in the
//! noise of the I/O around it while multishot was no faster.
//!
//! The user data of a poll is its fd and a generation (`sqe::user_data`): every `register` or
//! `modify` that arms a new poll takes a new generation, and a completion whose generation is
//! not the fd's current one (a poll replaced by `modify`, a cancelled one, one that fired just
//! before `unregister`) is dropped, so no stale event is ever reported. `modify` queues an
//! `IORING_OP_POLL_REMOVE` of the old poll and a new poll, both submitted by the next `select`;
//! `unregister` submits its `POLL_REMOVE` at once, because an armed poll holds a reference to
//! the file: the caller's `close` must really close it (a peer must see EOF at once).
//!
//! A registered fd closed without `unregister`: a poll armed after the close fails with
//! `EBADF` and the fd is *parked* (nothing armed, as `poll` parks it) until `modify` finds it
//! open or `unregister`; a poll armed *before* the close keeps the file open until then (as an
//! epoll registration does for a `dup`ed fd), and may report it once more. Unregister before
//! closing, as with any selector.
//!
//! The CQ is sized for the common case (4096 entries); more completions than that wait in
//! the kernel's overflow list (`IORING_FEAT_NODROP`), which `select` flushes before it
//! returns, so one `select` still reports every ready fd.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use rustix::io_uring::{IoringEnterFlags, IoringFeatureFlags, IoringSqFlags};
use rustix::time::Timespec;

use super::raw::RawRing;
use super::sqe::GENERATION_MASK;
use super::sqe::{poll_add_sqe, poll_remove_sqe, split_user_data, user_data, CANCEL_TAG};
use crate::registry::{Registered, Registry};
use crate::{Backend, Event, Interest, Notifier, Ready, Registration, Selector, Token};

/// SQ depth: the re-arms of one `select` up to this many ride in its one `io_uring_enter`;
/// more (and registrations beyond it between two `select`s) are submitted early, in batches.
/// (128 made a `select` with 1,000 ready fds 8 system calls.)
const SQ_DEPTH: u32 = 1024;
/// CQ size; more completions at once go through the kernel's overflow list. It also sizes
/// the kernel's hash of armed polls (CQ entries / 32 buckets), which `POLL_REMOVE` searches.
const CQ_ENTRIES: u32 = 4096;

/// The longest single wait handed to the kernel (as for the other backends).
const MAX_WAIT_SECS: u64 = 100_000_000;

/// A [`Selector`] over io_uring poll requests. See the trait for the contract and the module
/// for how it is done.
#[derive(Debug)]
pub struct UringSelector {
    ring: RawRing,
    registry: Registry<Entry>,
    /// fds whose poll completed since they were armed: the next `select` re-arms them (an
    /// fd is listed at most once per firing; a stale listing is skipped by its state).
    fired: Vec<RawFd>,
    /// The generation the next armed poll takes.
    generation: u32,
    syscalls: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    registration: Registration,
    /// The generation of the fd's current poll.
    generation: u32,
    state: PollState,
}

impl Registered for Entry {
    fn registration_mut(&mut self) -> &mut Registration {
        &mut self.registration
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PollState {
    /// The current generation's poll is queued or in the kernel.
    Armed,
    /// Its poll completed: listed in `fired`, re-armed by the next `select`.
    Fired,
    /// The fd was closed (the poll failed with `EBADF`): nothing is armed.
    Parked,
}

impl UringSelector {
    /// A new ring for readiness (close-on-exec, as every io_uring fd).
    ///
    /// # Errors
    /// Where io_uring is refused (`ENOSYS`: not in this kernel; `EPERM`: a seccomp filter or
    /// `kernel.io_uring_disabled`), an error of the errno's kind that says so and names the
    /// backends to use instead; `Unsupported` for a kernel before 5.11 (no
    /// `IORING_ENTER_EXT_ARG`); the kernel's `EMFILE` or `ENOMEM` otherwise.
    pub fn new() -> io::Result<UringSelector> {
        UringSelector::with_refusal(None)
    }

    /// [`UringSelector::new`], except that with `Some(errno)` setup fails with that error
    /// before asking the kernel, as a seccomp filter or `kernel.io_uring_disabled` would make
    /// it fail: for testing what happens when io_uring is refused.
    ///
    /// # Errors
    /// As [`UringSelector::new`].
    pub fn with_refusal(refusal: Option<i32>) -> io::Result<UringSelector> {
        let setup = match refusal {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => RawRing::new(SQ_DEPTH, Some(CQ_ENTRIES)),
        };
        let ring = setup.map_err(refused)?;
        let needed = IoringFeatureFlags::EXT_ARG
            | IoringFeatureFlags::NODROP
            | IoringFeatureFlags::POLL_32BITS;
        if !ring.features().contains(needed) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the uring backend needs Linux 5.11 or later (IORING_FEAT_EXT_ARG); \
                 use epoll, poll or select",
            ));
        }
        Ok(UringSelector {
            ring,
            registry: Registry::new(),
            fired: Vec::new(),
            generation: 0,
            // io_uring_setup.
            syscalls: 1,
        })
    }

    /// How many `io_uring_enter` calls this selector has made (part of
    /// [`Selector::syscalls`]).
    pub fn enters(&self) -> u64 {
        self.ring.enters()
    }

    fn next_generation(&mut self) -> u32 {
        let generation = self.generation;
        self.generation = self.generation.wrapping_add(1) & GENERATION_MASK;
        generation
    }

    /// Make room for `n` more SQEs (`n` <= the SQ's size), submitting what is queued if the
    /// SQ is too full.
    fn make_room(&mut self, n: u32) -> io::Result<()> {
        while self.ring.unconsumed() + n > self.ring.sq_entries() {
            self.submit()?;
        }
        Ok(())
    }

    /// Give the kernel every queued SQE now, without waiting.
    fn submit(&mut self) -> io::Result<()> {
        let queued = self.ring.unconsumed();
        if queued == 0 {
            return Ok(());
        }
        self.syscalls += 1;
        let taken = self.ring.enter(queued, 0, IoringEnterFlags::empty())?;
        if taken == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "io_uring_enter took no SQE: the kernel is out of request memory",
            ));
        }
        Ok(())
    }

    /// Queue a poll of `fd` for `interest` under `generation` (room was made).
    fn arm(&mut self, fd: RawFd, interest: Interest, generation: u32) {
        let sqe = poll_add_sqe(fd, poll_events(interest), user_data(fd as u32, generation));
        // SAFETY: a poll SQE points at no memory of ours.
        unsafe { self.ring.write_sqe(sqe) };
        self.ring.publish();
    }

    /// Queue the removal of `fd`'s poll of `generation` (room was made).
    fn disarm(&mut self, fd: RawFd, generation: u32) {
        let sqe = poll_remove_sqe(user_data(fd as u32, generation));
        // SAFETY: a poll-remove SQE carries the target's user data, not a pointer.
        unsafe { self.ring.write_sqe(sqe) };
        self.ring.publish();
    }

    /// Re-arm every fd whose poll fired and is still registered for it.
    fn rearm_fired(&mut self) -> io::Result<()> {
        while let Some(&fd) = self.fired.last() {
            let Some(entry) = self.registry.get(fd).copied() else {
                self.fired.pop();
                continue;
            };
            if entry.state != PollState::Fired {
                self.fired.pop();
                continue;
            }
            self.make_room(1)?;
            self.fired.pop();
            let generation = self.next_generation();
            self.arm(fd, entry.registration.interest, generation);
            if let Some(entry) = self.registry.get_mut(fd) {
                entry.generation = generation;
                entry.state = PollState::Armed;
            }
        }
        Ok(())
    }

    /// One `io_uring_enter`: submit what is queued, then wait for a completion or `timeout`
    /// (not at all for a zero timeout). A timeout or a signal is not an error: the caller
    /// looks at what completed and at its deadline.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let submit = self.ring.unconsumed();
        let ts = timeout.map(|t| Timespec {
            tv_sec: t.as_secs().min(MAX_WAIT_SECS) as _,
            tv_nsec: t.subsec_nanos() as _,
        });
        let min_complete = u32::from(timeout != Some(Duration::ZERO));
        self.syscalls += 1;
        match self
            .ring
            .enter_with_timeout(submit, min_complete, ts.as_ref())
        {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Reap every completion into `events`, flushing the kernel's overflow list too.
    fn collect(&mut self, events: &mut Vec<Event>) -> io::Result<()> {
        loop {
            let registry = &mut self.registry;
            let fired = &mut self.fired;
            self.ring.reap(|data, res| {
                if data & CANCEL_TAG != 0 {
                    return; // a POLL_REMOVE's own completion
                }
                let (fd, generation) = split_user_data(data);
                let fd = fd as RawFd;
                let Some(entry) = registry.get_mut(fd) else {
                    return; // unregistered since
                };
                if entry.generation != generation || entry.state != PollState::Armed {
                    return; // a poll replaced by `modify`, or cancelled
                }
                if res == -libc::EBADF {
                    entry.state = PollState::Parked;
                    return;
                }
                entry.state = PollState::Fired;
                fired.push(fd);
                if res == -libc::ECANCELED {
                    return; // cancelled by the kernel itself: re-armed, nothing to report
                }
                let interest = entry.registration.interest;
                let ready = if res < 0 {
                    // The kernel could not poll the fd: the next read or write will say why.
                    Ready::from_conditions(interest, false, false, true, false)
                } else {
                    ready_from_mask(interest, res as u32)
                };
                events.push(Event::new(entry.registration.token, ready));
            });
            if !self.ring.sq_flags().contains(IoringSqFlags::CQ_OVERFLOW) {
                return Ok(());
            }
            // Completions wait in the kernel's overflow list: GETEVENTS moves them to the CQ.
            self.syscalls += 1;
            self.ring.enter(0, 0, IoringEnterFlags::GETEVENTS)?;
        }
    }
}

/// `poll(2)` events for `interest`: `POLLRDHUP` with reading, so a peer's
/// `shutdown(SHUT_WR)` is a hang-up (as epoll's `EPOLLRDHUP`). The kernel adds `POLLERR` and
/// `POLLHUP` itself.
fn poll_events(interest: Interest) -> u32 {
    let mut events = 0;
    if interest.is_readable() {
        events |= libc::POLLIN | libc::POLLRDHUP;
    }
    if interest.is_writable() {
        events |= libc::POLLOUT;
    }
    events as u32
}

/// The readiness of a poll's result mask, as the poll backend computes it. io_uring always
/// reports `POLLRDHUP` if it happens; it is a hang-up only for a registration for reading (as
/// `poll(2)` and epoll, which are asked for it only then).
fn ready_from_mask(interest: Interest, mask: u32) -> Ready {
    let has = |bits: libc::c_short| mask & (bits as u16 as u32) != 0;
    let hangup = has(libc::POLLHUP) || (interest.is_readable() && has(libc::POLLRDHUP));
    Ready::from_conditions(
        interest,
        has(libc::POLLIN | libc::POLLPRI),
        has(libc::POLLOUT),
        has(libc::POLLERR),
        hangup,
    )
}

/// The error of a ring that could not be set up, saying what it means for this backend.
fn refused(e: io::Error) -> io::Error {
    let why = match e.raw_os_error() {
        Some(libc::ENOSYS) => "this kernel has no io_uring (ENOSYS)",
        Some(libc::EPERM) => {
            "io_uring is not permitted here (EPERM: a seccomp filter, or the sysctl \
             kernel.io_uring_disabled)"
        }
        _ => return e,
    };
    io::Error::new(
        e.kind(),
        format!("the uring backend cannot be used: {why}; use epoll, poll or select"),
    )
}

impl Selector for UringSelector {
    fn backend(&self) -> Backend {
        Backend::Uring
    }

    fn register(&mut self, fd: RawFd, interest: Interest, token: Token) -> io::Result<()> {
        self.registry.check_new(fd, interest)?;
        // The poll would fail with EBADF only at the next select: refuse a closed fd now.
        self.syscalls += 1;
        crate::fd::check_open(fd)?;
        self.make_room(1)?;
        let generation = self.next_generation();
        self.arm(fd, interest, generation);
        let entry = Entry {
            registration: Registration { interest, token },
            generation,
            state: PollState::Armed,
        };
        self.registry.insert(fd, entry);
        Ok(())
    }

    fn modify(&mut self, fd: RawFd, interest: Interest, token: Token) -> io::Result<()> {
        let old = *self.registry.check_existing(fd, interest)?;
        if self.registry.retoken_if_unchanged(fd, interest, token) {
            return Ok(());
        }
        if old.state == PollState::Parked {
            // Closed: EBADF as epoll says; if the number names a new file, watch that one.
            self.syscalls += 1;
            crate::fd::check_open(fd)?;
        }
        self.make_room(2)?;
        if old.state == PollState::Armed {
            self.disarm(fd, old.generation);
        }
        let generation = self.next_generation();
        self.arm(fd, interest, generation);
        let entry = Entry {
            registration: Registration { interest, token },
            generation,
            state: PollState::Armed,
        };
        self.registry.insert(fd, entry);
        Ok(())
    }

    fn unregister(&mut self, fd: RawFd) -> io::Result<()> {
        let entry = *self.registry.check_registered(fd)?;
        if entry.state == PollState::Armed {
            // Submitted now: the poll holds the file open until the kernel removes it.
            // If the kernel cannot take it now, it goes with the next `select`'s enter.
            self.make_room(1)?;
            self.disarm(fd, entry.generation);
            let _ = self.submit();
        }
        self.registry.remove(fd).map(drop)
    }

    fn select(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<usize> {
        events.clear();
        // Completions that report nothing (replaced polls, closed fds, removals) wake the
        // wait: it then waits again for the time that remains, so a timeout is never cut
        // short (and `None` keeps blocking).
        let deadline = match timeout {
            Some(t) if !t.is_zero() => Instant::now().checked_add(t),
            _ => None,
        };
        let mut this_wait = timeout;
        loop {
            self.rearm_fired()?;
            self.wait(this_wait)?;
            self.collect(events)?;
            if !events.is_empty() {
                return Ok(events.len());
            }
            match (timeout, deadline) {
                (Some(t), _) if t.is_zero() => return Ok(0),
                (Some(_), Some(deadline)) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(0);
                    }
                    this_wait = Some(left);
                }
                // No timeout, or one too long to have a deadline (centuries): keep waiting.
                _ => {}
            }
        }
    }

    fn len(&self) -> usize {
        self.registry.len()
    }

    fn registration(&self, fd: RawFd) -> Option<Registration> {
        self.registry.get(fd).map(|e| e.registration)
    }

    fn notifier(&mut self, token: Token) -> io::Result<Notifier> {
        crate::notifier::register_fd_notifier(self, token)
    }

    fn syscalls(&self) -> u64 {
        self.syscalls
    }

    /// `None`: the ring's fd is readable only while completions are posted, and a fired poll
    /// is re-armed by the next `select`, so a host poller watching it would miss an fd that
    /// stays ready (it is not level-triggered readiness of the registered fds).
    fn as_raw_fd(&self) -> Option<RawFd> {
        None
    }
}

#[cfg(test)]
#[path = "selector_tests.rs"]
mod tests;
