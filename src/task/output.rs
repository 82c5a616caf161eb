//! How a task's output is judged. asyncio tells a coroutine that returned from one that raised;
//! a Rust coroutine "raises" by returning `Err`. [`TaskOutput`] says which outputs are
//! failures, so that a task that returned one counts as failed wherever asyncio looks for an
//! exception: [`wait`](crate::wait) with [`FirstException`](crate::ReturnWhen::FirstException),
//! [`gather`](crate::gather), [`Task::exception`](crate::Task::exception), and the "exception
//! was never retrieved" report of a failed task dropped unread.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, LinkedList, VecDeque};
use std::convert::Infallible;
use std::ffi::{CString, OsString};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The output of a task's coroutine, judged as asyncio judges a coroutine's end: returned, or
/// raised. Implemented for `Result<T, E>` (`Err` is a failure) and, as never failing, for the
/// standard library's value types, tuples, collections and smart pointers, and tulip's own
/// types. An `Err` that is [`LoopError::Cancelled`](crate::LoopError::Cancelled) (a cancelled
/// future's error, passed on with `?`) cancels the task instead of failing it, as a
/// `CancelledError` escaping an asyncio coroutine cancels its task.
///
/// For an output type of your own that never fails, one line does it:
///
/// ```
/// struct Report { lines: usize }
/// impl tulip::TaskOutput for Report {}
///
/// let lp = tulip::EventLoop::new()?;
/// let task = lp.create_task(async { Report { lines: 3 } });
/// assert_eq!(lp.run_until_complete(task)??.lines, 3);
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait TaskOutput: 'static {
    /// Whether this output is a failure (the coroutine "raised"). `false` by default.
    fn is_failure(&self) -> bool {
        false
    }

    /// A copy of the failure as an [`io::Error`], for readers that leave the output in place
    /// ([`Task::exception`](crate::Task::exception), the exception handler's report). `None`
    /// by default.
    fn failure(&self) -> Option<io::Error> {
        None
    }

    /// Split the failure off, moving it out: `Err` if this output is a failure, the output
    /// itself otherwise (what [`gather`](crate::gather) returns).
    ///
    /// # Errors
    /// The failure, as an [`io::Error`].
    fn into_failure(self) -> Result<Self, io::Error>
    where
        Self: Sized,
    {
        Ok(self)
    }
}

/// `Err` is a failure. An `io::Error` is kept as it is (its kind, its OS code, a
/// [`LoopError`](crate::LoopError)); any other error becomes one of kind `Other` with its
/// message.
impl<T: 'static, E: fmt::Display + 'static> TaskOutput for Result<T, E> {
    fn is_failure(&self) -> bool {
        self.is_err()
    }

    fn failure(&self) -> Option<io::Error> {
        let error = self.as_ref().err()?;
        Some(match (error as &dyn Any).downcast_ref::<io::Error>() {
            Some(e) => super::future::copy_error(e),
            None => io::Error::other(error.to_string()),
        })
    }

    fn into_failure(self) -> Result<Self, io::Error> {
        match self {
            Ok(value) => Ok(Ok(value)),
            Err(error) => {
                let message = error.to_string();
                let boxed: Box<dyn Any> = Box::new(error);
                Err(match boxed.downcast::<io::Error>() {
                    Ok(e) => *e,
                    Err(_) => io::Error::other(message),
                })
            }
        }
    }
}

/// Implements [`TaskOutput`] as "never fails" for each type given.
macro_rules! never_fails {
    ($($ty:ty),* $(,)?) => {
        $(impl TaskOutput for $ty {})*
    };
}

never_fails!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    String,
    &'static str,
    CString,
    OsString,
    PathBuf,
    Duration,
    Instant,
    SystemTime,
    IpAddr,
    Ipv4Addr,
    Ipv6Addr,
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    OwnedFd,
    Infallible,
    std::fs::File,
    std::net::TcpStream,
    std::net::TcpListener,
    std::net::UdpSocket,
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixListener,
    std::os::unix::net::UnixDatagram,
    std::process::ExitStatus,
    std::process::Output,
    crate::net::TcpStream,
    crate::net::TcpListener,
    crate::net::UdpSocket,
    crate::net::UnixStream,
    crate::net::UnixListener,
    crate::net::PipeReader,
    crate::net::PipeWriter,
    crate::Transport,
    crate::Server,
    crate::TaskRef,
    crate::Lock,
    crate::LockGuard,
    crate::Event,
    crate::Condition,
    crate::Semaphore,
    crate::BoundedSemaphore,
    crate::SemaphorePermit,
    crate::Barrier,
);

