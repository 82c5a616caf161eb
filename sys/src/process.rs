//! Child processes: signalling one by pid (or, on Linux, by pidfd, which can never reach a
//! recycled pid), and Linux's `pidfd_open`, whose fd becomes readable when the process exits:
//! what the loop's child watchers are built on. Reaping is left to `std::process::Child`
//! (`try_wait` is `waitpid(pid, WNOHANG)` for that one pid).

use std::io;
#[cfg(target_os = "linux")]
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::process::{Pid, Signal};

/// `SIGCHLD`'s number here.
pub const SIGCHLD: i32 = Signal::CHILD.as_raw();
/// `SIGTERM`'s number here.
pub const SIGTERM: i32 = Signal::TERM.as_raw();
/// `SIGKILL`'s number here.
pub const SIGKILL: i32 = Signal::KILL.as_raw();

/// The signal numbered `signum`, or `InvalidInput` if this OS has no such signal: a named one,
/// or on Linux a real-time one (`SIGRTMIN()..=SIGRTMAX()`, which asyncio's `send_signal` sends
/// as well).
fn signal(signum: i32) -> io::Result<Signal> {
    if let Some(signal) = Signal::from_named_raw(signum) {
        return Ok(signal);
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&signum) {
        // SAFETY: `from_raw_unchecked` asks for a signal number the C library does not keep
        // for itself: `SIGRTMIN()` is the first real-time signal left to applications (glibc
        // and musl reserve the ones below it), and `SIGRTMAX()` the last.
        return Ok(unsafe { Signal::from_raw_unchecked(signum) });
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{signum} is not a signal this OS knows"),
    ))
}

fn pid(pid: u32) -> io::Result<Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("bad pid {pid}")))
}

/// `kill(pid, signum)`. The caller makes sure that `pid` is its own child, not yet reaped (a
/// zombie keeps its pid), so that the pid cannot have been recycled.
///
/// # Errors
/// `InvalidInput` for an unknown signal or pid 0; the kernel's (`ESRCH`, `EPERM`).
pub fn kill(child: u32, signum: i32) -> io::Result<()> {
    Ok(rustix::process::kill_process(pid(child)?, signal(signum)?)?)
}

/// `pidfd_open(pid, 0)`: an fd (close-on-exec) that refers to process `pid` for good, and
/// becomes readable when it exits.
///
/// # Errors
/// `ENOSYS` on kernels before 5.3, `EPERM` under some sandboxes, `ESRCH`.
#[cfg(target_os = "linux")]
pub fn pidfd_open(child: u32) -> io::Result<OwnedFd> {
    use rustix::process::PidfdFlags;
    Ok(rustix::process::pidfd_open(
        pid(child)?,
        PidfdFlags::empty(),
    )?)
}

/// `pidfd_send_signal(pidfd, signum, NULL, 0)`: signal the process `pidfd` refers to (never
/// another one that reuses its pid).
///
/// # Errors
/// `InvalidInput` for an unknown signal; `ESRCH` once the process is reaped.
#[cfg(target_os = "linux")]
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signum: i32) -> io::Result<()> {
    Ok(rustix::process::pidfd_send_signal(pidfd, signal(signum)?)?)
}

/// Whether this kernel has `pidfd_open` (tried once, on this process).
#[cfg(target_os = "linux")]
pub fn pidfd_supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| pidfd_open(std::process::id()).is_ok())
}

/// Whether `pid` is a child of this process that has exited and waits to be reaped (a
/// zombie): `waitid(P_PID, pid, WEXITED | WNOHANG | WNOWAIT)`, which reaps nothing. `Ok(false)`
/// while it runs. For tests that check who reaps what.
///
/// # Errors
/// `ECHILD` if `pid` is no unreaped child of this process (never one, or reaped already).
#[cfg(not(target_os = "openbsd"))]
pub fn is_zombie_child(child: u32) -> io::Result<bool> {
    use rustix::process::{WaitId, WaitIdOptions};
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    let status = rustix::process::waitid(WaitId::Pid(pid(child)?), options)?;
    // Linux fills in no pid for a child that has not exited (rustix says `None` then, or a
    // status of pid 0 where the platform does not tell).
    Ok(status.is_some_and(|s| s.exited() || s.killed() || s.dumped()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore)]
    fn unknown_signals_and_pids_are_invalid_input() {
        let e = kill(std::process::id(), 12345).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = kill(0, libc::SIGTERM).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = kill(u32::MAX, libc::SIGTERM).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    /// A real-time signal reaches a child, by pid and by pidfd; the numbers glibc keeps for
    /// itself (below `SIGRTMIN()`) stay refused.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_real_time_signal_reaches_a_child() {
        let rt = libc::SIGRTMIN() + 1;
        for by_pidfd in [false, true] {
            let mut child = std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .unwrap();
            if by_pidfd {
                let fd = pidfd_open(child.id()).unwrap();
                pidfd_send_signal(std::os::fd::AsFd::as_fd(&fd), rt).unwrap();
            } else {
                kill(child.id(), rt).unwrap();
            }
            // A real-time signal's default action ends the process.
            let status = child.wait().unwrap();
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(rt), "by pidfd: {by_pidfd}");
        }
        for reserved in [libc::SIGRTMIN() - 1, libc::SIGRTMAX() + 1, 0] {
            let e = kill(std::process::id(), reserved).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "signal {reserved}");
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn kill_reaches_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        #[cfg(target_os = "linux")]
        let pidfd = pidfd_supported().then(|| pidfd_open(child.id()).unwrap());
        assert!(!is_zombie_child(child.id()).unwrap(), "running");
        kill(child.id(), libc::SIGTERM).unwrap();
        while !is_zombie_child(child.id()).unwrap() {
            std::thread::yield_now();
        }
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
        let e = is_zombie_child(child.id()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ECHILD), "reaped: {e}");
        #[cfg(target_os = "linux")]
        if let Some(pidfd) = pidfd {
            use std::os::fd::AsFd;
            let e = pidfd_send_signal(pidfd.as_fd(), libc::SIGTERM).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ESRCH), "reaped: {e}");
        }
    }
}
