//! Delivering Unix signals to event loops: a process-wide, async-signal-safe handler counts each
//! signal in every [`SignalPipe`] subscribed to it and, when that count was zero, writes the
//! signal's number as one byte to the pipe; the loop reads those bytes on its own thread and
//! takes the counts.
//!
//! This is Python's `signal.set_wakeup_fd` generalised to several loops per process (tests run
//! loops in parallel threads). The subscriptions live in a fixed array of atomics, the only
//! thing the handler reads; everything else (counting subscribers, installing and restoring
//! dispositions) happens under a mutex, outside the handler.
//!
//! The handler never writes to a closed (and maybe reused) fd: it counts itself "in flight"
//! around its writes, and [`SignalPipe::unsubscribe`] clears its slot, then waits until no
//! handler that may have read it is in flight, before the pipe may be closed. Handlers count
//! themselves in one of two counters, chosen by the parity of an epoch that each unsubscribe
//! advances (and confirmed unchanged once counted, as an RCU reader would): the unsubscriber
//! waits only for the counter of the epoch it ended, which new handlers no longer enter, so a
//! steady stream of signals on other threads cannot keep it waiting. Unsubscribes end epochs
//! one at a time, under a lock, so every older epoch was waited for already.
//!
//! A handler that another library installed before tulip keeps running: tulip's handler calls
//! it after writing to the pipes (as signal-hook chains), and it is put back when the last
//! subscriber of its signal leaves.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use nix::errno::Errno;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet};

use crate::syscall::cvt;

/// The highest signal number a [`SignalPipe`] accepts (Linux's `SIGRTMAX`); each signal is one
/// byte in the pipe.
pub const MAX_SIGNAL: libc::c_int = 64;

/// How many (signal, pipe) subscriptions the whole process can hold at once.
const SLOT_COUNT: usize = 256;

/// The subscriptions the handler reads: `signum << 32 | write fd`, or 0 for a free slot (no
/// signal is numbered 0). One word per slot, so the handler never sees half of an update.
static SLOTS: [AtomicU64; SLOT_COUNT] = [const { AtomicU64::new(0) }; SLOT_COUNT];

/// Per slot, the fork generation ([`crate::fork::generation`]) of the process that subscribed:
/// a child inherits the subscriptions (process memory) and the write fds of its parent's pipes,
/// and the handler skips those, so that a signal sent to the child never reaches the parent's
/// loops. Written before the slot, under [`DISPOSITIONS`].
static SLOT_FORK_GENERATION: [AtomicU64; SLOT_COUNT] = [const { AtomicU64::new(0) }; SLOT_COUNT];

/// Per slot, how many times its signal arrived since [`SignalPipe::receive`] last took the
/// count. The handler writes the slot's byte only when it moves this from zero, and `receive`
/// takes the count after reading the byte, so a pipe holds at most one byte per subscription
/// however fast signals come (it never fills, and none is dropped), and a storm of signals
/// costs the handler no system call beyond the first of each batch. (A count wraps after 2^32
/// signals between two looks: that many cannot arrive in one loop iteration.)
static SLOT_RECEIVED: [AtomicU32; SLOT_COUNT] = [const { AtomicU32::new(0) }; SLOT_COUNT];

/// How many handler invocations are between their first read of [`SLOTS`] and their last
/// write, counted by the parity of the [`EPOCH`] they entered in.
static IN_FLIGHT: [AtomicUsize; 2] = [const { AtomicUsize::new(0) }; 2];

/// Advanced by every unsubscribe (see the module doc).
static EPOCH: AtomicUsize = AtomicUsize::new(0);

/// Per signal, the handler that was installed before tulip's, for tulip's to chain to: the
/// `sa_sigaction` word (0 when it is `SIG_DFL` or `SIG_IGN`: nothing to call) and whether it
/// takes `SA_SIGINFO`'s three arguments. Written under [`DISPOSITIONS`], read by the handler.
static PREVIOUS_HANDLER: [AtomicUsize; MAX_SIGNAL as usize + 1] =
    [const { AtomicUsize::new(0) }; MAX_SIGNAL as usize + 1];
