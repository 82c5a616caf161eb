//! tulip's syscall layer: readiness selectors over `select(2)`, `poll(2)`, Linux `epoll`,
//! BSD/macOS `kqueue` and Linux io_uring's poll requests (`uring`), behind one [`Selector`]
//! trait shaped like Python's `selectors` module.
//!
//! Readiness is **level-triggered** by default and means the same thing on every backend, so they
//! can be swapped at run time ([`Backend::from_env`], `TULIP_BACKEND=poll`), compared, and tested
//! against each other. One extension is not shared: epoll also takes edge-triggered interest
//! ([`Interest::EDGE`], where [`Selector::supports_edge`] says so), which tulip uses for the
//! TCP streams and pipes it made itself; the other backends refuse it as `Unsupported`.
//!
//! The select, poll, epoll and kqueue backends call the kernel through `libc` directly; the
//! uring backend goes through rustix's `io_uring` module, on the same ring code as the
//! completion model (`uring`); everything else here (fds, sockets, the notifier, signals, CPU
//! clocks) goes through `rustix`, or `nix` where rustix has no safe API; [`pinned`] keeps a task's
//! coroutine in place inside its shared allocation. This is the only crate of tulip with `unsafe` code; each block says why it
//! holds.
//!
//! ```
//! use std::io::Write;
//! use std::time::Duration;
//! use tulip_sys::{fd, Backend, Interest, Token};
//!
//! let mut selector = Backend::best().open()?;
//! let (reader, writer) = fd::pipe()?;
//! use std::os::fd::AsRawFd;
//! selector.register(reader.as_raw_fd(), Interest::READABLE, Token(7))?;
//!
//! let mut events = Vec::new();
//! assert_eq!(selector.select(&mut events, Some(Duration::ZERO))?, 0);
//!
//! std::fs::File::from(writer).write_all(b"tulip")?;
//! selector.select(&mut events, None)?;
//! assert_eq!(events[0].token(), Token(7));
//! assert!(events[0].is_readable());
//! # Ok::<(), std::io::Error>(())
//! ```

#![warn(missing_docs)]

pub mod alloc_count;
mod backend;
pub mod clock;
pub mod errno;
pub mod fd;
mod fd_map;
pub mod fork;
pub mod hint;
pub mod net;
mod notifier;
pub mod pinned;
pub mod process;
mod registry;
mod selector;
pub mod signal;
mod syscall;
#[cfg(target_os = "linux")]
pub mod uring;
pub mod usage;

#[cfg(tulip_epoll)]
mod epoll;
#[cfg(tulip_kqueue)]
mod kqueue;
mod poll;
mod select;

pub use backend::{Backend, BACKEND_ENV};
pub use notifier::Notifier;
pub use poll::PollSelector;
pub use select::{SelectSelector, FD_SETSIZE};
pub use selector::{Event, Interest, Ready, Registration, Selector, Token};

#[cfg(tulip_epoll)]
pub use epoll::EpollSelector;
#[cfg(tulip_kqueue)]
pub use kqueue::KqueueSelector;
#[cfg(target_os = "linux")]
pub use uring::UringSelector;

/// The best selector type of this OS, chosen at compile time: [`EpollSelector`] on Linux,
/// `KqueueSelector` on macOS and the BSDs, [`PollSelector`] elsewhere. To honour
/// `TULIP_BACKEND`, use `Backend::from_env()?.open()` instead.
#[cfg(tulip_epoll)]
pub type DefaultSelector = EpollSelector;
/// The best selector type of this OS, chosen at compile time.
#[cfg(tulip_kqueue)]
pub type DefaultSelector = KqueueSelector;
/// The best selector type of this OS, chosen at compile time.
#[cfg(not(any(tulip_epoll, tulip_kqueue)))]
pub type DefaultSelector = PollSelector;
