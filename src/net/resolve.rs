//! Name resolution off the loop's thread ([`EventLoop::getaddrinfo`]), the [`Endpoint`] a
//! connection is made to (addresses, or a host name and port), and how a connection tries
//! several addresses: in turn, or staggered ("happy eyeballs", RFC 8305) as [`ConnectOptions`]
//! say.
//!
//! A host name is resolved by a job on the loop's blocking pool (`run_in_executor`), so the
//! loop runs other callbacks meanwhile; a literal IP address never goes there.

use std::fmt;
use std::future::poll_fn;
use std::future::Future as StdFuture;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, ToSocketAddrs};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use crate::{sleep, EventLoop, Sleep};

/// A resolver: what [`EventLoop::set_resolver`] installs in place of the system's.
pub type Resolver = dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync;

/// Where to connect: socket addresses, or a host name and a port to resolve first (asyncio's
/// `host, port`). Made with `From` from everything a caller has at hand:
///
/// - a [`SocketAddr`] (or V4/V6, `(IpAddr, u16)`), or a list of them: used as they are;
/// - `"host:port"` (`"[::1]:80"` for an IPv6 literal), or `(host, port)`: a literal IP address
///   is used as it is, a name is resolved with [`EventLoop::getaddrinfo`], on the loop's
///   blocking pool.
///
/// A string that is not `host:port` makes an endpoint that fails with `InvalidInput` when
/// used.
///
/// ```
/// use tulip::net::Endpoint;
///
/// assert!(Endpoint::from("127.0.0.1:80").is_resolved());
/// assert!(Endpoint::from(("::1", 80)).is_resolved());
/// assert!(!Endpoint::from("localhost:80").is_resolved());
/// assert_eq!(Endpoint::from(("localhost", 80)).to_string(), "localhost:80");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint(Repr);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Repr {
    Addrs(Vec<SocketAddr>),
    Host(String, u16),
    /// A string that is not `host:port`: why.
    Invalid(String),
}

impl Endpoint {
    /// A host name (or literal IP address) and a port.
    pub fn host(host: &str, port: u16) -> Endpoint {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        match bare.parse::<IpAddr>() {
            Ok(ip) => Endpoint(Repr::Addrs(vec![SocketAddr::new(ip, port)])),
            Err(_) if host.is_empty() => Endpoint(Repr::Invalid(
                "an empty host name cannot be resolved".to_owned(),
            )),
            Err(_) => Endpoint(Repr::Host(host.to_owned(), port)),
        }
    }

    /// True if no resolution is needed: socket addresses (or a literal IP address).
    pub fn is_resolved(&self) -> bool {
        !matches!(self.0, Repr::Host(..))
    }

    /// The socket addresses, for an endpoint that needs no resolution.
    pub fn addrs(&self) -> Option<&[SocketAddr]> {
        match &self.0 {
            Repr::Addrs(addrs) => Some(addrs),
            _ => None,
        }
    }
}

impl fmt::Display for Endpoint {
    /// `host:port`, or the addresses separated by `, `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Addrs(addrs) => {
                for (i, addr) in addrs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{addr}")?;
                }
                Ok(())
            }
            Repr::Host(host, port) => write!(f, "{host}:{port}"),
            Repr::Invalid(why) => write!(f, "(invalid: {why})"),
        }
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Endpoint {
        Endpoint(Repr::Addrs(vec![addr]))
    }
}

impl From<&SocketAddr> for Endpoint {
    fn from(addr: &SocketAddr) -> Endpoint {
        Endpoint::from(*addr)
    }
}

impl From<SocketAddrV4> for Endpoint {
    fn from(addr: SocketAddrV4) -> Endpoint {
        Endpoint::from(SocketAddr::V4(addr))
    }
}

impl From<SocketAddrV6> for Endpoint {
    fn from(addr: SocketAddrV6) -> Endpoint {
        Endpoint::from(SocketAddr::V6(addr))
    }
}