static PREVIOUS_SIGINFO: [AtomicBool; MAX_SIGNAL as usize + 1] =
    [const { AtomicBool::new(false) }; MAX_SIGNAL as usize + 1];

/// What only non-handler code touches: per signal, how many subscriptions exist and the
/// disposition to restore when the last one goes.
struct Dispositions {
    subscribers: [u32; MAX_SIGNAL as usize + 1],
    previous: [Option<libc::sigaction>; MAX_SIGNAL as usize + 1],
}

static DISPOSITIONS: Mutex<Dispositions> = Mutex::new(Dispositions {
    subscribers: [0; MAX_SIGNAL as usize + 1],
    previous: [None; MAX_SIGNAL as usize + 1],
});

fn dispositions() -> MutexGuard<'static, Dispositions> {
    // The data stays consistent even if a holder panicked: every update is a single store.
    DISPOSITIONS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A non-blocking pipe that receives, as one byte each, the signals it is subscribed to.
///
/// Register [`SignalPipe::fd`] for reading in a selector; when it is readable, call
/// [`SignalPipe::receive`]. Several pipes (several event loops) may subscribe to the same signal:
/// each receives it. Dropping the pipe unsubscribes it from everything first, restoring a
/// signal's previous disposition when its last subscriber goes.
///
/// Every signal the handler runs for is counted: [`receive`](SignalPipe::receive) reports each
/// signal with how many times it arrived. (The kernel itself coalesces a signal sent while the
/// same one is still pending, before any handler runs.)
#[derive(Debug)]
pub struct SignalPipe {
    read: OwnedFd,
    write: OwnedFd,
    /// `(signum, slot index)` of each subscription of this pipe.
    subscriptions: Vec<(libc::c_int, usize)>,
}

impl SignalPipe {
    /// A new pipe, subscribed to nothing.
    ///
    /// # Errors
    /// The kernel's (`EMFILE`, `ENFILE`).
    pub fn new() -> io::Result<SignalPipe> {
        crate::fork::install()?;
        let (read, write) = crate::fd::pipe()?;
        Ok(SignalPipe {
            read,
            write,
            subscriptions: Vec::new(),
        })
    }

    /// The read end, to register for reading in a selector.
    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// True if this pipe receives `signum`.
    pub fn is_subscribed(&self, signum: libc::c_int) -> bool {
        self.subscriptions.iter().any(|&(s, _)| s == signum)
    }

    /// Start receiving `signum`. The first subscription to a signal in the process installs the
    /// handler (`SA_RESTART | SA_ONSTACK`), remembering the previous disposition. Subscribing
    /// twice to one signal is a no-op.
    ///
    /// # Errors
    /// `InvalidInput` for a signal that cannot be caught (`SIGKILL`, `SIGSTOP`) or is out of
    /// range (below 1, above [`MAX_SIGNAL`], or refused by `sigaction`, like the signals glibc
    /// reserves); `Other` if the process already holds the maximum number of subscriptions.
    pub fn subscribe(&mut self, signum: libc::c_int) -> io::Result<()> {
        check_signal(signum)?;
        if self.is_subscribed(signum) {
            return Ok(());
        }
        let mut state = dispositions();
        let slot = SLOTS
            .iter()
            .position(|s| s.load(Ordering::SeqCst) == 0)
            .ok_or_else(|| {
                io::Error::other(format!(
                    "cannot subscribe to signal {signum}: all {SLOT_COUNT} signal subscriptions of \
                     this process are in use"
                ))
            })?;
        let index = signum as usize;
        if state.subscribers[index] == 0 {
            // Chain to what is there now, and to what `install` says it replaced (should
            // another thread have changed it in between).
            remember_previous(signum, &query(signum)?);
            let previous = install(signum)?;
            remember_previous(signum, &previous);
            state.previous[index] = Some(previous);
        }
        state.subscribers[index] += 1;
        let fd = self.write.as_fd().as_raw_fd();
        SLOT_RECEIVED[slot].store(0, Ordering::SeqCst);
        SLOT_FORK_GENERATION[slot].store(crate::fork::generation(), Ordering::SeqCst);
        SLOTS[slot].store(encode(signum, fd), Ordering::SeqCst);
        self.subscriptions.push((signum, slot));
        Ok(())
    }

