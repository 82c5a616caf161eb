//! Which readiness mechanisms exist, which this OS has, and choosing one at run time.

use std::fmt;
use std::io;
use std::str::FromStr;

use crate::Selector;

/// The environment variable that forces a backend: `TULIP_BACKEND=select|poll|epoll|kqueue|uring`.
pub const BACKEND_ENV: &str = "TULIP_BACKEND";

/// A readiness mechanism of the kernel.
///
/// Every variant exists on every OS, so that configuration and reports can name them all;
/// [`Backend::is_available`] says whether this OS has it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Backend {
    /// `select(2)`: fd bitmaps, limited to fds below `FD_SETSIZE`; cost grows with the highest fd.
    Select,
    /// `poll(2)`: an array of `pollfd`; cost grows with the number of fds.
    Poll,
    /// Linux `epoll(7)`: a kernel-side interest list; cost grows with the number of ready fds.
    Epoll,
    /// BSD and macOS `kqueue(2)`: a kernel-side interest list of (fd, filter) pairs.
    Kqueue,
    /// Linux io_uring (5.11+): single-shot `IORING_OP_POLL_ADD` requests, fired ones re-armed
    /// in the same `io_uring_enter` that waits. Available only where the kernel lets this
    /// process set up a ring (not under a seccomp filter or `kernel.io_uring_disabled`).
    Uring,
}

const ALL: [Backend; 5] = [
    Backend::Select,
    Backend::Poll,
    Backend::Epoll,
    Backend::Kqueue,
    Backend::Uring,
];

/// The backends compiled in for this OS that need no probe; the last is the best.
#[cfg(tulip_epoll)]
const BUILT_IN: &[Backend] = &[Backend::Select, Backend::Poll, Backend::Epoll];
#[cfg(tulip_kqueue)]
const BUILT_IN: &[Backend] = &[Backend::Select, Backend::Poll, Backend::Kqueue];
#[cfg(not(any(tulip_epoll, tulip_kqueue)))]
const BUILT_IN: &[Backend] = &[Backend::Select, Backend::Poll];

/// [`BUILT_IN`] and io_uring, where the probe succeeds.
#[cfg(target_os = "linux")]
const WITH_URING: &[Backend] = &[
    Backend::Select,
    Backend::Poll,
    Backend::Epoll,
    Backend::Uring,
];

/// Why io_uring cannot be used by this process (`None`: it can), found once by setting up a
/// ring and dropping it.
#[cfg(target_os = "linux")]
fn uring_refusal() -> Option<&'static str> {
    static PROBE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    PROBE
        .get_or_init(|| {
            crate::uring::UringSelector::new()
                .err()
                .map(|e| e.to_string())
        })
        .as_deref()
}

