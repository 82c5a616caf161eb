//! Delivering Unix signals to event loops: a process-wide, async-signal-safe handler writes each
//! signal's number as one byte to the wake-up pipe of every [`SignalPipe`] subscribed to it, and
//! the loop reads those bytes on its own thread.
//!
//! This is Python's `signal.set_wakeup_fd` generalised to several loops per process (tests run
//! loops in parallel threads). The subscriptions live in a fixed array of atomics, the only
//! thing the handler reads; everything else (counting subscribers, installing and restoring
//! dispositions) happens under a mutex, outside the handler.
//!
//! The handler never writes to a closed (and maybe reused) fd: it counts itself "in flight"
//! around its writes, and [`SignalPipe::unsubscribe`] clears its slot, then waits until no
//! handler is in flight, before the pipe may be closed.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::syscall::cvt;

/// The highest signal number a [`SignalPipe`] accepts (Linux's `SIGRTMAX`); each signal is one
/// byte in the pipe.
pub const MAX_SIGNAL: libc::c_int = 64;

/// How many (signal, pipe) subscriptions the whole process can hold at once.
const SLOT_COUNT: usize = 256;

/// The subscriptions the handler reads: `signum << 32 | write fd`, or 0 for a free slot (no
/// signal is numbered 0). One word per slot, so the handler never sees half of an update.
static SLOTS: [AtomicU64; SLOT_COUNT] = [const { AtomicU64::new(0) }; SLOT_COUNT];

/// How many handler invocations are between their first read of [`SLOTS`] and their last write.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

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
/// [`SignalPipe::read`]. Several pipes (several event loops) may subscribe to the same signal:
/// each receives it. Dropping the pipe unsubscribes it from everything first, restoring a
/// signal's previous disposition when its last subscriber goes.
///
/// Signals coalesce when the pipe is full, as the kernel coalesces pending signals.
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
            state.previous[index] = Some(install(signum)?);
        }
        state.subscribers[index] += 1;
        let fd = self.write.as_fd().as_raw_fd();
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
        {
            let mut state = dispositions();
            SLOTS[slot].store(0, Ordering::SeqCst);
            let index = signum as usize;
            state.subscribers[index] -= 1;
            if state.subscribers[index] == 0 {
                if let Some(previous) = state.previous[index].take() {
                    restore(signum, &previous);
                }
            }
        }
        // A handler that read the slot before it was cleared may still be writing to our fd:
        // wait for it (handlers are short and never block), so the caller may close the pipe.
        while IN_FLIGHT.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
        true
    }

    /// Read the signals received since the last call into `buf`, one signal number per byte,
    /// and return them (empty when none is pending). Call again while it fills `buf`.
    ///
    /// # Errors
    /// The kernel's; never `WouldBlock`.
    pub fn read<'a>(&self, buf: &'a mut [u8]) -> io::Result<&'a [u8]> {
        match crate::fd::read(self.read.as_fd(), buf) {
            Ok(n) => Ok(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(&buf[..0]),
            Err(e) => Err(e),
        }
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
    // SAFETY: sigaction is plain data for which all-zeroes is a valid (empty) value.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = libc::SIG_DFL;
    // SAFETY: `action.sa_mask` is a valid, writable sigset_t.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: `action` is a valid sigaction that outlives the call, and SIG_DFL installs no
    // code of ours; a null old-action pointer is allowed.
    cvt(unsafe { libc::sigaction(signum, &action, std::ptr::null_mut()) }).map_err(|e| {
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

/// The process-wide handler: write the signal number to every subscribed pipe.
///
/// Only async-signal-safe operations: atomics and `write(2)`; `errno` is preserved for the
/// code the signal interrupted.
extern "C" fn on_signal(signum: libc::c_int) {
    let saved_errno = errno::get();
    IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    let byte = signum as u8;
    for slot in &SLOTS {
        let value = slot.load(Ordering::SeqCst);
        if value != 0 && (value >> 32) as libc::c_int == signum {
            let fd = value as u32 as RawFd;
            // SAFETY: `byte` outlives the call. The fd is open: `unsubscribe` clears the slot
            // before the pipe closes and then waits for IN_FLIGHT, which we raised before
            // reading the slot, to drop to zero. A full pipe (EAGAIN) just drops the byte.
            unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
        }
    }
    IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    errno::set(saved_errno);
}

/// Install [`on_signal`] for `signum`; returns the disposition it replaced.
fn install(signum: libc::c_int) -> io::Result<libc::sigaction> {
    // SAFETY: sigaction is plain data for which all-zeroes is a valid (empty) value.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    action.sa_flags = libc::SA_RESTART | libc::SA_ONSTACK;
    // SAFETY: `action.sa_mask` is a valid, writable sigset_t.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: as above; `previous` is writable for the call's duration.
    let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to valid sigaction values that outlive the call, and the
    // handler only does async-signal-safe work.
    cvt(unsafe { libc::sigaction(signum, &action, &mut previous) }).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot install a handler for signal {signum}: {e}"),
        )
    })?;
    Ok(previous)
}