    /// Stop receiving `signum`; returns whether this pipe was subscribed to it. When it was the
    /// last subscription to the signal in the process, the previous disposition is restored.
    ///
    /// On return no signal handler is writing to this pipe any more.
    pub fn unsubscribe(&mut self, signum: libc::c_int) -> bool {
        let Some(position) = self.subscriptions.iter().position(|&(s, _)| s == signum) else {
            return false;
        };
        let (_, slot) = self.subscriptions.swap_remove(position);
        let mut state = dispositions();
        SLOTS[slot].store(0, Ordering::SeqCst);
        let index = signum as usize;
        state.subscribers[index] -= 1;
        if state.subscribers[index] == 0 {
            if let Some(previous) = state.previous[index].take() {
                restore(signum, &previous);
            }
            PREVIOUS_HANDLER[index].store(0, Ordering::SeqCst);
        }
        // A handler that read the slot before it was cleared may still be writing to our fd:
        // wait for it (handlers are short and never block), so the caller may close the pipe.
        // Only handlers of the epoch this ends can have: later ones count in the other
        // counter, and find the slot cleared. (Under the lock, so epochs end one at a time.)
        let ended = EPOCH.fetch_add(1, Ordering::SeqCst) & 1;
        while IN_FLIGHT[ended].load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
        drop(state);
        true
    }

    /// The signals received since the last call, each with how many times it arrived: calls
    /// `on_signal(signum, count)` once per signal, in the order of their first arrival. One
    /// `read(2)` of the pipe, which takes everything unless a subscription was dropped and made
    /// again with its byte unread (the pipe then stays readable for the next call).
    ///
    /// A signal that arrives while this runs is counted either here or by the next call (its
    /// byte written anew): none is lost or counted twice.
    ///
    /// # Errors
    /// The kernel's; never `WouldBlock`.
    pub fn receive(&self, mut on_signal: impl FnMut(libc::c_int, u32)) -> io::Result<()> {
        let mut buf = [0u8; 2 * MAX_SIGNAL as usize];
        let got = match crate::fd::read(self.read.as_fd(), &mut buf) {
            Ok(n) => &buf[..n],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        };
        for &byte in got {
            let signum = libc::c_int::from(byte);
            let Some(&(_, slot)) = self.subscriptions.iter().find(|&&(s, _)| s == signum) else {
                continue; // unsubscribed since
            };
            // Taken only now that its byte is read: a handler that counts after this writes a
            // new byte. Zero for a second byte of the same signal in one read (one left by an
            // earlier subscription): its signals were taken with the first.
            let count = SLOT_RECEIVED[slot].swap(0, Ordering::SeqCst);
            if count != 0 {
                on_signal(signum, count);
            }
        }
        Ok(())
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        // Unsubscribe before the fields close the pipe: see `unsubscribe`.
        while let Some(&(signum, _)) = self.subscriptions.last() {
            self.unsubscribe(signum);
        }
    }
}

/// Whether `signum` can be subscribed to: `InvalidInput` for `SIGKILL`, `SIGSTOP` and numbers
/// outside `1..=MAX_SIGNAL`. (`sigaction` may still refuse a number in range.)
///
/// # Errors
/// `InvalidInput`, with the reason.
pub fn check_signal(signum: libc::c_int) -> io::Result<()> {
    if !(1..=MAX_SIGNAL).contains(&signum) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal number {signum} is out of range (1..={MAX_SIGNAL})"),
        ));
    }
    if signum == libc::SIGKILL || signum == libc::SIGSTOP {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal {signum} (SIGKILL or SIGSTOP) cannot be caught"),
        ));
    }
    Ok(())
}

