//! The Linux `epoll(7)` backend: the interest list lives in the kernel, so `select` costs
//! O(ready fds) and each registration change costs one `epoll_ctl`.
//!
//! Level-triggered (no `EPOLLET`), as the `Selector` contract requires, unless the interest
//! has [`Interest::EDGE`] (then `EPOLLET`: tulip's socket types track readiness themselves,
//! and spare the kernel re-checking every reported fd at the next wait). Each event carries the
//! fd in its data word; the token and interest come from the registry, so an event for an fd
//! that is no longer registered is dropped, and readiness is masked by the current interest.
//! Waiting uses `epoll_wait(2)` when the timeout is none, zero or whole milliseconds, and
//! `epoll_pwait2(2)` (nanosecond timeouts, Linux 5.11) for a finer one, falling back to
//! `epoll_wait(2)` with the timeout rounded up to whole milliseconds where it is missing.
//!
//! Closing a registered fd: the kernel drops the registration when the last fd of the open file
//! description closes, so `select` never sees it again, and `unregister` then succeeds (its
//! `EBADF`/`ENOENT` is the proof the kernel already forgot). The one case epoll cannot handle is
//! an fd closed while a `dup` of it stays open: the kernel keeps reporting the old number, this
//! selector drops those events, and a level-triggered one keeps `select` from blocking. Unregister
//! before closing, as with any selector.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::registry::Registry;
use crate::syscall::{cvt, exact_ms, retry_eintr, timeout_ms, timespec};
use crate::{Backend, Event, Interest, Notifier, Ready, Registration, Selector, Token};

/// How many events one `select` can return at most; more ready fds are reported by the next
/// call (level-triggered, and the kernel rotates its ready list, so none starves).
const MAX_EVENTS: usize = 65_536;

/// A [`Selector`] over Linux `epoll`. See the trait for the contract.
#[derive(Debug)]
pub struct EpollSelector {
    epfd: OwnedFd,
    registry: Registry,
    /// The kernel writes ready events here; grown to the number of registered fds.
    buffer: Vec<libc::epoll_event>,
    /// Whether `epoll_pwait2` may exist; cleared the first time the kernel says it does not.
    pwait2: bool,
    syscalls: u64,
}

impl EpollSelector {
    /// A new epoll instance (close-on-exec).
    ///
    /// # Errors
    /// The kernel's: `EMFILE`, `ENFILE`, `ENOMEM`.
    pub fn new() -> io::Result<EpollSelector> {
        // SAFETY: epoll_create1 takes no pointers; EPOLL_CLOEXEC is a valid flag.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(EpollSelector {
            // SAFETY: the kernel just returned this fd to us; nothing else owns it.
            epfd: unsafe { OwnedFd::from_raw_fd(fd) },
            registry: Registry::with_edge(),
            buffer: Vec::new(),
            pwait2: true,
            syscalls: 0,
        })
    }

    fn ctl(&mut self, op: libc::c_int, fd: RawFd, interest: Interest) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: epoll_events(interest),
            u64: fd as u64,
        };
        self.syscalls += 1;
        // SAFETY: `self.epfd` is an epoll fd we own; `event` is a valid epoll_event that lives
        // across the call (the kernel copies it; for EPOLL_CTL_DEL it is ignored).
        cvt(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut event) }).map(drop)
    }

    /// One wait: `epoll_wait` for a timeout that whole milliseconds say exactly (none, zero:
    /// the loop's common cases), else `epoll_pwait2` if the kernel has it. `epoll_pwait2`
    /// costs more per call (about 10% of a wait that finds an fd ready, measured with `compare`
    /// against the bare `epoll_wait`), so it is kept for the timeouts that need its precision.
    #[inline]
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let epfd = self.epfd.as_raw_fd();
        let capacity = self.buffer.capacity() as libc::c_int;
        let buf = self.buffer.as_mut_ptr();
        let exact_ms = exact_ms(timeout);
        if self.pwait2 && exact_ms.is_none() {
            let ts = timeout.map(timespec);
            let ts_ptr = ts
                .as_ref()
                .map_or(std::ptr::null(), |ts| ts as *const libc::timespec);
            self.syscalls += 1;
            // SAFETY: `buf` has room for `capacity` events and is not otherwise borrowed during
            // the call; `ts_ptr` is null or points to a timespec that outlives the call; a null
            // sigmask means "do not change it" (so its size argument is irrelevant).
            let n = cvt(unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    epfd,
                    buf,
                    capacity,
                    ts_ptr,
                    std::ptr::null::<libc::sigset_t>(),
                    0,
                )
            });
            match n {
                Ok(n) => return Ok(n as usize),
                // Kernels before 5.11 (ENOSYS), or seccomp filters that refuse it (EPERM).
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                    self.pwait2 = false;
                }
                Err(e) => return Err(e),
            }
        }
        let ms = exact_ms.unwrap_or_else(|| timeout_ms(timeout));
        self.syscalls += 1;
        // SAFETY: `buf` has room for `capacity` events and is not otherwise borrowed during the
        // call.
        let n = cvt(unsafe { libc::epoll_wait(epfd, buf, capacity, ms) })?;
        Ok(n as usize)
    }
}