impl From<(IpAddr, u16)> for Endpoint {
    fn from((ip, port): (IpAddr, u16)) -> Endpoint {
        Endpoint::from(SocketAddr::new(ip, port))
    }
}

impl From<(Ipv4Addr, u16)> for Endpoint {
    fn from((ip, port): (Ipv4Addr, u16)) -> Endpoint {
        Endpoint::from(SocketAddr::new(ip.into(), port))
    }
}

impl From<(Ipv6Addr, u16)> for Endpoint {
    fn from((ip, port): (Ipv6Addr, u16)) -> Endpoint {
        Endpoint::from(SocketAddr::new(ip.into(), port))
    }
}

impl From<Vec<SocketAddr>> for Endpoint {
    /// The addresses, tried in this order.
    fn from(addrs: Vec<SocketAddr>) -> Endpoint {
        Endpoint(Repr::Addrs(addrs))
    }
}

impl From<&[SocketAddr]> for Endpoint {
    fn from(addrs: &[SocketAddr]) -> Endpoint {
        Endpoint(Repr::Addrs(addrs.to_vec()))
    }
}

impl<const N: usize> From<[SocketAddr; N]> for Endpoint {
    fn from(addrs: [SocketAddr; N]) -> Endpoint {
        Endpoint(Repr::Addrs(addrs.to_vec()))
    }
}

impl From<(&str, u16)> for Endpoint {
    fn from((host, port): (&str, u16)) -> Endpoint {
        Endpoint::host(host, port)
    }
}

impl From<(String, u16)> for Endpoint {
    fn from((host, port): (String, u16)) -> Endpoint {
        Endpoint::host(&host, port)
    }
}

impl From<&str> for Endpoint {
    /// `"127.0.0.1:80"`, `"[::1]:80"`, `"example.com:80"`.
    fn from(s: &str) -> Endpoint {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Endpoint::from(addr);
        }
        let Some((host, port)) = s.rsplit_once(':') else {
            return Endpoint(Repr::Invalid(format!("{s:?} is not host:port (no port)")));
        };
        let Ok(port) = port.parse::<u16>() else {
            return Endpoint(Repr::Invalid(format!(
                "{s:?} is not host:port (invalid port {port:?})"
            )));
        };
        if host.contains(':') && !host.starts_with('[') {
            return Endpoint(Repr::Invalid(format!(
                "{s:?} is not host:port (write an IPv6 address in brackets: [::1]:80)"
            )));
        }
        Endpoint::host(host, port)
    }
}

impl From<String> for Endpoint {
    fn from(s: String) -> Endpoint {
        Endpoint::from(s.as_str())
    }
}

impl From<&String> for Endpoint {
    fn from(s: &String) -> Endpoint {
        Endpoint::from(s.as_str())
    }
}

/// Which addresses [`EventLoop::getaddrinfo_with`] keeps: asyncio's `family` argument.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Family {
    /// Both (`AF_UNSPEC`, the default).
    #[default]
    Any,
    /// IPv4 only (`AF_INET`).
    Inet,
    /// IPv6 only (`AF_INET6`).
    Inet6,
}

impl Family {
    fn admits(self, addr: &SocketAddr) -> bool {
        match self {
            Family::Any => true,
            Family::Inet => addr.is_ipv4(),
            Family::Inet6 => addr.is_ipv6(),
        }
    }
}