/// Give `signum` its default disposition (`SIG_DFL`), as in a program that never touched it.
///
/// For tests that must see what the default does: the Rust runtime sets `SIGPIPE` to
/// `SIG_IGN` before `main`, which hides any write that would raise it; a child process that
/// restores the default dies of such a write, so a test can fail. Not for a signal a
/// [`SignalPipe`] is subscribed to: its last unsubscribe would put back what it saved.
///
/// # Errors
/// `InvalidInput` as [`check_signal`], or if `sigaction` refuses the number.
pub fn restore_default(signum: libc::c_int) -> io::Result<()> {
    check_signal(signum)?;
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    set_action(signum, default.into()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot restore the default action of signal {signum}: {e}"),
        )
    })?;
    Ok(())
}

fn encode(signum: libc::c_int, fd: RawFd) -> u64 {
    ((signum as u64) << 32) | u64::from(fd as u32)
}

/// The process-wide handler: write the signal number to every subscribed pipe, then call the
/// handler installed before tulip's, if there was one.
///
/// Only async-signal-safe operations: atomics and `write(2)` (rustix's, which on Linux is the
/// system call itself, and libc's `write` elsewhere); `errno` is preserved for the code the
/// signal interrupted.
extern "C" fn on_signal(
    signum: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    let saved_errno = Errno::last_raw();
    // Count ourselves in the current epoch, confirmed unchanged after counting: an unsubscribe
    // that ends this epoch then waits for us, and one that ended it before finds us retrying.
    let parity = loop {
        let epoch = EPOCH.load(Ordering::SeqCst);
        let parity = epoch & 1;
        IN_FLIGHT[parity].fetch_add(1, Ordering::SeqCst);
        if EPOCH.load(Ordering::SeqCst) == epoch {
            break parity;
        }
        IN_FLIGHT[parity].fetch_sub(1, Ordering::SeqCst);
    };
    let byte = [signum as u8];
    let generation = crate::fork::generation();
    for (slot, (value, slot_generation)) in SLOTS.iter().zip(&SLOT_FORK_GENERATION).enumerate() {
        let value = value.load(Ordering::SeqCst);
        let ours = slot_generation.load(Ordering::SeqCst) == generation;
        if value != 0 && (value >> 32) as libc::c_int == signum && ours {
            // SAFETY: the fd stays open while this borrow lives: `unsubscribe` clears the slot
            // and ends the epoch before the pipe closes, then waits for the handlers counted in
            // that epoch, us among them if we read the slot before it was cleared (a handler
            // counted in a later epoch reads it cleared). It is not -1: it came from an
            // `OwnedFd`.
            let fd = unsafe { BorrowedFd::borrow_raw(value as u32 as RawFd) };
            // Counted; a byte is written only for the first signal since the count was taken
            // (see `SLOT_RECEIVED`). The pipe holds at most a byte per subscription, so it is
            // never full; should the write fail all the same, the count goes back to zero, so
            // that the next signal writes (those counted meanwhile are lost, not the pipe).
            if SLOT_RECEIVED[slot].fetch_add(1, Ordering::SeqCst) == 0
                && rustix::io::write(fd, &byte).is_err()
            {
                SLOT_RECEIVED[slot].store(0, Ordering::SeqCst);
            }
        }
    }
    IN_FLIGHT[parity].fetch_sub(1, Ordering::SeqCst);
    chain(signum, info, context);
    Errno::set_raw(saved_errno);
}

