//! Observing a child's exit without blocking, and without reaping anyone else's children: the
//! two child watchers.
//!
//! - **pidfd** (Linux 5.3+): `pidfd_open` gives an fd that becomes readable when the child
//!   exits; a small task of the loop awaits it, then reaps that one pid. The pidfd is closed
//!   once the child is reaped, or when the loop closes (the task is dropped).
//! - **SIGCHLD** (everywhere): a handler of the loop's ([`EventLoop::add_signal_handler`],
//!   which chains to a handler installed before) tries `waitpid(pid, WNOHANG)` for each child
//!   this loop spawned and has not reaped yet, never `waitpid(-1)`: a child some other code
//!   spawned is left for it to reap. The handler is removed when no child is left. It takes
//!   the loop's SIGCHLD slot: a handler of the user's for SIGCHLD on the same loop would
//!   replace it (and be replaced by it) while the loop has children to watch.
//!
//! Either way a [`ChildState`] is reaped only here (or by `send_signal`'s check first), on the
//! loop's thread, through `std::process::Child::try_wait`; until then the zombie keeps its pid,
//! so a signal sent by pid cannot reach a recycled one.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use crate::EventLoop;

/// The environment variable that picks the child watcher of new subprocesses when
/// [`SubprocessOptions::watcher`](super::SubprocessOptions::watcher) does not:
/// `TULIP_CHILD_WATCHER=pidfd` or `sigchld`.
pub const CHILD_WATCHER_ENV: &str = "TULIP_CHILD_WATCHER";

/// How the loop learns that a child exited (see the module doc of [`process`](super)).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ChildWatcher {
    /// A pidfd per child, watched by the selector (Linux 5.3+ only).
    Pidfd,
    /// A SIGCHLD handler of the loop's, which polls this loop's own children by pid (it
    /// takes the loop's SIGCHLD handler slot while the loop has children to watch).
    Sigchld,
}

impl ChildWatcher {
    /// The best watcher here: [`Pidfd`](Self::Pidfd) on Linux if the kernel has
    /// `pidfd_open`, [`Sigchld`](Self::Sigchld) otherwise.
    pub fn best() -> ChildWatcher {
        #[cfg(target_os = "linux")]
        if tulip_sys::process::pidfd_supported() {
            return ChildWatcher::Pidfd;
        }
        ChildWatcher::Sigchld
    }

    /// The watcher [`CHILD_WATCHER_ENV`] names, or [`best`](Self::best) if it is unset or
    /// empty.
    ///
    /// # Errors
    /// `InvalidInput` for another value.
    pub fn from_env() -> io::Result<ChildWatcher> {
        match std::env::var(CHILD_WATCHER_ENV).as_deref() {
            Err(_) | Ok("") => Ok(ChildWatcher::best()),
            Ok("pidfd") => Ok(ChildWatcher::Pidfd),
            Ok("sigchld") => Ok(ChildWatcher::Sigchld),
            Ok(other) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{CHILD_WATCHER_ENV}={other:?}: expected \"pidfd\" or \"sigchld\""),
            )),
        }
    }

    /// Whether this watcher works here.
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_os = "linux")]
            ChildWatcher::Pidfd => tulip_sys::process::pidfd_supported(),
            #[cfg(not(target_os = "linux"))]
            ChildWatcher::Pidfd => false,
            ChildWatcher::Sigchld => true,
        }
    }
}

/// asyncio's `returncode` of an exit status: the exit code, or minus the signal that killed
/// the child.
fn returncode(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => -signal,
        // Neither exited nor killed: try_wait reports neither stops nor continues.
        (None, None) => 255,
    }
}

/// One spawned child: the `Child` (reaped only through it), and its return code once reaped.
pub(crate) struct ChildState {
    child: RefCell<Child>,
    pid: u32,
    returncode: Cell<Option<i32>>,
    /// Why the watcher could not watch (the selector refused the pidfd, ...).
    error: RefCell<Option<io::Error>>,
    waiters: RefCell<Vec<Waker>>,
    /// The pidfd of the pidfd watcher, for `send_signal`; owned by the watcher's task, so that
    /// closing the loop closes it.
    #[cfg(target_os = "linux")]
    pidfd: RefCell<Weak<std::os::fd::OwnedFd>>,
}