/// How a TCP connection is made: asyncio's `create_connection` options `happy_eyeballs_delay`,
/// `interleave` and `local_addr`.
///
/// ```
/// use std::time::Duration;
/// use tulip::net::ConnectOptions;
///
/// let options = ConnectOptions {
///     happy_eyeballs_delay: Some(Duration::from_millis(250)),
///     ..ConnectOptions::default()
/// };
/// assert_eq!(options.interleave, None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectOptions {
    /// `None` (the default, as asyncio's): the addresses are tried one after the other, each
    /// until it fails. `Some(delay)`: happy eyeballs (RFC 8305): the next address is tried
    /// `delay` after the last attempt started (or as soon as it failed) while the earlier ones
    /// go on; the first to connect wins and the others are closed. RFC 8305 recommends 250 ms.
    pub happy_eyeballs_delay: Option<Duration>,
    /// Reorder the addresses by family: `n` of the first address's family first, then
    /// alternating between families (asyncio's `interleave`). `None`: 1 with a happy eyeballs
    /// delay, none without (as asyncio); `Some(0)`: the resolver's order.
    pub interleave: Option<usize>,
    /// Bind the socket to this address before connecting: the connection comes from it (port 0:
    /// any port). An address of the other family than the one being tried fails that attempt
    /// with `InvalidInput`.
    pub local_addr: Option<SocketAddr>,
}

/// asyncio's `_interleave_addrinfos`: `first_count` addresses of the first family, then one of
/// each family in turn (families in the order they first appear).
pub(crate) fn interleave(addrs: &[SocketAddr], first_count: usize) -> Vec<SocketAddr> {
    if first_count == 0 {
        return addrs.to_vec();
    }
    let mut families: Vec<std::collections::VecDeque<SocketAddr>> = Vec::new();
    let mut kinds: Vec<bool> = Vec::new();
    for addr in addrs {
        match kinds.iter().position(|&v4| v4 == addr.is_ipv4()) {
            Some(i) => families[i].push_back(*addr),
            None => {
                kinds.push(addr.is_ipv4());
                families.push([*addr].into());
            }
        }
    }
    let mut out = Vec::with_capacity(addrs.len());
    if let Some(first) = families.first_mut() {
        for _ in 1..first_count {
            match first.pop_front() {
                Some(addr) => out.push(addr),
                None => break,
            }
        }
    }
    while out.len() < addrs.len() {
        for family in &mut families {
            if let Some(addr) = family.pop_front() {
                out.push(addr);
            }
        }
    }
    out
}

impl EventLoop {
    /// Resolve `host` to the socket addresses of `port`, on the loop's blocking pool so that
    /// the loop runs on meanwhile (asyncio's `loop.getaddrinfo`, for stream sockets). A literal
    /// IP address (`"127.0.0.1"`, `"::1"`, `"[::1]"`) is returned at once, without the pool.
    ///
    /// ```
    /// let lp = tulip::EventLoop::new()?;
    /// let addrs = lp.run_until_complete(async {
    ///     tulip::get_running_loop()?.getaddrinfo("localhost", 80).await
    /// })??;
    /// assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// `NotFound` for a host that does not resolve (or resolves to no address), the host named
    /// in the message with the resolver's reason (a resolver installed with
    /// [`set_resolver`](Self::set_resolver) keeps its error's kind); `InvalidInput` for an
    /// empty host; [`LoopError::Closed`](crate::LoopError::Closed) on a closed loop.
    pub async fn getaddrinfo(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        self.getaddrinfo_with(host, port, Family::Any).await
    }

