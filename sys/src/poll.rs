//! The `poll(2)` backend: an array of `pollfd` handed to the kernel on every call.
//!
//! Registration is pure bookkeeping (plus one `fcntl` to refuse a closed fd up front), so it is
//! the cheapest to change; each `select` costs O(registered fds) in the kernel and here.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crate::registry::{Registered, Registry};
use crate::syscall::{cvt, retry_eintr, timeout_ms};
use crate::{Backend, Event, Interest, Notifier, Ready, Registration, Selector, Token};

/// A [`Selector`] over `poll(2)`. See the trait for the contract.
#[derive(Debug)]
pub struct PollSelector {
    /// What the kernel is given; `slots[fd].index` points into it.
    pollfds: Vec<libc::pollfd>,
    slots: Registry<Slot>,
    syscalls: u64,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    registration: Registration,
    index: usize,
}

impl Registered for Slot {
    fn registration_mut(&mut self) -> &mut Registration {
        &mut self.registration
    }
}

impl PollSelector {
    /// An empty selector. Creating one makes no system call.
    ///
    /// # Errors
    /// None today; the signature matches the other backends.
    pub fn new() -> io::Result<PollSelector> {
        Ok(PollSelector {
            pollfds: Vec::new(),
            slots: Registry::new(),
            syscalls: 0,
        })
    }

    /// Forget the fd at `index` of `pollfds`, keeping `slots` in step (swap-remove).
    fn forget(&mut self, fd: RawFd) {
        let Ok(slot) = self.slots.remove(fd) else {
            return;
        };
        self.pollfds.swap_remove(slot.index);
        if let Some(moved) = self.pollfds.get(slot.index) {
            let moved_fd = unparked(moved.fd);
            if let Some(s) = self.slots.get_mut(moved_fd) {
                s.index = slot.index;
            }
        }
    }
}

/// A closed registered fd stays registered until `unregister` (as epoll's registry keeps it),
/// but is *parked*: stored as `!fd`, a negative number, which `poll(2)` skips (its `revents` is
/// 0). `unparked` gives the fd back from either form.
fn unparked(stored: RawFd) -> RawFd {
    if stored < 0 {
        !stored
    } else {
        stored
    }
}

fn poll_events(interest: Interest) -> libc::c_short {
    let mut events = 0;
    if interest.is_readable() {
        events |= libc::POLLIN;
    }
    if interest.is_writable() {
        events |= libc::POLLOUT;
    }
    // POLLRDHUP reports a peer's shutdown(SHUT_WR) as a hang-up, as epoll's EPOLLRDHUP does.
    #[cfg(tulip_epoll)]
    if interest.is_readable() {
        events |= libc::POLLRDHUP;
    }
    events
}

impl Selector for PollSelector {
    fn backend(&self) -> Backend {
        Backend::Poll
    }

    fn register(&mut self, fd: RawFd, interest: Interest, token: Token) -> io::Result<()> {
        self.slots.check_new(fd, interest)?;
        // poll(2) itself would only flag a closed fd later (POLLNVAL); refuse it now instead.
        self.syscalls += 1;
        crate::fd::check_open(fd)?;
        let index = self.pollfds.len();
        self.pollfds.push(libc::pollfd {
            fd,
            events: poll_events(interest),
            revents: 0,
        });
        let registration = Registration { interest, token };
        self.slots.insert(
            fd,
            Slot {
                registration,
                index,
            },
        );
        Ok(())
    }

    fn modify(&mut self, fd: RawFd, interest: Interest, token: Token) -> io::Result<()> {
        let index = self.slots.check_existing(fd, interest)?.index;
        if self.slots.retoken_if_unchanged(fd, interest, token) {
            return Ok(());
        }
        if self.pollfds[index].fd < 0 {
            // Parked (closed): EBADF as epoll says; if the number names a new file, watch it,
            // as epoll re-adds it.
            self.syscalls += 1;
            crate::fd::check_open(fd)?;
            self.pollfds[index].fd = fd;
        }
        self.pollfds[index].events = poll_events(interest);
        let registration = Registration { interest, token };
        self.slots.insert(
            fd,
            Slot {
                registration,
                index,
            },
        );
        Ok(())
    }

    fn unregister(&mut self, fd: RawFd) -> io::Result<()> {
        self.slots.check_registered(fd)?;
        self.forget(fd);
        Ok(())
    }

    fn select(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<usize> {
        events.clear();
        // A call that found only closed fds waits again for the time that remains, so that a
        // timeout is never cut short (and `None` keeps blocking).
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut this_wait = timeout;
        loop {
            let parked = self.wait_and_scan(events, this_wait)?;
            if !events.is_empty() || !parked {
                return Ok(events.len());
            }
            if let Some(deadline) = deadline {
                this_wait = Some(deadline.saturating_duration_since(Instant::now()));
            }
        }
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    fn registration(&self, fd: RawFd) -> Option<Registration> {
        self.slots.get(fd).map(|s| s.registration)
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

impl PollSelector {
    /// One `poll(2)` (retried on `EINTR`), its events pushed onto `events`; returns whether it
    /// found a closed fd (and parked it).
    fn wait_and_scan(
        &mut self,
        events: &mut Vec<Event>,
        timeout: Option<Duration>,
    ) -> io::Result<bool> {
        let pollfds = &mut self.pollfds;
        let syscalls = &mut self.syscalls;
        let ready = retry_eintr(timeout, |t| {
            *syscalls += 1;
            // SAFETY: `pollfds` is a valid, writable array of `len` pollfd structs for the
            // duration of the call (the kernel writes only `revents`).
            cvt(unsafe {
                libc::poll(
                    pollfds.as_mut_ptr(),
                    pollfds.len() as libc::nfds_t,
                    timeout_ms(t),
                )
            })
        })?;
        if ready == 0 {
            return Ok(false);
        }
        let mut parked = false;
        for pfd in &mut self.pollfds {
            let revents = pfd.revents;
            if revents == 0 {
                continue;
            }
            // POLLNVAL: the fd was closed while registered. Park it, so it can never make poll
            // return at once again (the loop would spin); `unregister` forgets it.
            if revents & libc::POLLNVAL != 0 {
                pfd.fd = !pfd.fd;
                parked = true;
                continue;
            }
            let slot = self.slots.get(pfd.fd).expect("every pollfd has a slot");
            #[cfg(tulip_epoll)]
            let hangup = revents & (libc::POLLHUP | libc::POLLRDHUP) != 0;
            #[cfg(not(tulip_epoll))]
            let hangup = revents & libc::POLLHUP != 0;
            let ready = Ready::from_conditions(
                slot.registration.interest,
                revents & (libc::POLLIN | libc::POLLPRI) != 0,
                revents & libc::POLLOUT != 0,
                revents & libc::POLLERR != 0,
                hangup,
            );
            events.push(Event::new(slot.registration.token, ready));
        }
        Ok(parked)
    }
}
