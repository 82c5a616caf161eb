//! What the loop does with a panicking callback: it catches the panic and gives it, with the
//! callback's description, to the loop's exception handler (asyncio's
//! `call_exception_handler`), then keeps running. The handler also hears of a failed future
//! or task dropped with nobody having read its error ("exception was never retrieved").

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::io;

use crate::EventLoop;

/// What the exception handler receives: a caught panic of a callback, or an error nobody
/// retrieved.
pub struct ExceptionContext {
    callback: Cow<'static, str>,
    /// The panic payload, or a boxed `io::Error` for an error nobody retrieved.
    payload: Box<dyn Any + Send>,
}

/// The signature of a loop's exception handler; see
/// [`EventLoop::set_exception_handler`](crate::EventLoop::set_exception_handler).
pub type ExceptionHandler = dyn Fn(&EventLoop, &ExceptionContext);

impl ExceptionContext {
    /// A context for the panic `payload` of the callback described by `callback`.
    pub fn new(callback: impl Into<Cow<'static, str>>, payload: Box<dyn Any + Send>) -> Self {
        ExceptionContext {
            callback: callback.into(),
            payload,
        }
    }

    /// A context for `error`, which a failed future or task held when it was dropped with
    /// nobody having read it; `what` says so (asyncio's "Task exception was never retrieved").
    pub fn from_error(what: impl Into<Cow<'static, str>>, error: io::Error) -> Self {
        ExceptionContext {
            callback: what.into(),
            payload: Box::new(error),
        }
    }

    /// Which callback panicked: its closure's type name (which names the function that
    /// created it), or what it served (`"reader of fd 7"`, `"handler of signal 10"`); for an
    /// error, what it was (`"Task exception was never retrieved"`).
    pub fn callback(&self) -> &str {
        &self.callback
    }

    /// The error nobody retrieved, for a context made by [`from_error`](Self::from_error).
    pub fn error(&self) -> Option<&io::Error> {
        self.payload.downcast_ref::<io::Error>()
    }

    /// The panic message, if the payload is a string (as `panic!` with a message makes it).
    pub fn message(&self) -> Option<&str> {
        if let Some(s) = self.payload.downcast_ref::<&'static str>() {
            Some(s)
        } else {
            self.payload.downcast_ref::<String>().map(String::as_str)
        }
    }

    /// The panic payload, as `std::panic::catch_unwind` returned it.
    pub fn payload(&self) -> &(dyn Any + Send) {
        &*self.payload
    }

    /// The payload, to re-raise the panic with `std::panic::resume_unwind`.
    pub fn into_payload(self) -> Box<dyn Any + Send> {
        self.payload
    }
}

impl fmt::Display for ExceptionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(error) = self.error() {
            return write!(f, "{}: {error}", self.callback);
        }
        write!(
            f,
            "exception in callback {}: {}",
            self.callback,
            self.message()
                .unwrap_or("(a panic payload that is not a string)")
        )
    }
}

impl fmt::Debug for ExceptionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExceptionContext")
            .field("callback", &self.callback)
            .field("message", &self.message())
            .field("error", &self.error())
            .finish()
    }
}