    /// [`getaddrinfo`](Self::getaddrinfo) keeping only the addresses of `family`.
    ///
    /// # Errors
    /// As [`getaddrinfo`](Self::getaddrinfo); `NotFound` if no address of `family` is left.
    pub async fn getaddrinfo_with(
        &self,
        host: &str,
        port: u16,
        family: Family,
    ) -> io::Result<Vec<SocketAddr>> {
        let addrs = match Endpoint::host(host, port).0 {
            Repr::Addrs(addrs) => addrs,
            Repr::Invalid(why) => return Err(io::Error::new(io::ErrorKind::InvalidInput, why)),
            Repr::Host(host, port) => self.lookup(host, port).await?,
        };
        let addrs: Vec<SocketAddr> = addrs.into_iter().filter(|a| family.admits(a)).collect();
        if addrs.is_empty() {
            let which = match family {
                Family::Any => "",
                Family::Inet => "IPv4 ",
                Family::Inet6 => "IPv6 ",
            };
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host:?} resolved to no {which}address"),
            ));
        }
        Ok(addrs)
    }

    /// Resolve host names with `resolver` rather than the system's (`getaddrinfo(3)` through
    /// std's `ToSocketAddrs`): for tests, or a resolver of your own. It runs on the loop's
    /// blocking pool, and is not called for literal IP addresses. Its error's kind is kept,
    /// the host named in front of its message.
    pub fn set_resolver(
        &self,
        resolver: impl Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
    ) {
        self.blocking_pool().set_resolver(Some(Arc::new(resolver)));
    }

    /// Go back to the system's resolver.
    pub fn clear_resolver(&self) {
        self.blocking_pool().set_resolver(None);
    }

    /// Resolve a name on the pool.
    async fn lookup(&self, host: String, port: u16) -> io::Result<Vec<SocketAddr>> {
        let custom = self.blocking_pool().resolver();
        let name = host.clone();
        let found = self
            .run_in_executor(move || match custom {
                Some(resolver) => resolver(&name, port).map_err(|e| (e, true)),
                None => (name.as_str(), port)
                    .to_socket_addrs()
                    .map(Iterator::collect)
                    .map_err(|e| (e, false)),
            })
            .await?;
        found.map_err(|(e, custom)| {
            let kind = if custom {
                e.kind()
            } else {
                io::ErrorKind::NotFound
            };
            io::Error::new(kind, format!("cannot resolve {host:?}: {e}"))
        })
    }

    /// The addresses of `endpoint`: as they are, or resolved on the pool.
    pub(crate) async fn resolve(&self, endpoint: &Endpoint) -> io::Result<Vec<SocketAddr>> {
        match &endpoint.0 {
            Repr::Addrs(addrs) if addrs.is_empty() => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no address to connect to (an empty list)",
            )),
            Repr::Addrs(addrs) => Ok(addrs.clone()),
            Repr::Host(host, port) => self.getaddrinfo(host, *port).await,
            Repr::Invalid(why) => Err(io::Error::new(io::ErrorKind::InvalidInput, why.clone())),
        }
    }
}

/// The addresses of `endpoint` without a loop, for one that needs no resolution; `None` for a
/// host name.
pub(crate) fn resolved(endpoint: &Endpoint) -> Option<io::Result<Vec<SocketAddr>>> {
    match &endpoint.0 {
        Repr::Host(..) => None,
        Repr::Addrs(addrs) if addrs.is_empty() => Some(Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no address to connect to (an empty list)",
        ))),
        Repr::Addrs(addrs) => Some(Ok(addrs.clone())),
        Repr::Invalid(why) => Some(Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            why.clone(),
        ))),
    }
}

/// One connection attempt.
type Attempt<T> = Pin<Box<dyn StdFuture<Output = io::Result<T>>>>;