impl Backend {
    /// Every backend this crate knows, available here or not.
    pub const fn all() -> &'static [Backend] {
        &ALL
    }

    /// The backends this OS has: select, poll, then epoll or kqueue, and on Linux `uring` last
    /// if this process may use io_uring (probed once, by setting up a ring: under a seccomp
    /// filter or `kernel.io_uring_disabled` it is left out, and opening it says why).
    pub fn available() -> &'static [Backend] {
        #[cfg(target_os = "linux")]
        if uring_refusal().is_none() {
            return WITH_URING;
        }
        BUILT_IN
    }

    /// True if this OS has the backend (for `uring`: and the kernel lets this process use it).
    pub fn is_available(self) -> bool {
        match self {
            // Only asking about uring sets up a ring.
            Backend::Uring => Backend::available().contains(&self),
            _ => BUILT_IN.contains(&self),
        }
    }

    /// The best backend of this OS: epoll on Linux, kqueue on macOS and the BSDs, poll elsewhere.
    /// Never `uring`, which wins only some workloads (see the README's comparison).
    /// Ignores [`BACKEND_ENV`]; see [`Backend::from_env`].
    pub const fn best() -> Backend {
        BUILT_IN[BUILT_IN.len() - 1]
    }

    /// The backend named by `TULIP_BACKEND` if it is set and not empty, else [`Backend::best`].
    ///
    /// # Errors
    /// `InvalidInput` if the variable names no backend (or is not UTF-8), `Unsupported` if it
    /// names one this OS does not have (or `uring` where io_uring is refused: the message says
    /// why).
    pub fn from_env() -> io::Result<Backend> {
        match std::env::var_os(BACKEND_ENV) {
            None => Ok(Backend::best()),
            Some(value) if value.is_empty() => Ok(Backend::best()),
            Some(value) => {
                let name = value.to_str().ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{BACKEND_ENV}={value:?} is not UTF-8"),
                    )
                })?;
                let backend: Backend = name.parse()?;
                backend.check_available()?;
                Ok(backend)
            }
        }
    }

    /// The lowercase name: `"select"`, `"poll"`, `"epoll"`, `"kqueue"`, `"uring"`.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Select => "select",
            Backend::Poll => "poll",
            Backend::Epoll => "epoll",
            Backend::Kqueue => "kqueue",
            Backend::Uring => "uring",
        }
    }

    /// A new selector of this kind.
    ///
    /// # Errors
    /// `Unsupported` if this OS does not have the backend (for `uring`, also where io_uring is
    /// refused: the message says why); the kernel's error if it cannot create one (`EMFILE`,
    /// `ENOMEM`).
    pub fn open(self) -> io::Result<Box<dyn Selector>> {
        self.check_available()?;
        match self {
            Backend::Select => Ok(Box::new(crate::SelectSelector::new()?)),
            Backend::Poll => Ok(Box::new(crate::PollSelector::new()?)),
            #[cfg(tulip_epoll)]
            Backend::Epoll => Ok(Box::new(crate::EpollSelector::new()?)),
            #[cfg(tulip_kqueue)]
            Backend::Kqueue => Ok(Box::new(crate::KqueueSelector::new()?)),
            #[cfg(target_os = "linux")]
            Backend::Uring => Ok(Box::new(crate::UringSelector::new()?)),
            #[allow(unreachable_patterns)]
            _ => unreachable!("check_available admitted {self:?}, which this OS lacks"),
        }
    }

    fn check_available(self) -> io::Result<()> {
        if self.is_available() {
            return Ok(());
        }
        let names: Vec<&str> = Backend::available().iter().map(|b| b.name()).collect();
        #[cfg(target_os = "linux")]
        if let (Backend::Uring, Some(why)) = (self, uring_refusal()) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{why} (available here: {})", names.join(", ")),
            ));
        }
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "the {} backend does not exist on {}; available here: {}",
                self.name(),
                std::env::consts::OS,
                names.join(", ")
            ),
        ))
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = io::Error;

    /// Parses a name as [`Backend::name`] gives it (ASCII case ignored). `InvalidInput` otherwise.
    fn from_str(s: &str) -> io::Result<Backend> {
        ALL.iter()
            .copied()
            .find(|b| b.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "unknown backend {s:?}; expected one of select, poll, epoll, kqueue, uring"
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &b in Backend::all() {
            assert_eq!(b.name().parse::<Backend>().unwrap(), b);
            assert_eq!(b.to_string(), b.name());
        }
        assert_eq!("EPOLL".parse::<Backend>().unwrap(), Backend::Epoll);
    }

    #[test]
    fn unknown_name_is_invalid_input() {
        let err = "iocp".parse::<Backend>().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("iocp"));
    }

    #[test]
    #[cfg_attr(miri, ignore = "probes io_uring")]
    fn best_is_available_and_never_uring() {
        assert!(Backend::best().is_available());
        assert_ne!(Backend::best(), Backend::Uring);
        #[cfg(target_os = "linux")]
        assert_eq!(Backend::best(), Backend::Epoll);
    }

    #[test]
    #[cfg_attr(miri, ignore = "probes io_uring")]
    fn opening_a_missing_backend_is_unsupported() {
        for &b in Backend::all() {
            if !b.is_available() {
                assert_eq!(b.open().unwrap_err().kind(), io::ErrorKind::Unsupported);
            }
        }
    }
}