/// Put back the disposition `install` replaced.
fn restore(signum: libc::c_int, previous: &libc::sigaction) {
    // SAFETY: `previous` is the value the kernel gave us for this signal, valid and live for
    // the call; a null old-action pointer is allowed. It cannot fail for a signal that
    // `install` accepted, so the result is ignored.
    unsafe { libc::sigaction(signum, previous, std::ptr::null_mut()) };
}

/// Saving and restoring `errno` around the handler.
mod errno {
    #[cfg(any(target_os = "android", target_os = "netbsd", target_os = "openbsd"))]
    use libc::__errno as location;
    #[cfg(any(target_os = "linux", target_os = "emscripten"))]
    use libc::__errno_location as location;
    #[cfg(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "tvos",
        target_os = "watchos",
        target_os = "freebsd",
        target_os = "dragonfly"
    ))]
    use libc::__error as location;

    pub(super) fn get() -> libc::c_int {
        // SAFETY: the location is this thread's errno, always valid to read.
        unsafe { *location() }
    }

    pub(super) fn set(value: libc::c_int) {
        // SAFETY: the location is this thread's errno, always valid to write.
        unsafe { *location() = value }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // SAFETY: a null new-action pointer only queries; `current` is writable.
        let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::sigaction(libc::SIGURG, std::ptr::null(), &mut current) };
        assert_eq!(current.sa_sigaction, libc::SIG_DFL);
        for signum in [libc::SIGKILL, 0, MAX_SIGNAL + 1] {
            let err = restore_default(signum).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "signal {signum}");
        }
    }

    #[test]
    fn a_raised_signal_arrives_as_its_number_and_the_disposition_is_restored() {
        // SIGWINCH is ignored by default, so this test cannot kill the process, and no other
        // test of this crate uses it.
        let mut pipe = SignalPipe::new().unwrap();
        pipe.subscribe(libc::SIGWINCH).unwrap();
        pipe.subscribe(libc::SIGWINCH).unwrap();
        // SAFETY: raise takes no pointers; our handler is installed.
        assert_eq!(unsafe { libc::raise(libc::SIGWINCH) }, 0);
        let mut buf = [0u8; 16];
        assert_eq!(pipe.read(&mut buf).unwrap(), &[libc::SIGWINCH as u8]);
        assert_eq!(pipe.read(&mut buf).unwrap(), &[] as &[u8]);
        assert!(pipe.unsubscribe(libc::SIGWINCH));
        assert!(!pipe.unsubscribe(libc::SIGWINCH));
        // SAFETY: a null new-action pointer only queries; `current` is writable.
        let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::sigaction(libc::SIGWINCH, std::ptr::null(), &mut current) };
        assert_ne!(
            current.sa_sigaction,
            on_signal as extern "C" fn(libc::c_int) as usize
        );
    }
}
