//! What the loop does with a panicking callback: it catches the panic and gives it, with the
//! callback's description, to the loop's exception handler (asyncio's
//! `call_exception_handler`), then keeps running.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;

use crate::EventLoop;

/// A caught panic of a callback, as the exception handler receives it.
pub struct ExceptionContext {
    callback: Cow<'static, str>,
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

    /// Which callback panicked: its closure's type name (which names the function that
    /// created it), or what it served (`"reader of fd 7"`, `"handler of signal 10"`).
    pub fn callback(&self) -> &str {
        &self.callback
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
            .finish()
    }
}