/// Call the handler that was installed for `signum` before tulip's, if it is a function.
fn chain(signum: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let Some(index) = usize::try_from(signum)
        .ok()
        .filter(|&i| i < PREVIOUS_HANDLER.len())
    else {
        return;
    };
    let previous = PREVIOUS_HANDLER[index].load(Ordering::SeqCst);
    if previous == 0 || previous == own_handler() {
        return;
    }
    if PREVIOUS_SIGINFO[index].load(Ordering::SeqCst) {
        type Action = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);
        // SAFETY: `previous` is the `sa_sigaction` of a disposition the kernel reported for
        // this signal with `SA_SIGINFO` set, so it is a function of this three-argument type,
        // installed by code of this process to be called as a signal handler; `info` and
        // `context` are what the kernel handed this handler for the same signal.
        let action: Action = unsafe { std::mem::transmute::<usize, Action>(previous) };
        action(signum, info, context);
    } else {
        type Handler = extern "C" fn(libc::c_int);
        // SAFETY: as above, without `SA_SIGINFO`: a one-argument signal handler.
        let handler: Handler = unsafe { std::mem::transmute::<usize, Handler>(previous) };
        handler(signum);
    }
}

/// The `sa_sigaction` word of tulip's handler.
fn own_handler() -> libc::sighandler_t {
    on_signal as *const () as libc::sighandler_t
}

/// Remember `previous`, the disposition tulip's handler replaces for `signum`, for [`chain`].
fn remember_previous(signum: libc::c_int, previous: &libc::sigaction) {
    let index = signum as usize;
    let handler = previous.sa_sigaction;
    let callable = handler != libc::SIG_DFL && handler != libc::SIG_IGN && handler != own_handler();
    PREVIOUS_SIGINFO[index].store(previous.sa_flags & libc::SA_SIGINFO != 0, Ordering::SeqCst);
    PREVIOUS_HANDLER[index].store(if callable { handler } else { 0 }, Ordering::SeqCst);
}

/// The disposition of `signum` now, unchanged.
fn query(signum: libc::c_int) -> io::Result<libc::sigaction> {
    let mut current: libc::sigaction =
        SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty()).into();
    // SAFETY: a null new action only queries; `current` is an initialised sigaction the
    // kernel overwrites.
    cvt(unsafe { libc::sigaction(signum, std::ptr::null(), &mut current) }).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot read the disposition of signal {signum}: {e}"),
        )
    })?;
    Ok(current)
}

/// Install [`on_signal`] for `signum`; returns the disposition it replaced.
fn install(signum: libc::c_int) -> io::Result<libc::sigaction> {
    let handler = SigHandler::SigAction(on_signal);
    let flags = SaFlags::SA_RESTART | SaFlags::SA_ONSTACK | SaFlags::SA_SIGINFO;
    let action = SigAction::new(handler, flags, SigSet::empty());
    set_action(signum, action.into()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot install a handler for signal {signum}: {e}"),
        )
    })
}

/// Put back the disposition `install` replaced.
fn restore(signum: libc::c_int, previous: &libc::sigaction) {
    // It cannot fail for a signal that `install` accepted, so the result is ignored.
    let _ = set_action(signum, *previous);
}

