//! `per_backend!`: a behaviour written once and run on every backend of this OS. Each
//! `fn name(b: Backend) { ... }` becomes `mod name` holding one `#[test]` per backend
//! (`name::select`, `name::poll`, `name::epoll`, `name::kqueue`, `name::uring`, by the same
//! `cfg`s as [`INSTANTIATED`]; `name::uring` prints a note and passes where io_uring is
//! refused).
//!
//! Tests run in parallel threads of one process, and fd numbers are process-wide: a test that
//! closes an fd and then looks at its number, or counts the open fds, is declared
//! `exclusive fn` and runs alone; every other one holds a shared lock meanwhile.
//!
//! Included by the test files with `#[macro_use] #[path = "support/per_backend.rs"] mod ...;`.

#![allow(dead_code)]

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use tulip::selectors::Backend;

static FD_TABLE: RwLock<()> = RwLock::new(());

/// Held by every test that opens fds, so that an `exclusive` one never runs meanwhile.
pub fn shared_fd_table() -> RwLockReadGuard<'static, ()> {
    FD_TABLE
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Held by a test whose fd numbers must not be reused by another test while it runs.
pub fn exclusive_fd_table() -> RwLockWriteGuard<'static, ()> {
    FD_TABLE
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The backends `per_backend!` instantiates tests for, by the same `cfg`s.
pub const INSTANTIATED: &[Backend] = &[
    Backend::Select,
    Backend::Poll,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Backend::Epoll,
    #[cfg(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    ))]
    Backend::Kqueue,
    #[cfg(target_os = "linux")]
    Backend::Uring,
];

/// True (after printing why) where this process may not use io_uring: the `uring` tests then
/// pass without running, as [`Backend::available`] leaves it out.
pub fn uring_refused() -> bool {
    if Backend::Uring.is_available() {
        return false;
    }
    let why = Backend::Uring.open().map(drop).unwrap_err();
    println!("skipped: {why}");
    true
}

/// `fn name(b: Backend) { ... }` becomes `mod name` with one test per backend of this OS;
/// `exclusive fn` makes each of them run alone (see the crate doc).
macro_rules! per_backend {
    () => {};
    ($(#[doc = $doc:literal])* exclusive fn $name:ident($b:ident: Backend) $body:block $($rest:tt)*) => {
        per_backend!(@emit exclusive_fd_table, [$($doc)*], $name, $b, $body);
        per_backend!($($rest)*);
    };
    ($(#[doc = $doc:literal])* fn $name:ident($b:ident: Backend) $body:block $($rest:tt)*) => {
        per_backend!(@emit shared_fd_table, [$($doc)*], $name, $b, $body);
        per_backend!($($rest)*);
    };
    (@emit $lock:ident, [$($doc:literal)*], $name:ident, $b:ident, $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn run($b: Backend) $body

            #[test]
            fn select() {
                let _fds = $crate::per_backend::$lock();
                run(Backend::Select)
            }

            #[test]
            fn poll() {
                let _fds = $crate::per_backend::$lock();
                run(Backend::Poll)
            }

            #[cfg(any(target_os = "linux", target_os = "android"))]
            #[test]
            fn epoll() {
                let _fds = $crate::per_backend::$lock();
                run(Backend::Epoll)
            }

            #[cfg(any(
                target_os = "macos",
                target_os = "ios",
                target_os = "freebsd",
                target_os = "netbsd",
                target_os = "openbsd",
                target_os = "dragonfly"
            ))]
            #[test]
            fn kqueue() {
                let _fds = $crate::per_backend::$lock();
                run(Backend::Kqueue)
            }

            #[cfg(target_os = "linux")]
            #[test]
            fn uring() {
                if $crate::per_backend::uring_refused() {
                    return;
                }
                let _fds = $crate::per_backend::$lock();
                run(Backend::Uring)
            }
        }
    };
}
