//! The `Selector` contract (`sys/src/selector.rs`), tested once per behaviour and run on every
//! backend this OS has: `per_backend!` turns each `fn name(b: Backend)` into a module `name`
//! holding one `#[test]` per backend (`name::select`, `name::poll`, `name::epoll`, ...).
//!
//! Tests run in parallel threads of one process, and fd numbers are process-wide: a test that
//! closes an fd and then looks at its number, or counts the open fds, is declared `exclusive`
//! and runs alone; every other one holds a shared lock meanwhile.

use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tulip::selectors::{fd, Backend, Event, Interest, Selector, Token, FD_SETSIZE};

#[macro_use]
#[path = "support/per_backend.rs"]
mod per_backend;
use per_backend::{shared_fd_table, INSTANTIATED};

/// Long enough that no machine, however loaded, is still waiting for loopback I/O by then; only
/// ever a bound on waiting for something that must happen, never an assertion about speed.
const PATIENCE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Helpers

fn open(b: Backend) -> Box<dyn Selector> {
    b.open()
        .unwrap_or_else(|e| panic!("{b}: an available backend opens: {e}"))
}

/// One `select` with `timeout`; its events.
fn select_within(sel: &mut dyn Selector, timeout: Option<Duration>) -> Vec<Event> {
    let mut events = Vec::new();
    let n = sel.select(&mut events, timeout).expect("select succeeds");
    assert_eq!(
        n,
        events.len(),
        "select returns how many events it reported"
    );
    events
}

/// The events ready right now (`select` with a zero timeout).
fn ready_now(sel: &mut dyn Selector) -> Vec<Event> {
    select_within(sel, Some(Duration::ZERO))
}

/// Select until an event for `token` satisfies `wanted` (for readiness the kernel reaches
/// asynchronously, as TCP over loopback); panics after [`PATIENCE`].
fn wait_for(sel: &mut dyn Selector, token: Token, wanted: impl Fn(&Event) -> bool) -> Event {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no wanted event for {token:?} within {PATIENCE:?}"
        );
        if let Some(e) = select_within(sel, Some(left))
            .into_iter()
            .find(|e| e.token() == token && wanted(e))
        {
            return e;
        }
    }
}

fn the_event_for(events: &[Event], token: Token) -> Event {
    let mine: Vec<&Event> = events.iter().filter(|e| e.token() == token).collect();
    assert_eq!(
        mine.len(),
        1,
        "exactly one event for {token:?} in {events:?}"
    );
    *mine[0]
}

fn send(to: &OwnedFd, bytes: &[u8]) {
    let n = fd::write(to.as_fd(), bytes).expect("a small write succeeds");
    assert_eq!(n, bytes.len());
}

