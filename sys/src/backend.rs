//! Which readiness mechanisms exist, which this OS has, and choosing one at run time.

use std::fmt;
use std::io;
use std::str::FromStr;

use crate::Selector;

/// The environment variable that forces a backend: `TULIP_BACKEND=select|poll|epoll|kqueue`.
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
}

const ALL: [Backend; 4] = [
    Backend::Select,
    Backend::Poll,
    Backend::Epoll,
    Backend::Kqueue,
];

#[cfg(tulip_epoll)]
const AVAILABLE: &[Backend] = &[Backend::Select, Backend::Poll, Backend::Epoll];
#[cfg(tulip_kqueue)]
const AVAILABLE: &[Backend] = &[Backend::Select, Backend::Poll, Backend::Kqueue];
#[cfg(not(any(tulip_epoll, tulip_kqueue)))]
const AVAILABLE: &[Backend] = &[Backend::Select, Backend::Poll];

impl Backend {
    /// Every backend this crate knows, available here or not.
    pub const fn all() -> &'static [Backend] {
        &ALL
    }

    /// The backends this OS has, from the oldest mechanism to the best.
    pub const fn available() -> &'static [Backend] {
        AVAILABLE
    }

    /// True if this OS has the backend.
    pub fn is_available(self) -> bool {
        AVAILABLE.contains(&self)
    }

    /// The best backend of this OS: epoll on Linux, kqueue on macOS and the BSDs, poll elsewhere.
    /// Ignores [`BACKEND_ENV`]; see [`Backend::from_env`].
    pub const fn best() -> Backend {
        AVAILABLE[AVAILABLE.len() - 1]
    }

    /// The backend named by `TULIP_BACKEND` if it is set and not empty, else [`Backend::best`].
    ///
    /// # Errors
    /// `InvalidInput` if the variable names no backend (or is not UTF-8), `Unsupported` if it
    /// names one this OS does not have.
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

    /// The lowercase name: `"select"`, `"poll"`, `"epoll"`, `"kqueue"`.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Select => "select",
            Backend::Poll => "poll",
            Backend::Epoll => "epoll",
            Backend::Kqueue => "kqueue",
        }
    }

    /// A new selector of this kind.
    ///
    /// # Errors
    /// `Unsupported` if this OS does not have the backend; the kernel's error if it cannot
    /// create one (`EMFILE`, `ENOMEM`).
    pub fn open(self) -> io::Result<Box<dyn Selector>> {
        self.check_available()?;
        match self {
            Backend::Select => Ok(Box::new(crate::SelectSelector::new()?)),
            Backend::Poll => Ok(Box::new(crate::PollSelector::new()?)),
            #[cfg(tulip_epoll)]
            Backend::Epoll => Ok(Box::new(crate::EpollSelector::new()?)),
            #[cfg(tulip_kqueue)]
            Backend::Kqueue => Ok(Box::new(crate::KqueueSelector::new()?)),
            #[allow(unreachable_patterns)]
            _ => unreachable!("check_available admitted {self:?}, which this OS lacks"),
        }
    }

    fn check_available(self) -> io::Result<()> {
        if self.is_available() {
            return Ok(());
        }
        let names: Vec<&str> = AVAILABLE.iter().map(|b| b.name()).collect();
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
                    format!("unknown backend {s:?}; expected one of select, poll, epoll, kqueue"),
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
    fn best_is_available_and_last() {
        assert!(Backend::best().is_available());
        assert_eq!(Backend::available().last(), Some(&Backend::best()));
    }

    #[test]
    fn opening_a_missing_backend_is_unsupported() {
        for &b in Backend::all() {
            if !b.is_available() {
                assert_eq!(b.open().unwrap_err().kind(), io::ErrorKind::Unsupported);
            }
        }
    }
}
