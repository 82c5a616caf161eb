//! The `select(2)` backend: two fd bitmaps handed to the kernel on every call.
//!
//! The bitmaps hold fds below `FD_SETSIZE` (1024) only; setting a bit past the end is the
//! classic memory corruption of C programs, so a larger fd is refused at `register` with
//! `InvalidInput`. Each call costs O(highest registered fd), in the kernel and here.
//! `select(2)` knows no hang-up or error flag: a peer's close shows as readable (the read says
//! EOF), a broken pipe as writable (the write says `EPIPE`).

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::registry::Registry;
use crate::syscall::{cvt, retry_eintr, timeval};
use crate::{Backend, Event, Interest, Notifier, Ready, Registration, Selector, Token};

/// The number of fds an `fd_set` holds: fds must be below it.
// libc declares it usize on Linux and c_int on the BSDs.
#[allow(clippy::unnecessary_cast)]
pub const FD_SETSIZE: usize = libc::FD_SETSIZE as usize;

/// A [`Selector`] over `select(2)`. See the trait for the contract.
pub struct SelectSelector {
    /// The fds registered for reading / writing, copied into each call.
    readers: FdSet,
    writers: FdSet,
    /// The highest registered fd, or -1.
    max_fd: RawFd,
    registry: Registry,
    syscalls: u64,
}

impl std::fmt::Debug for SelectSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelectSelector")
            .field("max_fd", &self.max_fd)
            .field("registry", &self.registry)
            .field("syscalls", &self.syscalls)
            .finish_non_exhaustive()
    }
}

/// An `fd_set` that only ever holds fds below `FD_SETSIZE` (checked by the callers).
#[derive(Clone, Copy)]
struct FdSet(libc::fd_set);

impl FdSet {
    fn new() -> FdSet {
        // SAFETY: an fd_set is an array of integers, and all zero bits is the empty set (what
        // FD_ZERO writes); zeroing avoids handing FD_ZERO uninitialised memory.
        FdSet(unsafe { std::mem::zeroed() })
    }

    fn insert(&mut self, fd: RawFd) {
        debug_assert!((0..FD_SETSIZE as RawFd).contains(&fd));
        // SAFETY: 0 <= fd < FD_SETSIZE (checked at register), so the bit is inside the set.
        unsafe { libc::FD_SET(fd, &mut self.0) }
    }

    fn remove(&mut self, fd: RawFd) {
        debug_assert!((0..FD_SETSIZE as RawFd).contains(&fd));
        // SAFETY: 0 <= fd < FD_SETSIZE (checked at register), so the bit is inside the set.
        unsafe { libc::FD_CLR(fd, &mut self.0) }
    }

    fn contains(&self, fd: RawFd) -> bool {
        debug_assert!((0..FD_SETSIZE as RawFd).contains(&fd));
        // SAFETY: 0 <= fd < FD_SETSIZE (checked at register), so the bit is inside the set.
        unsafe { libc::FD_ISSET(fd, &self.0) }
    }
}

impl SelectSelector {
    /// An empty selector. Creating one makes no system call.
    ///
    /// # Errors
    /// None today; the signature matches the other backends.
    pub fn new() -> io::Result<SelectSelector> {
        Ok(SelectSelector {
            readers: FdSet::new(),
            writers: FdSet::new(),
            max_fd: -1,
            registry: Registry::new(),
            syscalls: 0,
        })
    }

    fn set_interest(&mut self, fd: RawFd, interest: Interest) {
        if interest.is_readable() {
            self.readers.insert(fd);
        } else {
            self.readers.remove(fd);
        }
        if interest.is_writable() {
            self.writers.insert(fd);
        } else {
            self.writers.remove(fd);
        }
    }

    fn forget(&mut self, fd: RawFd) {
        self.readers.remove(fd);
        self.writers.remove(fd);
        let _ = self.registry.remove(fd);
        if fd == self.max_fd {
            self.max_fd = self.registry.iter().map(|(fd, _)| fd).max().unwrap_or(-1);
        }
    }