/// Read until the fd would block or says EOF; how many bytes that was.
fn drain(from: &OwnedFd) -> usize {
    let mut total = 0;
    let mut buf = [0u8; 4096];
    loop {
        match fd::read(from.as_fd(), &mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return total,
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// A connected pair of non-blocking TCP streams over 127.0.0.1.
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind on loopback");
    let client = TcpStream::connect(listener.local_addr().unwrap()).expect("connect on loopback");
    let (server, _) = listener.accept().expect("accept on loopback");
    for s in [&client, &server] {
        s.set_nonblocking(true).unwrap();
    }
    (client, server)
}

/// A non-blocking TCP socket whose `connect` to `addr` has been started (and may be finished).
fn start_connect(addr: SocketAddrV4) -> TcpStream {
    let ty = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: socket takes no pointers.
    let raw = unsafe { libc::socket(libc::AF_INET, ty, 0) };
    assert!(raw >= 0, "socket: {}", io::Error::last_os_error());
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    let sin = sockaddr_in(addr);
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `sin` is a valid sockaddr_in of `len` bytes that outlives the call.
    let ret = unsafe { libc::connect(raw, (&sin as *const libc::sockaddr_in).cast(), len) };
    let err = io::Error::last_os_error();
    assert!(
        ret == 0 || err.raw_os_error() == Some(libc::EINPROGRESS),
        "a non-blocking connect is done or in progress: {err}"
    );
    TcpStream::from(socket)
}

/// A loopback TCP socket bound to a free port but not listening, and that port's address:
/// connections to it are refused for as long as the socket lives (a closed listener's port
/// could be taken by another test thread meanwhile).
fn bound_port_that_refuses() -> (OwnedFd, SocketAddrV4) {
    let ty = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    // SAFETY: socket takes no pointers.
    let raw = unsafe { libc::socket(libc::AF_INET, ty, 0) };
    assert!(raw >= 0, "socket: {}", io::Error::last_os_error());
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut sin = sockaddr_in(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `sin` is a valid sockaddr_in of `len` bytes that outlives the call.
    let ret = unsafe { libc::bind(raw, (&sin as *const libc::sockaddr_in).cast(), len) };
    assert_eq!(ret, 0, "bind: {}", io::Error::last_os_error());
    // SAFETY: `sin` and `len` are valid for writes and outlive the call; `len` is its size.
    let ret =
        unsafe { libc::getsockname(raw, (&mut sin as *mut libc::sockaddr_in).cast(), &mut len) };
    assert_eq!(ret, 0, "getsockname: {}", io::Error::last_os_error());
    let port = u16::from_be(sin.sin_port);
    (socket, SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

fn sockaddr_in(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// `fd` duplicated to the lowest free number at or above `min`.
fn dup_at_least(fd: RawFd, min: RawFd) -> OwnedFd {
    // SAFETY: F_DUPFD_CLOEXEC takes an int argument; a bad fd is reported as an error.
    let raw = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) };
    assert!(
        raw >= 0,
        "F_DUPFD_CLOEXEC to >= {min}: {}",
        io::Error::last_os_error()
    );
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// The number of a pipe end that has just been closed (call under `exclusive_fd_table`, so that
/// no other test reuses the number meanwhile).
fn a_closed_fd() -> RawFd {
    let (r, _w) = fd::pipe().unwrap();
    r.as_raw_fd()
}

fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd is readable")
        .count()
}

#[test]
fn every_available_backend_gets_every_per_backend_test() {
    // `uring` is instantiated on Linux even where io_uring is refused (its tests then skip).
    let probed: Vec<Backend> = INSTANTIATED
        .iter()
        .copied()
        .filter(|b| *b != Backend::Uring || b.is_available())
        .collect();
    assert_eq!(probed, Backend::available());
}

// ---------------------------------------------------------------------------------------------
// Readiness

per_backend! {
    /// A pipe's read end is not ready until written to, then readable with its token.
    fn pipe_becomes_readable_after_a_write_and_carries_its_token(b: Backend) {
        let mut sel = open(b);
        let (r, w) = fd::pipe().unwrap();
        sel.register(r.as_raw_fd(), Interest::READABLE, Token(41)).unwrap();
        assert!(ready_now(&mut *sel).is_empty());

        send(&w, b"x");
        let events = ready_now(&mut *sel);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].token(), Token(41));
        assert!(events[0].is_readable() && !events[0].is_writable() && !events[0].is_hangup());
    }

    /// A pipe's write end with room is writable at once, and never reported readable.
    fn pipe_write_end_is_writable_at_once(b: Backend) {
        let mut sel = open(b);
        let (_r, w) = fd::pipe().unwrap();
        sel.register(w.as_raw_fd(), Interest::WRITABLE, Token(2)).unwrap();
        let event = the_event_for(&ready_now(&mut *sel), Token(2));
        assert!(event.is_writable() && !event.is_readable());
    }

    /// A socketpair end registered for both is writable at once and also readable once its peer
    /// sends; a write does not make the *sending* end readable.
    fn socketpair_reports_both_directions_within_the_interest(b: Backend) {
        let mut sel = open(b);
        let (a, peer) = fd::socketpair().unwrap();
        sel.register(a.as_raw_fd(), Interest::BOTH, Token(1)).unwrap();
        sel.register(peer.as_raw_fd(), Interest::READABLE, Token(2)).unwrap();

        let events = ready_now(&mut *sel);
        assert_eq!(events.len(), 1, "only the end registered for writing is ready: {events:?}");
        let event = the_event_for(&events, Token(1));
        assert!(event.is_writable() && !event.is_readable());

        send(&peer, b"ping");
        let events = ready_now(&mut *sel);
        assert_eq!(events.len(), 1, "{events:?}");
        let event = the_event_for(&events, Token(1));
        assert!(event.is_readable() && event.is_writable());
    }

    /// TCP over loopback: a stream becomes readable when its peer sends.
    fn tcp_stream_becomes_readable_when_its_peer_sends(b: Backend) {
        let mut sel = open(b);
        let (mut client, server) = tcp_pair();
        sel.register(server.as_raw_fd(), Interest::READABLE, Token(5)).unwrap();
        assert!(ready_now(&mut *sel).is_empty());

        client.write_all(b"hello").unwrap();
        wait_for(&mut *sel, Token(5), Event::is_readable);
        let mut buf = [0u8; 5];
        (&server).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
    }

    /// A listening TCP socket becomes readable when a connection is waiting to be accepted.
    fn tcp_listener_becomes_readable_when_a_connection_arrives(b: Backend) {
        let mut sel = open(b);
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        sel.register(listener.as_raw_fd(), Interest::READABLE, Token(8)).unwrap();
        assert!(ready_now(&mut *sel).is_empty());

        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        wait_for(&mut *sel, Token(8), Event::is_readable);
        listener.accept().expect("the reported connection is there to accept");
    }

    /// A non-blocking connect is reported writable once it completes, with no pending error.
    fn nonblocking_connect_is_writable_once_connected(b: Backend) {
        let mut sel = open(b);
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = match listener.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            other => panic!("bound to IPv4 loopback, got {other}"),
        };
        let stream = start_connect(addr);
        sel.register(stream.as_raw_fd(), Interest::WRITABLE, Token(3)).unwrap();

        let event = wait_for(&mut *sel, Token(3), Event::is_writable);
        assert!(!event.is_error(), "{event:?}");
        assert!(stream.take_error().unwrap().is_none());
        assert_eq!(stream.peer_addr().unwrap(), std::net::SocketAddr::V4(addr));
    }

    /// A refused non-blocking connect is reported writable (the pending error is the answer);
    /// the backends that have an error flag set it, `select(2)` has none.
    fn refused_nonblocking_connect_is_writable_with_its_error(b: Backend) {
        let mut sel = open(b);
        // Bound but not listening: the port refuses connections, and stays ours (no other test
        // thread can start listening on it) until the end of the test.
        let (_reserved, addr) = bound_port_that_refuses();
        let stream = start_connect(addr);
        sel.register(stream.as_raw_fd(), Interest::WRITABLE, Token(4)).unwrap();

        let event = wait_for(&mut *sel, Token(4), Event::is_writable);
        assert_eq!(event.is_error(), b != Backend::Select, "{b}: {event:?}");
        let err = stream.take_error().unwrap().expect("the connect failed");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    }

    /// When the peer closes, the fd is readable (the read says EOF) on every backend, and is
    /// flagged as a hang-up on every backend but `select`: `select(2)` has no such notion and
    /// cannot tell EOF from data. Pipes, socketpairs and TCP streams alike.
    fn peer_close_is_readable_everywhere_and_a_hangup_where_the_backend_can_tell(b: Backend) {
        let mut sel = open(b);
        let (pipe_r, pipe_w) = fd::pipe().unwrap();
        let (pair, pair_peer) = fd::socketpair().unwrap();
        let (tcp, tcp_peer) = tcp_pair();
        let watched = [(pipe_r.as_raw_fd(), Token(1)), (pair.as_raw_fd(), Token(2)), (tcp.as_raw_fd(), Token(3))];
        for (fd, token) in watched {
            sel.register(fd, Interest::READABLE, token).unwrap();
        }
        assert!(ready_now(&mut *sel).is_empty());

        drop((pipe_w, pair_peer, tcp_peer));
        let can_tell = b != Backend::Select;
        for (_, token) in watched {
            // TCP's FIN reaches the other end asynchronously: wait for it.
            let event = wait_for(&mut *sel, token, Event::is_readable);
            assert_eq!(event.is_hangup(), can_tell, "{b}, {token:?}: {event:?}");
        }
        assert_eq!(drain(&pipe_r), 0, "EOF");
        assert_eq!(drain(&pair), 0, "EOF");
    }

    /// Level-triggered: unread data is reported by every select until it is drained.
    fn level_triggered_read_is_reported_again_until_drained(b: Backend) {
        let mut sel = open(b);
        let (a, peer) = fd::socketpair().unwrap();
        sel.register(a.as_raw_fd(), Interest::READABLE, Token(9)).unwrap();
        send(&peer, b"not read yet");
        for _ in 0..3 {
            assert!(the_event_for(&ready_now(&mut *sel), Token(9)).is_readable());
        }
        let mut one = [0u8; 1];
        fd::read(a.as_fd(), &mut one).unwrap();
        assert!(the_event_for(&ready_now(&mut *sel), Token(9)).is_readable(), "partly read is still readable");

        assert_eq!(drain(&a), b"not read yet".len() - 1);
        assert!(ready_now(&mut *sel).is_empty());
    }

    /// `Interest::EDGE` (tulip's extension, for its socket types): where the backend supports
    /// it, a direction is reported once when it becomes ready, not again while it stays so, and
    /// again when new data arrives; `EDGE` alone is as empty as no interest. Where it does not,
    /// `register` and `modify` refuse it with `Unsupported` and change nothing.
    fn edge_interest_reports_each_change_once_or_is_unsupported(b: Backend) {
        let mut sel = open(b);
        let (a, peer) = fd::socketpair().unwrap();
        let edge = Interest::READABLE | Interest::EDGE;
        let err = sel.register(a.as_raw_fd(), Interest::EDGE, Token(1)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        if !sel.supports_edge() {
            let err = sel.register(a.as_raw_fd(), edge, Token(1)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
            assert_eq!(sel.len(), 0);
            sel.register(a.as_raw_fd(), Interest::READABLE, Token(1)).unwrap();
            let err = sel.modify(a.as_raw_fd(), edge, Token(2)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
            assert_eq!(sel.registration(a.as_raw_fd()).map(|r| r.token), Some(Token(1)));
            return;
        }
        sel.register(a.as_raw_fd(), edge, Token(1)).unwrap();
        assert!(ready_now(&mut *sel).is_empty());
        send(&peer, b"first");
        assert!(the_event_for(&ready_now(&mut *sel), Token(1)).is_readable());
        assert!(ready_now(&mut *sel).is_empty(), "unread, but reported once");
        send(&peer, b"second");
        assert!(the_event_for(&ready_now(&mut *sel), Token(1)).is_readable(), "new data");
        assert_eq!(drain(&a), b"firstsecond".len());
        sel.modify(a.as_raw_fd(), Interest::READABLE, Token(1)).unwrap();
        send(&peer, b"level again");
        for _ in 0..2 {
            assert!(the_event_for(&ready_now(&mut *sel), Token(1)).is_readable());
        }
    }

    /// `modify` switches both the interest and the token, and only the new ones are reported.
    fn modify_switches_interest_and_token(b: Backend) {
        let mut sel = open(b);
        let (a, peer) = fd::socketpair().unwrap();
        send(&peer, b"data");
        sel.register(a.as_raw_fd(), Interest::WRITABLE, Token(1)).unwrap();
        let event = the_event_for(&ready_now(&mut *sel), Token(1));
        assert!(event.is_writable() && !event.is_readable(), "readable is outside the interest");

        sel.modify(a.as_raw_fd(), Interest::READABLE, Token(2)).unwrap();
        let events = ready_now(&mut *sel);
        assert_eq!(events.len(), 1, "{events:?}");
        let event = the_event_for(&events, Token(2));
        assert!(event.is_readable() && !event.is_writable());

        sel.modify(a.as_raw_fd(), Interest::BOTH, Token(3)).unwrap();
        let event = the_event_for(&ready_now(&mut *sel), Token(3));
        assert!(event.is_readable() && event.is_writable());
        let registration = sel.registration(a.as_raw_fd()).unwrap();
        assert_eq!((registration.interest, registration.token), (Interest::BOTH, Token(3)));
    }

    /// `unregister` stops the events, and the fd can be registered again.
    fn unregistered_fd_is_no_longer_reported_and_can_be_registered_again(b: Backend) {
        let mut sel = open(b);
        let (a, _peer) = fd::socketpair().unwrap();
        sel.register(a.as_raw_fd(), Interest::WRITABLE, Token(1)).unwrap();
        assert_eq!(ready_now(&mut *sel).len(), 1);
        sel.unregister(a.as_raw_fd()).unwrap();
        assert!(ready_now(&mut *sel).is_empty());
        assert_eq!(sel.len(), 0);
        sel.register(a.as_raw_fd(), Interest::WRITABLE, Token(2)).unwrap();
        the_event_for(&ready_now(&mut *sel), Token(2));
    }
}

// ---------------------------------------------------------------------------------------------
// Timeouts and the notifier

per_backend! {
    /// A zero timeout polls: it returns with no events when nothing is ready.
    fn zero_timeout_returns_at_once_when_nothing_is_ready(b: Backend) {
        let mut sel = open(b);
        let (r, _w) = fd::pipe().unwrap();
        sel.register(r.as_raw_fd(), Interest::READABLE, Token(1)).unwrap();
        let start = Instant::now();
        assert!(ready_now(&mut *sel).is_empty());
        // With nothing registered at all, too (Python's test_empty_select).
        let mut empty = open(b);
        assert!(ready_now(&mut *empty).is_empty());
        // Generous: only a call that waited for something would take this long.
        assert!(start.elapsed() < PATIENCE, "took {:?}", start.elapsed());
    }

    /// The longest timeouts (`Duration::MAX`, centuries) are taken by every backend (capped
    /// to what its kernel call accepts, never an `EINVAL`), and an fd ready meanwhile ends the
    /// wait as usual.
    fn a_huge_timeout_waits_until_an_fd_is_ready(b: Backend) {
        let mut sel = open(b);
        let (r, w) = fd::pipe().unwrap();
        sel.register(r.as_raw_fd(), Interest::READABLE, Token(1)).unwrap();
        for timeout in [Duration::MAX, Duration::from_secs(u64::from(u32::MAX)) + Duration::from_nanos(1)] {
            let writer = thread::spawn({
                let w = w.try_clone().unwrap();
                // A head start to block, not synchronization.
                move || { thread::sleep(Duration::from_millis(20)); send(&w, b"x"); }
            });
            let events = select_within(&mut *sel, Some(timeout));
            writer.join().unwrap();
            assert!(the_event_for(&events, Token(1)).is_readable());
            assert_eq!(drain(&r), 1);
        }
    }

    /// A positive timeout is never cut short, including sub-millisecond parts (rounded up).
    fn short_timeout_never_returns_early(b: Backend) {
        let mut sel = open(b);
        let (r, _w) = fd::pipe().unwrap();
        sel.register(r.as_raw_fd(), Interest::READABLE, Token(1)).unwrap();
        for timeout in [Duration::from_millis(30), Duration::from_micros(1500), Duration::from_nanos(1)] {
            let start = Instant::now();
            assert!(select_within(&mut *sel, Some(timeout)).is_empty());
            assert!(start.elapsed() >= timeout, "{timeout:?} returned after {:?}", start.elapsed());
        }
        // With nothing registered at all, too.
        let mut empty = open(b);
        let start = Instant::now();
        assert!(select_within(&mut *empty, Some(Duration::from_millis(30))).is_empty());
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    /// `select(None)` blocks until a notifier is notified from another thread, and returns the
    /// notifier's event, readable.
    fn blocking_select_returns_when_another_thread_notifies(b: Backend) {
        let mut sel = open(b);
        let (r, _w) = fd::pipe().unwrap();
        sel.register(r.as_raw_fd(), Interest::READABLE, Token(1)).unwrap();
        let notifier = sel.notifier(Token(99)).unwrap();
        let notified = Arc::new(AtomicBool::new(false));
        let waker = {
            let (notifier, notified) = (notifier.clone(), Arc::clone(&notified));
            thread::spawn(move || {
                // Not synchronization: a head start for the select to be blocked in the kernel.
                thread::sleep(Duration::from_millis(50));
                notified.store(true, Ordering::SeqCst);
                notifier.notify().unwrap();
            })
        };
        let events = select_within(&mut *sel, None);
        assert!(notified.load(Ordering::SeqCst), "select(None) returned before notify: {events:?}");
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(the_event_for(&events, Token(99)).is_readable());
        waker.join().unwrap();
    }

    /// Many notifies before a select make one event; it stays (level-triggered) until drained;
    /// after the drain a new notify makes a new event. Each notifier has its own token.
    fn notifier_wakes_coalesce_until_drained(b: Backend) {
        let mut sel = open(b);
        let notifier = sel.notifier(Token(7)).unwrap();
        let other = sel.notifier(Token(8)).unwrap();
        assert!(ready_now(&mut *sel).is_empty());

        let wakers: Vec<_> = (0..4)
            .map(|_| {
                let n = notifier.clone();
                thread::spawn(move || (0..250).for_each(|_| n.notify().unwrap()))
            })
            .collect();
        wakers.into_iter().for_each(|t| t.join().unwrap());
        for _ in 0..2 {
            let events = ready_now(&mut *sel);
            assert_eq!(events.len(), 1, "{events:?}");
            assert!(the_event_for(&events, Token(7)).is_readable());
        }

        notifier.drain().unwrap();
        assert!(ready_now(&mut *sel).is_empty(), "drained");
        notifier.drain().unwrap(); // nothing pending: still fine

        notifier.notify().unwrap();
        the_event_for(&ready_now(&mut *sel), Token(7));
        other.notify().unwrap();
        let events = ready_now(&mut *sel);
        assert_eq!(events.len(), 2, "{events:?}");
        the_event_for(&events, Token(8));
    }

    /// `syscalls()` counts: registering and selecting both make it grow.
    fn syscall_count_grows_with_register_and_select(b: Backend) {
        let mut sel = open(b);
        let (r, _w) = fd::pipe().unwrap();
        let start = sel.syscalls();
        sel.register(r.as_raw_fd(), Interest::READABLE, Token(1)).unwrap();
        let registered = sel.syscalls();
        for _ in 0..3 {
            ready_now(&mut *sel);
        }
        assert!(sel.syscalls() >= registered + 3, "{start} -> {registered} -> {}", sel.syscalls());
    }

    /// `registration()` answers with the interest and token, `len()` counts registrations (a
    /// notifier's fd among them), and `as_raw_fd` is the kernel object's fd where there is one.
    fn registration_and_len_describe_what_is_registered(b: Backend) {
        let mut sel = open(b);
        assert!(sel.is_empty());
        assert_eq!(sel.backend(), b);
        let (r, w) = fd::pipe().unwrap();
        sel.register(r.as_raw_fd(), Interest::READABLE, Token(10)).unwrap();
        sel.register(w.as_raw_fd(), Interest::WRITABLE, Token(11)).unwrap();
        assert_eq!(sel.len(), 2);
        let reg = sel.registration(w.as_raw_fd()).unwrap();
        assert_eq!((reg.interest, reg.token), (Interest::WRITABLE, Token(11)));

        let notifier = sel.notifier(Token(12)).unwrap();
        if let Some(fd) = notifier.fd() {
            assert_eq!(sel.len(), 3);
            assert_eq!(sel.registration(fd).map(|r| r.token), Some(Token(12)));
        }
        sel.unregister(r.as_raw_fd()).unwrap();
        assert_eq!(sel.registration(r.as_raw_fd()), None);
        assert_eq!(sel.len(), if notifier.fd().is_some() { 2 } else { 1 });
        assert_eq!(sel.as_raw_fd().is_some(), matches!(b, Backend::Epoll | Backend::Kqueue));
    }
}

thread_local! {
    /// How many `SIGUSR2`s this thread handled.
    static INTERRUPTIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

extern "C" fn count_interruption(_: libc::c_int) {
    INTERRUPTIONS.with(|n| n.set(n.get() + 1));
}

/// Installs (once, for the whole test process, and never removed, so that tests running in
/// parallel cannot restore the default, fatal, disposition under each other) a `SIGUSR2`
/// handler without `SA_RESTART`: a wait it interrupts fails with `EINTR`.
fn install_interrupting_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction is valid (no flags, empty mask); the handler is an
        // `extern "C" fn(c_int)` that only touches a const-initialised thread-local.
        let ret = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = count_interruption as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGUSR2, &action, std::ptr::null_mut())
        };
        assert_eq!(ret, 0, "sigaction: {}", io::Error::last_os_error());
    });
}

per_backend! {
    /// A signal whose handler returns does not end a wait early (PEP 475, Python's
    /// test_select_interrupt_noraise): the wait resumes with the time that remains, and
    /// reports nothing when nothing became ready.
    fn a_signal_during_select_neither_fails_it_nor_cuts_its_timeout_short(b: Backend) {
        install_interrupting_handler();
        let mut sel = open(b);
        let (r, _w) = fd::pipe().unwrap();
        sel.register(r.as_raw_fd(), Interest::READABLE, Token(1)).unwrap();
        // SAFETY: pthread_self takes nothing and cannot fail.
        let me = unsafe { libc::pthread_self() };
        let before = INTERRUPTIONS.with(std::cell::Cell::get);
        let interrupter = thread::spawn(move || {
            for _ in 0..5 {
                thread::sleep(Duration::from_millis(20));
                // SAFETY: `me` is the test's thread, alive until it joins this one.
                assert_eq!(unsafe { libc::pthread_kill(me, libc::SIGUSR2) }, 0);
            }
        });
        let timeout = Duration::from_millis(300);
        let start = Instant::now();
        let events = select_within(&mut *sel, Some(timeout));
        let waited = start.elapsed();
        interrupter.join().unwrap();
        assert!(events.is_empty(), "{events:?}");
        assert!(waited >= timeout, "returned after {waited:?}");
        // Handled by the time the sender's pthread_kill returned and this thread ran again.
        assert!(INTERRUPTIONS.with(std::cell::Cell::get) > before, "the signals arrived");
    }
}

// ---------------------------------------------------------------------------------------------
// Errors: every one leaves the selector as it was

/// What the selector says about every fd of `fds`, and its length: equal before and after a
/// failed call.
fn snapshot(sel: &dyn Selector, fds: &[RawFd]) -> (Vec<Option<(Interest, Token)>>, usize) {
    let regs = fds
        .iter()
        .map(|&fd| sel.registration(fd).map(|r| (r.interest, r.token)))
        .collect();
    (regs, sel.len())
}

per_backend! {
    /// Registering a registered fd is `AlreadyExists`, and the first registration stays.
    fn registering_twice_is_already_exists_and_keeps_the_first(b: Backend) {
        let mut sel = open(b);
        let (a, _peer) = fd::socketpair().unwrap();
        sel.register(a.as_raw_fd(), Interest::WRITABLE, Token(1)).unwrap();
        let before = snapshot(&*sel, &[a.as_raw_fd()]);
        let err = sel.register(a.as_raw_fd(), Interest::READABLE, Token(2)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
        assert_eq!(snapshot(&*sel, &[a.as_raw_fd()]), before);
        the_event_for(&ready_now(&mut *sel), Token(1));
    }

    /// Modifying or unregistering an fd that is not registered is `NotFound`.
    fn modifying_or_unregistering_an_unknown_fd_is_not_found(b: Backend) {
        let mut sel = open(b);
        let (a, peer) = fd::socketpair().unwrap();
        sel.register(peer.as_raw_fd(), Interest::READABLE, Token(1)).unwrap();
        let before = snapshot(&*sel, &[a.as_raw_fd(), peer.as_raw_fd()]);
        let err = sel.modify(a.as_raw_fd(), Interest::READABLE, Token(2)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert_eq!(sel.unregister(a.as_raw_fd()).unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(snapshot(&*sel, &[a.as_raw_fd(), peer.as_raw_fd()]), before);
        sel.unregister(peer.as_raw_fd()).unwrap();
        assert_eq!(sel.unregister(peer.as_raw_fd()).unwrap_err().kind(), ErrorKind::NotFound, "twice");
    }

    /// The empty interest is `InvalidInput` for `register` and `modify`; a failed `modify`
    /// leaves the old interest and token in force, events included.
    fn empty_interest_is_invalid_input_and_changes_nothing(b: Backend) {
        let mut sel = open(b);
        let (a, _peer) = fd::socketpair().unwrap();
        let (c, _peer2) = fd::socketpair().unwrap();
        let err = sel.register(c.as_raw_fd(), Interest::empty(), Token(1)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert_eq!(snapshot(&*sel, &[c.as_raw_fd()]), (vec![None], 0));

        sel.register(a.as_raw_fd(), Interest::WRITABLE, Token(2)).unwrap();
        let before = snapshot(&*sel, &[a.as_raw_fd()]);
        let err = sel.modify(a.as_raw_fd(), Interest::empty(), Token(3)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert_eq!(snapshot(&*sel, &[a.as_raw_fd()]), before);
        assert!(the_event_for(&ready_now(&mut *sel), Token(2)).is_writable());
    }

    /// A negative fd is `InvalidInput` for `register`, `modify` and `unregister` alike, as
    /// Python's selectors raise `ValueError` for it: no file has one, so it is the caller's
    /// mistake, not a closed file.
    fn negative_fd_is_invalid_input(b: Backend) {
        let mut sel = open(b);
        let err = sel.register(-1, Interest::READABLE, Token(1)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("-1"), "{err}");
        assert_eq!(sel.len(), 0);
        let err = sel.modify(-1, Interest::READABLE, Token(1)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert_eq!(sel.unregister(-1).unwrap_err().kind(), ErrorKind::InvalidInput);
    }

    /// `modify` to the interest already registered makes no system call (as Python's
    /// selectors skip the kernel then), and the new token is what events carry.
    fn modify_with_an_unchanged_interest_makes_no_system_call(b: Backend) {
        let mut sel = open(b);
        let (a, _peer) = fd::socketpair().unwrap();
        sel.register(a.as_raw_fd(), Interest::WRITABLE, Token(1)).unwrap();
        let before = sel.syscalls();
        sel.modify(a.as_raw_fd(), Interest::WRITABLE, Token(2)).unwrap();
        assert_eq!(sel.syscalls(), before, "no system call for an unchanged interest");
        let registration = sel.registration(a.as_raw_fd()).unwrap();
        assert_eq!((registration.interest, registration.token), (Interest::WRITABLE, Token(2)));
        the_event_for(&ready_now(&mut *sel), Token(2));
    }

    /// A regular file is where backends legitimately differ, because the kernels do: `select`
    /// and `poll` report it always ready, `epoll` refuses it with `EPERM` (and the selector is
    /// left as it was).
    fn regular_file_is_always_ready_or_refused_with_eperm_as_the_kernel_says(b: Backend) {
        let mut sel = open(b);
        let file = File::open(std::env::current_exe().unwrap()).expect("the test binary is a regular file");
        let result = sel.register(file.as_raw_fd(), Interest::READABLE, Token(1));
        match b {
            Backend::Epoll => {
                assert_eq!(result.unwrap_err().raw_os_error(), Some(libc::EPERM));
                assert_eq!(snapshot(&*sel, &[file.as_raw_fd()]), (vec![None], 0));
            }
            _ => {
                result.unwrap();
                for _ in 0..2 {
                    assert!(the_event_for(&ready_now(&mut *sel), Token(1)).is_readable());
                }
            }
        }
    }

    /// An fd at or above `FD_SETSIZE` is refused by `select` with `InvalidInput` (its bitmaps
    /// cannot hold it; the selector is left as it was) and works on every other backend.
    fn fd_at_or_above_fd_setsize_is_refused_by_select_only(b: Backend) {
        let limit = fd::raise_nofile_limit(FD_SETSIZE as u64 + 64).unwrap();
        if limit < FD_SETSIZE as u64 + 64 {
            println!("skipped: RLIMIT_NOFILE is {limit} and cannot be raised past FD_SETSIZE");
            return;
        }
        let mut sel = open(b);
        let (low, peer) = fd::socketpair().unwrap();
        let high = dup_at_least(low.as_raw_fd(), FD_SETSIZE as RawFd);
        assert!(high.as_raw_fd() as usize >= FD_SETSIZE);
        let result = sel.register(high.as_raw_fd(), Interest::READABLE, Token(1));
        if b == Backend::Select {
            let err = result.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
            assert!(err.to_string().contains(&high.as_raw_fd().to_string()), "the message names the fd: {err}");
            assert_eq!(snapshot(&*sel, &[high.as_raw_fd()]), (vec![None], 0));
            assert!(ready_now(&mut *sel).is_empty());
        } else {
            result.unwrap();
            assert!(ready_now(&mut *sel).is_empty());
            send(&peer, b"high");
            assert!(the_event_for(&ready_now(&mut *sel), Token(1)).is_readable());
        }
    }

    /// `unregister` of an fd closed since it was registered succeeds and forgets it.
    fn unregister_of_an_fd_closed_after_registering_succeeds_and_forgets_it(b: Backend) {
        let mut sel = open(b);
        let (a, peer) = fd::socketpair().unwrap();
        let raw = a.as_raw_fd();
        sel.register(raw, Interest::READABLE, Token(1)).unwrap();
        sel.register(peer.as_raw_fd(), Interest::WRITABLE, Token(2)).unwrap();
        drop(a);
        sel.unregister(raw).unwrap();
        assert_eq!(sel.len(), 1);
        assert_eq!(sel.registration(raw), None);
        assert_eq!(sel.unregister(raw).unwrap_err().kind(), ErrorKind::NotFound);
    }
}

per_backend! {
    /// A closed fd is the kernel's `EBADF`, and leaves the selector as it was.
    exclusive fn closed_fd_is_ebadf(b: Backend) {
        let mut sel = open(b);
        let closed = a_closed_fd();
        let err = sel.register(closed, Interest::READABLE, Token(1)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
        assert_eq!(snapshot(&*sel, &[closed]), (vec![None], 0));
    }

    /// A registered fd that is closed (without unregistering) never makes `select` fail or spin:
    /// a select with a timeout reports nothing for it and waits the whole timeout, every time,
    /// and the other registrations keep working. The registration itself stays until
    /// `unregister`, which then succeeds (as it does without a select in between), and
    /// `modify` gets the kernel's `EBADF`, on every backend alike.
    exclusive fn closed_registered_fd_never_makes_select_fail_or_spin(b: Backend) {
        let mut sel = open(b);
        let (r, w) = fd::pipe().unwrap();
        let (live, live_peer) = fd::socketpair().unwrap();
        let closed = r.as_raw_fd();
        sel.register(closed, Interest::READABLE, Token(1)).unwrap();
        sel.register(live.as_raw_fd(), Interest::READABLE, Token(2)).unwrap();
        send(&w, b"ready, then closed");
        drop((r, w));

        let timeout = Duration::from_millis(30);
        for _ in 0..3 {
            let start = Instant::now();
            let events = select_within(&mut *sel, Some(timeout));
            assert!(events.is_empty(), "{events:?}");
            assert!(start.elapsed() >= timeout, "returned after {:?}: spinning", start.elapsed());
        }
        send(&live_peer, b"still watched");
        let events = ready_now(&mut *sel);
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(the_event_for(&events, Token(2)).is_readable());

        let before = snapshot(&*sel, &[closed, live.as_raw_fd()]);
        let err = sel.modify(closed, Interest::BOTH, Token(3)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
        assert_eq!(snapshot(&*sel, &[closed, live.as_raw_fd()]), before);
        assert!(ready_now(&mut *sel).len() == 1, "the failed modify watches nothing new");
        sel.unregister(closed).expect("unregister of a closed fd succeeds, after selects too");
        assert_eq!(sel.len(), 1);
        assert_eq!(sel.registration(closed), None);
    }

    /// `unregister` succeeds after the fd was closed and its number given to another file
    /// (Python's test_unregister_after_fd_close_and_reuse), forgets it, and the number can be
    /// registered anew.
    exclusive fn unregister_after_the_fd_was_closed_and_its_number_reused_succeeds(b: Backend) {
        let mut sel = open(b);
        let (rd, wr) = fd::socketpair().unwrap();
        let (r, w) = (rd.as_raw_fd(), wr.as_raw_fd());
        sel.register(r, Interest::READABLE, Token(1)).unwrap();
        sel.register(w, Interest::WRITABLE, Token(2)).unwrap();
        assert_eq!(ready_now(&mut *sel).len(), 1, "the writer is ready");
        let (rd2, wr2) = fd::socketpair().unwrap();
        drop((rd, wr));
        // SAFETY: `r` and `w` are closed (and no other test runs meanwhile); each dup2 makes a
        // new fd of that number, owned from here on.
        let reused = unsafe {
            assert_eq!(libc::dup2(rd2.as_raw_fd(), r), r);
            assert_eq!(libc::dup2(wr2.as_raw_fd(), w), w);
            (OwnedFd::from_raw_fd(r), OwnedFd::from_raw_fd(w))
        };
        sel.unregister(r).unwrap();
        sel.unregister(w).unwrap();
        assert_eq!(sel.len(), 0);
        assert!(ready_now(&mut *sel).is_empty());
        sel.register(w, Interest::WRITABLE, Token(3)).unwrap();
        the_event_for(&ready_now(&mut *sel), Token(3));
        sel.unregister(w).unwrap();
        drop(reused);
    }

    /// Many fds: 5,000 socketpairs on one selector, every one reported when ready and none when
    /// not. `select(2)` cannot hold fds past `FD_SETSIZE`; see
    /// `fd_at_or_above_fd_setsize_is_refused_by_select_only`.
    exclusive fn five_thousand_socketpairs_are_all_watched(b: Backend) {
        const PAIRS: usize = 5_000;
        if b == Backend::Select {
            println!("skipped: select(2) holds only fds below FD_SETSIZE ({FD_SETSIZE})");
            return;
        }
        let wanted = (2 * PAIRS + open_fd_count() + 256) as u64;
        let limit = fd::raise_nofile_limit(wanted).unwrap();
        if limit < wanted {
            println!("skipped: RLIMIT_NOFILE is {limit} and cannot be raised to {wanted}");
            return;
        }
        let mut sel = open(b);
        let pairs: Vec<(OwnedFd, OwnedFd)> = (0..PAIRS).map(|_| fd::socketpair().unwrap()).collect();
        for (i, (a, _)) in pairs.iter().enumerate() {
            sel.register(a.as_raw_fd(), Interest::READABLE, Token(i)).unwrap();
        }
        assert_eq!(sel.len(), PAIRS);
        assert!(ready_now(&mut *sel).is_empty());

        let written: Vec<usize> = (0..PAIRS).filter(|i| i % 7 == 3).collect();
        for &i in &written {
            send(&pairs[i].1, b"!");
        }
        let mut seen: Vec<usize> = ready_now(&mut *sel).iter().map(|e| e.token().0).collect();
        seen.sort_unstable();
        assert_eq!(seen, written);

        for (i, (a, _)) in pairs.iter().enumerate() {
            sel.modify(a.as_raw_fd(), Interest::BOTH, Token(i)).unwrap();
        }
        let events = ready_now(&mut *sel);
        assert_eq!(events.len(), PAIRS, "every end is writable, in one select");
        assert_eq!(events.iter().filter(|e| e.is_readable()).count(), written.len());

        for &i in &written {
            drain(&pairs[i].0);
        }
        for (a, _) in &pairs {
            sel.modify(a.as_raw_fd(), Interest::READABLE, Token(0)).unwrap();
        }
        assert!(ready_now(&mut *sel).is_empty());
    }

    /// Dropping a selector, or a notifier with the last of its clones, closes its fds.
    exclusive fn dropping_selectors_and_notifiers_releases_their_fds(b: Backend) {
        const N: usize = 200;
        let before = open_fd_count();
        let mut selectors = Vec::new();
        let mut notifiers = Vec::new();
        for i in 0..N {
            let mut sel = open(b);
            notifiers.push(sel.notifier(Token(i)).unwrap());
            selectors.push(sel);
        }
        let fds_per_pair = usize::from(selectors[0].as_raw_fd().is_some()) + usize::from(notifiers[0].fd().is_some());
        assert!(open_fd_count() >= before + N * fds_per_pair, "the count sees new fds");
        drop(selectors);
        drop(notifiers);
        assert_eq!(open_fd_count(), before);
    }
}

// ---------------------------------------------------------------------------------------------
// Choosing a backend

#[test]
fn backend_names_parse_case_insensitively_and_unknown_ones_are_invalid_input() {
    for &b in Backend::all() {
        assert_eq!(b.name().parse::<Backend>().unwrap(), b);
        assert_eq!(b.name().to_uppercase().parse::<Backend>().unwrap(), b);
        assert_eq!(b.to_string(), b.name());
    }
    for bad in ["", "iocp", "epol", "poll,select"] {
        assert_eq!(
            bad.parse::<Backend>().unwrap_err().kind(),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
    }
    assert!(Backend::best().is_available());
    for &b in Backend::all() {
        match b.open() {
            Ok(sel) => assert!(b.is_available() && sel.backend() == b),
            Err(e) => assert!(
                !b.is_available() && e.kind() == ErrorKind::Unsupported,
                "{b}: {e}"
            ),
        }
    }
}

/// Run by `from_env_honours_tulip_backend` in a child process, whose environment is its own.
#[test]
#[ignore = "run in a child process by from_env_honours_tulip_backend"]
fn from_env_child() {
    match Backend::from_env() {
        Ok(b) => println!("from_env=Ok({b})"),
        Err(e) => println!("from_env=Err({:?})", e.kind()),
    }
}

#[test]
fn from_env_honours_tulip_backend() {
    let _fds = shared_fd_table();
    let unavailable = Backend::all().iter().find(|b| !b.is_available());
    let mut cases = vec![
        (None, format!("Ok({})", Backend::best())),
        (Some(""), format!("Ok({})", Backend::best())),
        (Some("POLL"), "Ok(poll)".to_string()),
        (Some("select"), "Ok(select)".to_string()),
        (Some("iocp"), "Err(InvalidInput)".to_string()),
    ];
    if let Some(b) = unavailable {
        cases.push((Some(b.name()), "Err(Unsupported)".to_string()));
    }
    if Backend::Uring.is_available() {
        cases.push((Some("uring"), "Ok(uring)".to_string()));
    }
    for (value, expected) in cases {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child.args([
            "--exact",
            "from_env_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ]);
        match value {
            Some(v) => child.env(tulip::selectors::BACKEND_ENV, v),
            None => child.env_remove(tulip::selectors::BACKEND_ENV),
        };
        let out = child.output().expect("the test binary runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(
            stdout.contains(&format!("from_env={expected}")),
            "TULIP_BACKEND={value:?}: {stdout}"
        );
    }
}
