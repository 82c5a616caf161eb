//! The bookkeeping every backend shares: which fds are registered, with what, and the
//! `AlreadyExists` / `NotFound` / `InvalidInput` checks that must mean the same thing
//! everywhere. Backends consult it *before* touching the kernel, so a failed call leaves both
//! the kernel and this map as they were.

use std::io;
use std::os::fd::RawFd;

use crate::fd::FdMap;
use crate::{Interest, Registration, Token};

/// fd → registration, in an [`FdMap`].
#[derive(Debug, Default)]
pub(crate) struct Registry<V = Registration> {
    map: FdMap<V>,
    /// Whether the backend accepts `Interest::EDGE`.
    edge: bool,
}

impl<V> Registry<V> {
    /// The registry of a level-triggered-only backend: `Interest::EDGE` is `Unsupported`.
    pub(crate) fn new() -> Self {
        Registry {
            map: FdMap::default(),
            edge: false,
        }
    }

    /// The registry of a backend that also does edge-triggered interest.
    #[cfg_attr(not(tulip_epoll), allow(dead_code))] // epoll is the only such backend so far
    pub(crate) fn with_edge() -> Self {
        Registry {
            map: FdMap::default(),
            edge: true,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    #[inline]
    pub(crate) fn get(&self, fd: RawFd) -> Option<&V> {
        self.map.get(fd)
    }

    pub(crate) fn get_mut(&mut self, fd: RawFd) -> Option<&mut V> {
        self.map.get_mut(fd)
    }

    /// Check a `register` before doing it: the fd is not negative, not registered yet, and the
    /// interest is not empty (and edge-triggered only if the backend can).
    pub(crate) fn check_new(&self, fd: RawFd, interest: Interest) -> io::Result<()> {
        check_fd(fd)?;
        self.check_interest(fd, interest)?;
        if self.map.contains_key(fd) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("fd {fd} is already registered"),
            ));
        }
        Ok(())
    }

    /// Check a `modify` before doing it: the fd is registered and the interest is not empty.
    pub(crate) fn check_existing(&self, fd: RawFd, interest: Interest) -> io::Result<&V> {
        check_fd(fd)?;
        self.check_interest(fd, interest)?;
        self.check_registered(fd)
    }

    fn check_interest(&self, fd: RawFd, interest: Interest) -> io::Result<()> {
        if interest.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("empty interest for fd {fd}: use unregister to stop watching it"),
            ));
        }
        if interest.is_edge() && !self.edge {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "edge-triggered interest for fd {fd}: this backend is level-triggered \
                     only (see Selector::supports_edge)"
                ),
            ));
        }
        Ok(())
    }

    /// Check an `unregister` before doing it: the fd is registered.
    pub(crate) fn check_registered(&self, fd: RawFd) -> io::Result<&V> {
        check_fd(fd)?;
        self.map.get(fd).ok_or_else(|| not_registered(fd))
    }

    pub(crate) fn insert(&mut self, fd: RawFd, value: V) {
        self.map.insert(fd, value);
    }

    /// Forget `fd`, or `NotFound` if it was not registered.
    pub(crate) fn remove(&mut self, fd: RawFd) -> io::Result<V> {
        self.map.remove(fd).ok_or_else(|| not_registered(fd))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (RawFd, &V)> {
        self.map.iter()
    }
}

/// What a backend keeps per fd: its [`Registration`], and whatever else the backend needs.
pub(crate) trait Registered {
    fn registration_mut(&mut self) -> &mut Registration;
}

impl Registered for Registration {
    fn registration_mut(&mut self) -> &mut Registration {
        self
    }
}

impl<V: Registered> Registry<V> {
    /// For a `modify` already checked: if `interest` is the one registered, take the new
    /// `token` and return true; the backend then makes no system call (as Python's selectors
    /// skip the kernel when the events are unchanged).
    pub(crate) fn retoken_if_unchanged(
        &mut self,
        fd: RawFd,
        interest: Interest,
        token: Token,
    ) -> bool {
        match self.map.get_mut(fd).map(Registered::registration_mut) {
            Some(registration) if registration.interest == interest => {
                registration.token = token;
                true
            }
            _ => false,
        }
    }
}

/// `InvalidInput` for a negative fd, which no file has: a caller's mistake, not a closed file
/// (Python's selectors raise `ValueError("Invalid file descriptor: -1")`).
pub(crate) fn check_fd(fd: RawFd) -> io::Result<()> {
    if fd < 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid file descriptor {fd}: a file descriptor is never negative"),
        ));
    }
    Ok(())
}

fn not_registered(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("fd {fd} is not registered"),
    )
}