    /// A registered fd found closed is *parked*: out of both sets, so `select(2)` no longer
    /// sees it, but still registered until `unregister` (as epoll's registry keeps it). Every
    /// registration has a non-empty interest, so a registered fd in neither set is parked.
    fn is_parked(&self, fd: RawFd) -> bool {
        !self.readers.contains(fd) && !self.writers.contains(fd)
    }

    /// After `EBADF`: park every watched fd that is no longer open, so the next call succeeds.
    /// Returns whether any was found (if none, the `EBADF` is not ours to hide).
    fn park_closed(&mut self) -> bool {
        let mut closed = Vec::new();
        for (fd, _) in self.registry.iter() {
            if self.is_parked(fd) {
                continue;
            }
            self.syscalls += 1;
            if crate::fd::check_open(fd).is_err() {
                closed.push(fd);
            }
        }
        for &fd in &closed {
            self.readers.remove(fd);
            self.writers.remove(fd);
        }
        !closed.is_empty()
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<(usize, FdSet, FdSet)> {
        let mut readable = self.readers;
        let mut writable = self.writers;
        let mut tv = timeout.map(timeval);
        let tv_ptr = tv
            .as_mut()
            .map_or(std::ptr::null_mut(), |tv| tv as *mut libc::timeval);
        self.syscalls += 1;
        // SAFETY: the sets are valid fd_sets holding only fds below FD_SETSIZE, and `nfds`
        // (max_fd + 1) is at most FD_SETSIZE; `tv_ptr` is null or points to a timeval that
        // outlives the call; the except set is null (unused).
        let n = cvt(unsafe {
            libc::select(
                self.max_fd + 1,
                &mut readable.0,
                &mut writable.0,
                std::ptr::null_mut(),
                tv_ptr,
            )
        })?;
        Ok((n as usize, readable, writable))
    }
}

impl Selector for SelectSelector {
    fn backend(&self) -> Backend {
        Backend::Select
    }

    fn register(&mut self, fd: RawFd, interest: Interest, token: Token) -> io::Result<()> {
        self.registry.check_new(fd, interest)?;
        if fd as usize >= FD_SETSIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("fd {fd} is at or above FD_SETSIZE ({FD_SETSIZE}); use poll or epoll"),
            ));
        }
        self.syscalls += 1;
        crate::fd::check_open(fd)?;
        self.set_interest(fd, interest);
        self.max_fd = self.max_fd.max(fd);
        self.registry.insert(fd, Registration { interest, token });
        Ok(())
    }

    fn modify(&mut self, fd: RawFd, interest: Interest, token: Token) -> io::Result<()> {
        self.registry.check_existing(fd, interest)?;
        if self.registry.retoken_if_unchanged(fd, interest, token) {
            return Ok(());
        }
        if self.is_parked(fd) {
            // Closed: EBADF, as epoll says; if the number names a new file, watch it, as epoll
            // re-adds it.
            self.syscalls += 1;
            crate::fd::check_open(fd)?;
        }
        self.set_interest(fd, interest);
        self.registry.insert(fd, Registration { interest, token });
        Ok(())
    }

    fn unregister(&mut self, fd: RawFd) -> io::Result<()> {
        self.registry.check_registered(fd)?;
        self.forget(fd);
        Ok(())
    }

    fn select(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<usize> {
        events.clear();
        let (n, readable, writable) = loop {
            match retry_eintr(timeout, |t| self.wait(t)) {
                Ok(sets) => break sets,
                // A registered fd was closed: park it and wait again (with the full timeout:
                // the failed call returned at once).
                Err(e) if e.raw_os_error() == Some(libc::EBADF) && self.park_closed() => {}
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return Ok(0);
        }
        for fd in 0..=self.max_fd {
            let (r, w) = (readable.contains(fd), writable.contains(fd));
            if !(r || w) {
                continue;
            }
            let registration = self.registry.get(fd).expect("a set bit is a registered fd");
            let ready = Ready::from_conditions(registration.interest, r, w, false, false);
            events.push(Event::new(registration.token, ready));
        }
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

    fn as_raw_fd(&self) -> Option<RawFd> {
        None
    }
}