impl ChildState {
    pub(crate) fn new(child: Child) -> Rc<ChildState> {
        Rc::new(ChildState {
            pid: child.id(),
            child: RefCell::new(child),
            returncode: Cell::new(None),
            error: RefCell::new(None),
            waiters: RefCell::new(Vec::new()),
            #[cfg(target_os = "linux")]
            pidfd: RefCell::new(Weak::new()),
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn returncode(&self) -> Option<i32> {
        self.returncode.get()
    }

    /// Reap the child if it exited (`waitpid(pid, WNOHANG)`): true once it is reaped.
    pub(crate) fn try_reap(&self) -> bool {
        if self.returncode.get().is_some() {
            return true;
        }
        let reaped = match self.child.borrow_mut().try_wait() {
            Ok(None) => return false,
            Ok(Some(status)) => returncode(status),
            // ECHILD: some other code reaped it (a `waitpid(-1)`, or SIGCHLD set to
            // SIG_IGN). Its status is lost: 255, as asyncio's watchers say then.
            Err(_) => 255,
        };
        self.returncode.set(Some(reaped));
        self.wake();
        true
    }

    /// Kill the child and wait for it, blocking (a spawn that failed halfway: it is
    /// watched by nobody yet).
    pub(crate) fn kill_and_reap(&self) {
        let mut child = self.child.borrow_mut();
        let _ = child.kill();
        if let Ok(status) = child.wait() {
            self.returncode.set(Some(returncode(status)));
        }
    }

    #[cfg(target_os = "linux")]
    fn fail(&self, error: io::Error) {
        *self.error.borrow_mut() = Some(error);
        self.wake();
    }

    fn wake(&self) {
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        waiters.into_iter().for_each(Waker::wake);
    }

    /// `Ready` with the return code once reaped (or the watcher's error, if even the fallback
    /// to the SIGCHLD watcher failed).
    pub(crate) fn poll_wait(&self, cx: &mut Context<'_>) -> Poll<io::Result<i32>> {
        if let Some(code) = self.returncode.get() {
            return Poll::Ready(Ok(code));
        }
        if let Some(error) = &*self.error.borrow() {
            return Poll::Ready(Err(io::Error::new(
                error.kind(),
                format!("the child watcher failed: {error}"),
            )));
        }
        let mut waiters = self.waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Send `signum` unless the child is reaped already (then nothing: its pid may belong to
    /// another process by now). Reaps first if it exited, as Python's `Popen.send_signal`.
    /// Signal 0 (`kill(pid, 0)`'s "does it exist?") is `Ok` for a child not reaped yet: it is
    /// ours, so the kernel would say yes.
    pub(crate) fn send_signal(&self, signum: i32) -> io::Result<()> {
        if self.try_reap() || signum == 0 {
            return Ok(());
        }
        #[cfg(target_os = "linux")]
        if let Some(pidfd) = self.pidfd.borrow().upgrade() {
            use std::os::fd::AsFd;
            return tulip_sys::process::pidfd_send_signal(pidfd.as_fd(), signum);
        }
        // Not reaped (just checked, on the only thread that reaps it): the pid is still ours.
        tulip_sys::process::kill(self.pid, signum)
    }
}

/// Start watching `child` on `lp` with `watcher`.
///
/// # Errors
/// `Unsupported` for a pidfd where there is none; the kernel's or the loop's if the watch
/// cannot be set up.
pub(crate) fn watch(
    lp: &EventLoop,
    child: &Rc<ChildState>,
    watcher: ChildWatcher,
) -> io::Result<()> {
    match watcher {
        ChildWatcher::Pidfd => watch_pidfd(lp, child),
        ChildWatcher::Sigchld => watch_sigchld(lp, child),
    }
}

#[cfg(target_os = "linux")]
fn watch_pidfd(lp: &EventLoop, child: &Rc<ChildState>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    lp.check_open()?;
    // Not reaped yet (a zombie at worst), so the pid is still this child's.
    let pidfd = Rc::new(tulip_sys::process::pidfd_open(child.pid)?);
    *child.pidfd.borrow_mut() = Rc::downgrade(&pidfd);
    let child = Rc::clone(child);
    let task = lp.create_task(async move {
        while !child.try_reap() {
            // Readable once the child has exited.
            if let Err(e) = crate::wait_readable(pidfd.as_raw_fd()).await {
                // The selector refused the pidfd (select past FD_SETSIZE, ...): the SIGCHLD
                // watcher takes over, so that the child is still reaped.
                let fallback = crate::get_running_loop().and_then(|lp| watch_sigchld(&lp, &child));
                if fallback.is_err() {
                    child.fail(e);
                }
                return;
            }
        }
    });
    // Detached: it runs until the child is reaped, or the loop closes.
    drop(task);
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn watch_pidfd(_lp: &EventLoop, _child: &Rc<ChildState>) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "the pidfd child watcher is Linux-only",
    ))
}

/// The children a loop's SIGCHLD watcher looks after, not reaped yet.
#[derive(Default)]
pub(crate) struct ChildTable {
    children: RefCell<Vec<Rc<ChildState>>>,
    /// Whether the loop's SIGCHLD handler is installed.
    installed: Cell<bool>,
}

impl ChildTable {
    /// Reap every child of the table that exited; remove the handler once none is left.
    fn reap(&self, lp: &EventLoop) {
        let children = std::mem::take(&mut *self.children.borrow_mut());
        // Reaping wakes tasks (never runs them): no borrow is held meanwhile anyway.
        let mut left: Vec<_> = children.into_iter().filter(|c| !c.try_reap()).collect();
        let mut table = self.children.borrow_mut();
        left.append(&mut table);
        *table = left;
        if table.is_empty() && self.installed.replace(false) {
            lp.remove_signal_handler(tulip_sys::process::SIGCHLD);
        }
    }
}

fn watch_sigchld(lp: &EventLoop, child: &Rc<ChildState>) -> io::Result<()> {
    let table = lp.child_table();
    if !table.installed.get() {
        let weak: Weak<ChildTable> = Rc::downgrade(&table);
        lp.add_signal_handler(tulip_sys::process::SIGCHLD, move |lp| {
            if let Some(table) = weak.upgrade() {
                table.reap(lp);
            }
        })?;
        table.installed.set(true);
    }
    table.children.borrow_mut().push(Rc::clone(child));
    // It may have exited before the handler was there: look once now.
    let weak = Rc::downgrade(&table);
    lp.call_soon(move |lp| {
        if let Some(table) = weak.upgrade() {
            table.reap(lp);
        }
    })?;
    Ok(())
}