/// `sigaction(2)`: give `signum` the disposition `action`; returns the one it replaces.
///
/// The one call of this module that stays `unsafe`, and it goes to libc: nix's `sigaction`
/// is unsafe too, and it names signals by `Signal`, which has no real-time signals
/// (`SIGRTMIN..=SIGRTMAX`), while [`SignalPipe`] takes any number up to [`MAX_SIGNAL`]. nix
/// builds the actions (`SigAction::new`), so no half-initialised `sigaction` is ever made.
fn set_action(signum: libc::c_int, action: libc::sigaction) -> io::Result<libc::sigaction> {
    // Any initialised value will do: the kernel overwrites it.
    let mut previous: libc::sigaction =
        SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty()).into();
    // SAFETY: both pointers are to initialised sigaction values that outlive the call. The
    // dispositions this module installs are SIG_DFL, `on_signal` (which does only
    // async-signal-safe work), or one the kernel handed back from this process's earlier state.
    cvt(unsafe { libc::sigaction(signum, &action, &mut previous) })?;
    Ok(previous)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::{raise, Signal};

    /// What `receive` reports now: `(signum, count)` pairs.
    fn received(pipe: &SignalPipe) -> Vec<(libc::c_int, u32)> {
        let mut got = Vec::new();
        pipe.receive(|signum, count| got.push((signum, count)))
            .unwrap();
        got
    }

    /// The handler now installed for `signum` (`SIG_DFL`, `SIG_IGN` or a function's address).
    fn current_handler(signum: libc::c_int) -> libc::sighandler_t {
        query(signum).unwrap().sa_sigaction
    }

    #[test]
    fn uncatchable_and_out_of_range_signals_are_invalid_input() {
        let mut pipe = SignalPipe::new().unwrap();
        for signum in [libc::SIGKILL, libc::SIGSTOP, 0, -1, MAX_SIGNAL + 1] {
            let err = pipe.subscribe(signum).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "signal {signum}");
        }
        assert!(!pipe.unsubscribe(libc::SIGKILL));
    }

    #[test]
    fn restore_default_sets_sig_dfl_and_refuses_what_cannot_be_caught() {
        // SIGURG's default action is to ignore it, and no other test of this crate uses it.
        restore_default(libc::SIGURG).unwrap();
        assert_eq!(current_handler(libc::SIGURG), libc::SIG_DFL);
        for signum in [libc::SIGKILL, 0, MAX_SIGNAL + 1] {
            let err = restore_default(signum).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "signal {signum}");
        }
    }

    /// A real-time signal, which nix's `Signal` cannot name, from another process (`kill(1)`),
    /// so that no `unsafe` is needed to send it.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_real_time_signal_can_be_subscribed_to() {
        // SIGRTMIN + 16 under glibc (whose SIGRTMIN is 34): no test or library here uses it, and
        // its default action (terminate) is replaced before it is sent.
        let signum = 50;
        let mut pipe = SignalPipe::new().unwrap();
        pipe.subscribe(signum).unwrap();
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("kill -{signum} {}", std::process::id()))
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signum}: {status}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let got = loop {
            let got = received(&pipe);
            if !got.is_empty() || std::time::Instant::now() > deadline {
                break got;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        assert_eq!(got, [(signum, 1)]);
        assert!(pipe.unsubscribe(signum));
        assert_eq!(current_handler(signum), libc::SIG_DFL);
    }

    static CHAINED: AtomicUsize = AtomicUsize::new(0);

    extern "C" fn count_chained(_: libc::c_int) {
        CHAINED.fetch_add(1, Ordering::SeqCst);
    }

    #[test]
    fn a_handler_installed_before_keeps_running_and_comes_back_when_the_last_subscriber_leaves() {
        // SIGVTALRM: no other test of this crate uses it, and its default action (terminate)
        // is replaced by the "other library's" handler before it is raised.
        let signum = libc::SIGVTALRM;
        let theirs = SigAction::new(
            SigHandler::Handler(count_chained),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        let before = set_action(signum, theirs.into()).unwrap();
        let mut pipe = SignalPipe::new().unwrap();
        pipe.subscribe(signum).unwrap();
        raise(Signal::SIGVTALRM).unwrap();
        assert_eq!(received(&pipe), [(signum, 1)], "tulip's pipe hears it");
        assert_eq!(
            CHAINED.load(Ordering::SeqCst),
            1,
            "and the earlier handler runs too"
        );
        assert!(pipe.unsubscribe(signum));
        assert_eq!(
            current_handler(signum),
            count_chained as *const () as libc::sighandler_t
        );
        raise(Signal::SIGVTALRM).unwrap();
        assert_eq!(CHAINED.load(Ordering::SeqCst), 2, "alone again");
        set_action(signum, before).unwrap();
    }

    /// Unsubscribing waits only for the handlers that may have read its slot: with other
    /// threads taking a steady stream of signals, every unsubscribe still returns.
    #[test]
    fn unsubscribing_returns_while_other_threads_take_a_stream_of_signals() {
        // SIGWINCH is ignored by default, so a signal arriving after the last unsubscribe is
        // harmless; the storm runs on its own subscription, so the handler is installed.
        let _serial = WINCH.lock().unwrap_or_else(|p| p.into_inner());
        let mut storm_pipe = SignalPipe::new().unwrap();
        storm_pipe.subscribe(libc::SIGWINCH).unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let sent = std::sync::Arc::new(AtomicUsize::new(0));
        let storms: Vec<_> = (0..2)
            .map(|_| {
                let (stop, sent) = (stop.clone(), sent.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        raise(Signal::SIGWINCH).unwrap();
                        sent.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        while sent.load(Ordering::SeqCst) < 100 {
            std::thread::yield_now();
        }
        // At least 200 unsubscribes, and as many as it takes for 1,000 signals to arrive
        // meanwhile: each must return however the storm keeps the handler busy.
        let before = sent.load(Ordering::SeqCst);
        let mut unsubscribed = 0;
        while unsubscribed < 200 || sent.load(Ordering::SeqCst) - before < 1000 {
            let mut pipe = SignalPipe::new().unwrap();
            pipe.subscribe(libc::SIGWINCH).unwrap();
            assert!(pipe.unsubscribe(libc::SIGWINCH));
            unsubscribed += 1;
        }
        stop.store(true, Ordering::SeqCst);
        storms.into_iter().for_each(|t| t.join().unwrap());
        assert!(storm_pipe.unsubscribe(libc::SIGWINCH));
    }

    /// Signals that arrive while one's byte waits in the pipe are counted, not written: the
    /// pipe holds one byte, `receive` reports the count, and the next signal writes again.
    #[test]
    fn a_batch_of_signals_is_one_byte_and_its_count() {
        let _serial = WINCH.lock().unwrap_or_else(|p| p.into_inner());
        let mut pipe = SignalPipe::new().unwrap();
        pipe.subscribe(libc::SIGWINCH).unwrap();
        // SIGPROF: no other test of this crate uses it, and its default action (terminate) is
        // replaced before it is raised.
        pipe.subscribe(libc::SIGPROF).unwrap();
        for round in 0..3 {
            // Each raise is handled before it returns.
            for _ in 0..1000 {
                raise(Signal::SIGWINCH).unwrap();
            }
            raise(Signal::SIGPROF).unwrap();
            raise(Signal::SIGWINCH).unwrap();
            let mut buf = [0u8; 16];
            let bytes = rustix::io::read(&pipe.read, &mut buf).unwrap();
            assert_eq!(
                &buf[..bytes],
                &[libc::SIGWINCH as u8, libc::SIGPROF as u8],
                "round {round}: a byte per signal number"
            );
            // Put them back for `receive` (the test's peek took them).
            rustix::io::write(&pipe.write, &buf[..bytes]).unwrap();
            assert_eq!(
                received(&pipe),
                [(libc::SIGWINCH, 1001), (libc::SIGPROF, 1)],
                "round {round}: in the order of first arrival, with their counts"
            );
            assert_eq!(received(&pipe), []);
        }
        assert!(pipe.unsubscribe(libc::SIGWINCH));
        assert!(pipe.unsubscribe(libc::SIGPROF));
    }

    /// The tests that use SIGWINCH run one at a time.
    static WINCH: Mutex<()> = Mutex::new(());

    #[test]
    fn a_raised_signal_arrives_as_its_number_and_the_disposition_is_restored() {
        let _serial = WINCH.lock().unwrap_or_else(|p| p.into_inner());
        // SIGWINCH is ignored by default, so this test cannot kill the process, and no other
        // test of this crate uses it.
        let mut pipe = SignalPipe::new().unwrap();
        pipe.subscribe(libc::SIGWINCH).unwrap();
        pipe.subscribe(libc::SIGWINCH).unwrap();
        raise(Signal::SIGWINCH).unwrap();
        assert_eq!(received(&pipe), [(libc::SIGWINCH, 1)]);
        assert_eq!(received(&pipe), []);
        assert!(pipe.unsubscribe(libc::SIGWINCH));
        assert!(!pipe.unsubscribe(libc::SIGWINCH));
        assert_ne!(current_handler(libc::SIGWINCH), own_handler());
    }
}