fn epoll_events(interest: Interest) -> u32 {
    let mut events = 0;
    if interest.is_readable() {
        // EPOLLRDHUP: report a peer's shutdown(SHUT_WR) as a hang-up, not only as readable.
        events |= libc::EPOLLIN | libc::EPOLLRDHUP;
    }
    if interest.is_writable() {
        events |= libc::EPOLLOUT;
    }
    if interest.is_edge() {
        // EPOLLPRI too: urgent data stops a read short with more queued, and the owner, who
        // takes a short read for "drained", must know (Event::is_priority).
        events |= libc::EPOLLET;
        if interest.is_readable() {
            events |= libc::EPOLLPRI;
        }
    }
    events as u32
}

impl Selector for EpollSelector {
    fn backend(&self) -> Backend {
        Backend::Epoll
    }

    fn register(&mut self, fd: RawFd, interest: Interest, token: Token) -> io::Result<()> {
        self.registry.check_new(fd, interest)?;
        self.ctl(libc::EPOLL_CTL_ADD, fd, interest)?;
        self.registry.insert(fd, Registration { interest, token });
        Ok(())
    }

    fn modify(&mut self, fd: RawFd, interest: Interest, token: Token) -> io::Result<()> {
        self.registry.check_existing(fd, interest)?;
        if self.registry.retoken_if_unchanged(fd, interest, token) {
            return Ok(());
        }
        match self.ctl(libc::EPOLL_CTL_MOD, fd, interest) {
            Ok(()) => {}
            // The kernel forgot the fd (it was closed) and the number now names another open
            // file: register that one, as a fresh selector would.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                self.ctl(libc::EPOLL_CTL_ADD, fd, interest)?;
            }
            Err(e) => return Err(e),
        }
        self.registry.insert(fd, Registration { interest, token });
        Ok(())
    }

    fn unregister(&mut self, fd: RawFd) -> io::Result<()> {
        self.registry.check_registered(fd)?;
        match self.ctl(libc::EPOLL_CTL_DEL, fd, Interest::READABLE) {
            // EBADF: closed; ENOENT: closed and the number reused. Either way the kernel has
            // already dropped the registration.
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBADF | libc::ENOENT)) => {}
            Err(e) => return Err(e),
        }
        self.registry.remove(fd).map(drop)
    }

    fn select(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<usize> {
        events.clear();
        let wanted = self.registry.len().clamp(1, MAX_EVENTS);
        if self.buffer.capacity() < wanted {
            self.buffer.reserve_exact(wanted - self.buffer.len());
        }
        let n = retry_eintr(timeout, |t| self.wait(t))?;
        // SAFETY: the kernel initialised the first `n` entries (n <= capacity).
        unsafe { self.buffer.set_len(n) };
        for ev in &self.buffer {
            let fd = ev.u64 as RawFd;
            // An fd unregistered since it was added can still be in flight: drop its event.
            let Some(registration) = self.registry.get(fd) else {
                continue;
            };
            let bits = ev.events as libc::c_int;
            let mut ready = Ready::from_conditions(
                registration.interest,
                bits & (libc::EPOLLIN | libc::EPOLLPRI) != 0,
                bits & libc::EPOLLOUT != 0,
                bits & libc::EPOLLERR != 0,
                bits & (libc::EPOLLHUP | libc::EPOLLRDHUP) != 0,
            );
            if bits & libc::EPOLLPRI != 0 && registration.interest.is_readable() {
                ready |= Ready::PRIORITY;
            }
            events.push(Event::new(registration.token, ready));
        }
        self.buffer.clear();
        Ok(events.len())
    }

    fn len(&self) -> usize {
        self.registry.len()
    }

    fn registration(&self, fd: RawFd) -> Option<Registration> {
        self.registry.get(fd).copied()
    }

    fn notifier(&mut self, token: Token) -> io::Result<Notifier> {
        crate::notifier::register_fd_notifier(self, token)
    }

    fn syscalls(&self) -> u64 {
        self.syscalls
    }

    fn supports_edge(&self) -> bool {
        true
    }

    fn as_raw_fd(&self) -> Option<RawFd> {
        Some(self.epfd.as_raw_fd())
    }
}
