//! `compare`'s yardstick: the same rounds driven through each backend's bare system call, with
//! no tulip code in between, so that the table can show what a selector adds to its call.
//!
//! A runner holds what a minimal hand-written loop would: for epoll an epoll fd with the
//! watched fds added (the index as the event's data), for poll the `pollfd` array, for select
//! a master `fd_set` copied before each call (the kernel overwrites it). What is timed is one
//! wait plus reading its result out into the list of ready indices, the least any caller does;
//! checking that list against the writes happens afterwards, untimed, as for the selectors.
//!
//! The calls go through `rustix` (epoll, poll) and `nix` (select): safe, thin wrappers over
//! the system call, so this crate keeps `#![forbid(unsafe_code)]`. A backend with no runner
//! here (kqueue for now, or one added later) gets "–" in the table.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use tulip_sys::Backend;

use crate::workload::Workload;

/// One backend's bare system call over a workload's watched fds.
pub enum RawRunner<'w> {
    /// `epoll_wait` on an epoll fd holding the watched fds (added by [`RawRunner::register`]).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Epoll {
        /// The epoll fd.
        epoll: std::os::fd::OwnedFd,
        /// The watched fds, index = event data.
        fds: Vec<BorrowedFd<'w>>,
        /// The kernel's events, capacity N.
        events: Vec<rustix::event::epoll::Event>,
    },
    /// `poll` on an array of `pollfd`, index = position.
    Poll(Vec<rustix::event::PollFd<'w>>),
    /// `select` with a read set copied from a master set before each call.
    Select {
        /// The watched fds, index = position.
        fds: Vec<BorrowedFd<'w>>,
        /// All of them.
        master: nix::sys::select::FdSet<'w>,
        /// The highest plus one.
        nfds: i32,
    },
}

impl<'w> RawRunner<'w> {
    /// The runner of `backend` over the watched fds of `workload`, or `None` if it has none.
    ///
    /// # Errors
    /// The kernel's, from creating the epoll fd.
    pub fn new(backend: Backend, workload: &'w Workload) -> io::Result<Option<RawRunner<'w>>> {
        let fds: Vec<BorrowedFd<'w>> = (0..workload.len()).map(|i| workload.watched(i)).collect();
        Ok(Some(match backend {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Backend::Epoll => RawRunner::Epoll {
                epoll: rustix::event::epoll::create(rustix::event::epoll::CreateFlags::CLOEXEC)?,
                events: Vec::with_capacity(fds.len().max(1)),
                fds,
            },
            Backend::Poll => RawRunner::Poll(
                fds.iter()
                    .map(|&fd| {
                        rustix::event::PollFd::from_borrowed_fd(fd, rustix::event::PollFlags::IN)
                    })
                    .collect(),
            ),
            Backend::Select => {
                let mut master = nix::sys::select::FdSet::new();
                let mut highest = -1;
                for &fd in &fds {
                    master.insert(fd);
                    highest = highest.max(std::os::fd::AsRawFd::as_raw_fd(&fd));
                }
                RawRunner::Select {
                    fds,
                    master,
                    nfds: highest + 1,
                }
            }
            _ => return Ok(None),
        }))
    }

    /// Start a block: add the fds to the kernel's interest list where there is one.
    ///
    /// # Errors
    /// The kernel's.
    pub fn register(&mut self) -> io::Result<()> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let RawRunner::Epoll { epoll, fds, .. } = self {
            use rustix::event::epoll;
            for (i, fd) in fds.iter().enumerate() {
                epoll::add(
                    &*epoll,
                    fd,
                    epoll::EventData::new_u64(i as u64),
                    epoll::EventFlags::IN,
                )?;
            }
        }
        Ok(())
    }

    /// End a block: take the fds out of the kernel's interest list, so that no other backend
    /// pays for their wake-ups meanwhile.
    ///
    /// # Errors
    /// The kernel's.
    pub fn unregister(&mut self) -> io::Result<()> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let RawRunner::Epoll { epoll, fds, .. } = self {
            for fd in fds.iter() {
                rustix::event::epoll::delete(&*epoll, fd)?;
            }
        }
        Ok(())
    }

    /// One wait of at most `timeout`; the indices of the readable fds into `ready`.
    ///
    /// # Errors
    /// The kernel's.
    pub fn wait(&mut self, ready: &mut Vec<usize>, timeout: Duration) -> io::Result<()> {
        ready.clear();
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            RawRunner::Epoll { epoll, events, .. } => {
                let timeout = timespec(timeout);
                events.clear();
                rustix::event::epoll::wait(
                    &*epoll,
                    rustix::buffer::spare_capacity(events),
                    Some(&timeout),
                )?;
                ready.extend(events.iter().map(|e| e.data.u64() as usize));
            }
            RawRunner::Poll(fds) => {
                let timeout = timespec(timeout);
                let mut left = rustix::event::poll(fds, Some(&timeout))?;
                for (i, fd) in fds.iter().enumerate() {
                    if left == 0 {
                        break;
                    }
                    if !fd.revents().is_empty() {
                        ready.push(i);
                        left -= 1;
                    }
                }
            }
            RawRunner::Select { fds, master, nfds } => {
                let mut set = *master;
                let mut timeout = nix::sys::time::TimeVal::new(
                    timeout.as_secs() as _,
                    timeout.subsec_micros() as _,
                );
                let mut left = nix::sys::select::select(
                    Some(*nfds),
                    Some(&mut set),
                    None,
                    None,
                    Some(&mut timeout),
                )?;
                for (i, &fd) in fds.iter().enumerate() {
                    if left == 0 {
                        break;
                    }
                    if set.contains(fd) {
                        ready.push(i);
                        left -= 1;
                    }
                }
            }
        }
        Ok(())
    }
}

fn timespec(d: Duration) -> rustix::event::Timespec {
    rustix::event::Timespec {
        tv_sec: d.as_secs() as _,
        tv_nsec: d.subsec_nanos() as _,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_runner_reports_exactly_the_fds_written_to() {
        let w = Workload::new(20).unwrap();
        for &backend in Backend::available() {
            let Some(mut runner) = RawRunner::new(backend, &w).unwrap() else {
                continue;
            };
            runner.register().unwrap();
            let mut ready = Vec::new();
            for active in [vec![3], vec![0, 19, 7]] {
                for &i in &active {
                    w.activate(i).unwrap();
                }
                runner.wait(&mut ready, Duration::from_secs(5)).unwrap();
                let mut got = ready.clone();
                got.sort_unstable();
                let mut want = active.clone();
                want.sort_unstable();
                assert_eq!(got, want, "{backend}");
                for &i in &ready {
                    w.drain(i).unwrap();
                }
            }
            runner.unregister().unwrap();
        }
    }
}
