//! tulip: Python's Tulip/asyncio event loop, rebuilt in Rust from the system calls up.
#![forbid(unsafe_code)]

/// The readiness selectors the loop runs on (the `tulip-sys` crate), as Python's `selectors`.
pub use tulip_sys as selectors;