/// Implements [`TaskOutput`] as "never fails" for a generic container of any element type.
macro_rules! never_fails_generic {
    ($($ty:ident),* $(,)?) => {
        $(impl<T: 'static> TaskOutput for $ty<T> {})*
    };
}

never_fails_generic!(
    Option, Vec, VecDeque, LinkedList, BinaryHeap, BTreeSet, HashSet, Box, Rc, Arc, Cell, RefCell,
    Task, Future,
);

use crate::{Future, Task};

impl<T: 'static> TaskOutput for &'static [T] {}
impl<K: 'static, V: 'static> TaskOutput for HashMap<K, V> {}
impl<K: 'static, V: 'static> TaskOutput for BTreeMap<K, V> {}
impl<T: 'static, const N: usize> TaskOutput for [T; N] {}

/// Implements [`TaskOutput`] as "never fails" for tuples of each arity given.
macro_rules! never_fails_tuple {
    ($(($($name:ident),+)),* $(,)?) => {
        $(impl<$($name: 'static),+> TaskOutput for ($($name,)+) {})*
    };
}

never_fails_tuple!(
    (A),
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, F),
    (A, B, C, D, E, F, G),
    (A, B, C, D, E, F, G, H),
);

/// What a future whose value may be a failure remembers of [`TaskOutput`] (a task's output
/// future), so that code with no `TaskOutput` bound can judge the value.
pub(crate) struct Judge<T>(fn(&T, Question) -> Answer);

/// What a [`Judge`]'s one function is asked: one function pointer rather than two keeps a
/// task's cell in a smaller malloc size class.
pub(crate) enum Question {
    IsFailure,
    Failure,
}

pub(crate) enum Answer {
    IsFailure(bool),
    Failure(Option<io::Error>),
}

impl<T> Clone for Judge<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Judge<T> {}

impl<T> Judge<T> {
    /// Whether `value` is a failure.
    pub(crate) fn is_failure(self, value: &T) -> bool {
        match (self.0)(value, Question::IsFailure) {
            Answer::IsFailure(failed) => failed,
            Answer::Failure(error) => error.is_some(),
        }
    }

    /// The failure `value` holds, as an error.
    pub(crate) fn failure(self, value: &T) -> Option<io::Error> {
        match (self.0)(value, Question::Failure) {
            Answer::Failure(error) => error,
            Answer::IsFailure(_) => None,
        }
    }
}

impl<T: TaskOutput> Judge<T> {
    /// `T`'s own judgement.
    pub(crate) fn of() -> Judge<T> {
        Judge(|value, question| match question {
            Question::IsFailure => Answer::IsFailure(T::is_failure(value)),
            Question::Failure => Answer::Failure(T::failure(value)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LoopError;

    #[test]
    fn an_err_is_a_failure_and_keeps_an_io_errors_identity() {
        let out: io::Result<u8> = Err(io::Error::from_raw_os_error(5));
        assert!(out.is_failure());
        assert_eq!(out.failure().unwrap().raw_os_error(), Some(5));
        assert_eq!(out.into_failure().unwrap_err().raw_os_error(), Some(5));
        let out: io::Result<u8> = Err(LoopError::Cancelled.into());
        assert_eq!(
            LoopError::of(&out.into_failure().unwrap_err()),
            Some(LoopError::Cancelled)
        );
    }

    #[test]
    fn any_other_error_becomes_other_with_its_message() {
        let out: Result<(), String> = Err("boom".into());
        let e = out.failure().unwrap();
        assert_eq!(
            (e.kind(), e.to_string()),
            (io::ErrorKind::Other, "boom".into())
        );
        assert_eq!(out.into_failure().unwrap_err().to_string(), "boom");
    }

    #[test]
    fn ok_and_plain_values_are_not_failures() {
        let ok: Result<u8, String> = Ok(1);
        assert!(!ok.is_failure() && ok.failure().is_none());
        assert_eq!(ok.into_failure().unwrap(), Ok(1));
        assert!(!42u32.is_failure());
        assert!(!(1, "x").is_failure());
        assert!(!Some(()).is_failure());
    }
}