/// Try `connect` on each of `addrs`: one after the other (`delay` `None`), or staggered by
/// `delay` (happy eyeballs: the next starts when the delay since the last start is over or the
/// last failed; the first to succeed wins and the others are dropped, closing their sockets).
///
/// # Errors
/// Every attempt's error, with its address, in the order they failed.
pub(crate) async fn race<T: 'static, F>(
    addrs: &[SocketAddr],
    delay: Option<Duration>,
    mut connect: impl FnMut(SocketAddr) -> F,
) -> Result<T, Vec<(SocketAddr, io::Error)>>
where
    F: StdFuture<Output = io::Result<T>> + 'static,
{
    let mut errors = Vec::new();
    let Some(delay) = delay else {
        for &addr in addrs {
            match connect(addr).await {
                Ok(value) => return Ok(value),
                Err(e) => errors.push((addr, e)),
            }
        }
        return Err(errors);
    };
    let mut running: Vec<(SocketAddr, Attempt<T>)> = Vec::new();
    let mut next = 0;
    // `None`: the next attempt is due (nothing runs, or the last one failed).
    let mut timer: Option<Sleep> = None;
    poll_fn(move |cx| loop {
        while next < addrs.len() {
            let due = running.is_empty()
                || match timer.as_mut() {
                    None => true,
                    Some(t) => Pin::new(t).poll(cx).is_ready(),
                };
            if !due {
                break;
            }
            running.push((addrs[next], Box::pin(connect(addrs[next]))));
            next += 1;
            timer = Some(sleep(delay));
        }
        let mut failed = false;
        let mut i = 0;
        while i < running.len() {
            match running[i].1.as_mut().poll(cx) {
                Poll::Ready(Ok(value)) => return Poll::Ready(Ok(value)),
                Poll::Ready(Err(e)) => {
                    let (addr, _) = running.remove(i);
                    errors.push((addr, e));
                    failed = true;
                }
                Poll::Pending => i += 1,
            }
        }
        if running.is_empty() && next >= addrs.len() {
            return Poll::Ready(Err(std::mem::take(&mut errors)));
        }
        if !failed {
            return Poll::Pending;
        }
        timer = None;
    })
    .await
}

/// The error of a connection that no address took: the one error if there was one (or if all
/// say the same, as asyncio), else one naming each address and its error, of the last one's
/// kind.
pub(crate) fn combine(endpoint: &Endpoint, mut errors: Vec<(SocketAddr, io::Error)>) -> io::Error {
    let Some((last_addr, last)) = errors.pop() else {
        return io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to");
    };
    let message = last.to_string();
    if errors.iter().all(|(_, e)| e.to_string() == message) {
        return last;
    }
    let mut all: Vec<String> = errors.iter().map(|(a, e)| format!("{a}: {e}")).collect();
    all.push(format!("{last_addr}: {message}"));
    io::Error::new(
        last.kind(),
        format!("could not connect to {endpoint}: {}", all.join("; ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    /// asyncio's `_interleave_addrinfos`: families alternate, after `n - 1` more of the first.
    #[test]
    fn interleaving_by_family() {
        let given = addrs(&[
            "[::1]:1",
            "[::2]:1",
            "[::3]:1",
            "127.0.0.1:1",
            "127.0.0.2:1",
        ]);
        let one = addrs(&[
            "[::1]:1",
            "127.0.0.1:1",
            "[::2]:1",
            "127.0.0.2:1",
            "[::3]:1",
        ]);
        assert_eq!(interleave(&given, 1), one);
        let two = addrs(&[
            "[::1]:1",
            "[::2]:1",
            "127.0.0.1:1",
            "[::3]:1",
            "127.0.0.2:1",
        ]);
        assert_eq!(interleave(&given, 2), two);
        assert_eq!(interleave(&given, 0), given);
        assert_eq!(interleave(&given, 9), given);
        assert_eq!(interleave(&[], 1), Vec::<SocketAddr>::new());
    }

    #[test]
    fn parsing_endpoints() {
        assert_eq!(
            Endpoint::from("127.0.0.1:80").addrs(),
            Some(&addrs(&["127.0.0.1:80"])[..])
        );
        assert_eq!(
            Endpoint::from("[::1]:80").addrs(),
            Some(&addrs(&["[::1]:80"])[..])
        );
        assert_eq!(
            Endpoint::from(("[::1]", 80)).addrs(),
            Some(&addrs(&["[::1]:80"])[..])
        );
        assert_eq!(
            Endpoint::from("localhost:80"),
            Endpoint(Repr::Host("localhost".into(), 80))
        );
        for bad in ["localhost", "host:", "host:65536", "::1:80", ":80", ""] {
            assert!(matches!(Endpoint::from(bad).0, Repr::Invalid(_)), "{bad}");
        }
        assert!(matches!(Endpoint::from(("", 80)).0, Repr::Invalid(_)));
    }
}
