//! Protocols and transports (`create_server`, `create_connection`, `Transport`), on every
//! backend, over loopback: the order of the callbacks, half-close, empty writes, close flushing
//! and abort discarding (and either called again), resets, flow control against a client that
//! does not read, pausing reading (twice), panicking protocols (in each kind of callback),
//! closing the server and the loop, running out of fds, Unix sockets, and what an idle
//! connection costs.
//!
//! Servers are probes ([`Probe`]) that record what they see; clients are tulip streams or
//! protocols on the same loop, so nothing depends on another thread's timing. Nothing asserts
//! a duration: [`TIMEOUT`] only turns a hang into a failure. Lowering the fd limit happens in
//! a child process (the test runs its own binary again: `support/child.rs`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::io::{self, ErrorKind};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tulip::net::{ListenOptions, TcpStream, ACCEPT_RETRY_DELAY};
use tulip::selectors::{fd, Backend};
use tulip::{get_running_loop, EventLoop, Protocol, Server, Transport};

#[macro_use]
#[path = "support/per_backend.rs"]
mod per_backend;

#[path = "support/child.rs"]
mod child;
use child::*;

#[path = "support/echo.rs"]
mod echo;

#[path = "support/reset.rs"]
mod reset;
use echo::read_to_end;
use reset::reset;

#[path = "support/loop_test.rs"]
mod loop_test;
use loop_test::*;

/// The default high-water mark of a transport's write buffer.
const HIGH_WATER: usize = 64 * 1024;

/// The most one `data_received` delivers: the size of the shared read buffer.
const READ_SIZE: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Counting this thread's live heap bytes, for what an idle connection costs.

struct CountingAllocator;

thread_local! {
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = LIVE_BYTES.try_with(|n| n.set(n.get() + delta));
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only a
// const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: the caller's contract for `alloc` is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: the caller's contract for `alloc_zeroed` is passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: the caller's contract for `dealloc` is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: the caller's contract for `realloc` is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Heap bytes allocated by this thread and not freed (by it) since it started.
fn live_bytes() -> isize {
    LIVE_BYTES.with(Cell::get)
}

// ---------------------------------------------------------------------------------------------
// Running a test on a loop.

/// Let the loop run for a while (for "nothing happens" checks: a broken transport would act
/// within it, a correct one never does).
async fn settle() -> io::Result<()> {
    tulip::sleep(Duration::from_millis(20)).await
}

/// `len` bytes of a pattern whose period (251) is prime to every buffer size, so that a lost,
/// repeated or reordered chunk shows.
fn pattern(len: usize) -> Vec<u8> {
    pattern_at(0, len)
}

/// `len` bytes of the [`pattern`], from byte `offset` on.
fn pattern_at(offset: usize, len: usize) -> Vec<u8> {
    (offset..offset + len).map(|i| (i % 251) as u8).collect()
}

/// Write the [`pattern`] in `chunk`s, letting the loop run after each, until the kernel takes
/// no more and the transport starts buffering (the peer is not reading); returns how many
/// bytes were written.
async fn write_until_buffered(transport: &Transport, chunk: usize) -> io::Result<usize> {
    let mut written = 0;
    while transport.get_write_buffer_size() == 0 {
        transport.write(&pattern_at(written, chunk))?;
        written += chunk;
        settle().await?;
    }
    Ok(written)
}

// ---------------------------------------------------------------------------------------------
// The probe protocol.

/// What a [`Probe`] saw, shared with the test.
#[derive(Default)]
struct Seen {
    /// "made", "data" (consecutive calls as one), "eof", "pause", "resume", "lost" or
    /// "lost: <ErrorKind>".
    events: RefCell<Vec<String>>,
    data: RefCell<Vec<u8>>,
    transport: RefCell<Option<Transport>>,
    /// The largest write buffer seen after an echo.
    max_buffered: Cell<usize>,
}

impl Seen {
    fn push(&self, event: impl Into<String>) {
        self.events.borrow_mut().push(event.into());
    }

    fn events(&self) -> Vec<String> {
        self.events.borrow().clone()
    }

    fn has(&self, event: &str) -> bool {
        self.events.borrow().iter().any(|e| e == event)
    }

    fn count(&self, event: &str) -> usize {
        self.events.borrow().iter().filter(|e| *e == event).count()
    }

    fn lost(&self) -> bool {
        self.events.borrow().iter().any(|e| e.starts_with("lost"))
    }

    fn received(&self) -> usize {
        self.data.borrow().len()
    }

    fn transport(&self) -> Transport {
        self.transport
            .borrow()
            .clone()
            .expect("connection_made gave the probe its transport")
    }
}

/// How a [`Probe`] acts.
#[derive(Clone, Default)]
struct Behaviour {
    /// Write back what it receives.
    echo: bool,
    /// What `eof_received` returns.
    keep_open: bool,
    /// Pause reading in `pause_writing`, resume it in `resume_writing` (what an echo server
    /// should do).
    throttle: bool,
    /// Panic on receiving exactly these bytes.
    panic_on: Option<&'static [u8]>,
    /// Pause reading in `connection_made`.
    pause_at_start: bool,
    /// Panic in this callback ("connection_made", "eof_received" or "pause_writing").
    panic_in: Option<&'static str>,
}

/// A protocol that records everything in its [`Seen`] and acts by its [`Behaviour`].
struct Probe {
    seen: Rc<Seen>,
    behaviour: Behaviour,
    /// Counts the probe's drop, for the tests that free everything.
    _alive: Option<Rc<()>>,
}

impl Probe {
    fn new(seen: Rc<Seen>, behaviour: Behaviour) -> Probe {
        Probe {
            seen,
            behaviour,
            _alive: None,
        }
    }
}

impl Protocol for Probe {
    fn connection_made(&mut self, transport: Transport) {
        assert!(
            self.seen.events.borrow().is_empty(),
            "connection_made comes first"
        );
        self.seen.push("made");
        *self.seen.transport.borrow_mut() = Some(transport);
        if self.behaviour.pause_at_start {
            self.seen.transport().pause_reading();
        }
        if self.behaviour.panic_in == Some("connection_made") {
            panic!("the probe was told to panic in connection_made");
        }
    }

    fn data_received(&mut self, data: &[u8]) {
        assert!(
            !data.is_empty(),
            "data_received is never called with nothing"
        );
        if self.seen.events.borrow().last().map(String::as_str) != Some("data") {
            self.seen.push("data");
        }
        self.seen.data.borrow_mut().extend_from_slice(data);
        if self.behaviour.panic_on == Some(data) {
            panic!(
                "the probe was told to panic on {:?}",
                String::from_utf8_lossy(data)
            );
        }
        if self.behaviour.echo {
            let transport = self.seen.transport();
            transport
                .write(data)
                .expect("data_received comes while the transport takes writes");
            let buffered = transport.get_write_buffer_size();
            self.seen
                .max_buffered
                .set(self.seen.max_buffered.get().max(buffered));
        }
    }

    fn eof_received(&mut self) -> bool {
        self.seen.push("eof");
        if self.behaviour.panic_in == Some("eof_received") {
            panic!("the probe was told to panic in eof_received");
        }
        self.behaviour.keep_open
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        assert!(!self.seen.lost(), "connection_lost comes once");
        match error {
            None => self.seen.push("lost"),
            Some(e) => self.seen.push(format!("lost: {:?}", e.kind())),
        }
    }

    fn pause_writing(&mut self) {
        self.seen.push("pause");
        if self.behaviour.panic_in == Some("pause_writing") {
            panic!("the probe was told to panic in pause_writing");
        }
        if self.behaviour.throttle {
            self.seen.transport().pause_reading();
        }
    }

    fn resume_writing(&mut self) {
        self.seen.push("resume");
        if self.behaviour.throttle {
            self.seen.transport().resume_reading();
        }
    }
}

/// Connect to `addr`, write "question", shut down the writing side, and wait until the
/// server's first connection has its `eof_received`: the client and that connection's probe.
async fn half_closed_by_its_client(
    addr: SocketAddr,
    accepted: &Accepted,
) -> io::Result<(TcpStream, Rc<Seen>)> {
    let client = TcpStream::connect(addr).await?;
    client.write_all(b"question").await?;
    client.shutdown(Shutdown::Write)?;
    let served = nth(accepted, 0).await?;
    eventually(|| served.has("eof")).await?;
    Ok((client, served))
}

/// The probes of a server's connections, in the order they were made.
type Accepted = Rc<RefCell<Vec<Rc<Seen>>>>;

/// A factory of probes acting by `behaviour`, and the list it puts them in.
fn probe_factory(behaviour: Behaviour) -> (impl FnMut() -> Probe + 'static, Accepted) {
    let accepted = Accepted::default();
    let list = accepted.clone();
    let factory = move || {
        let seen = Rc::new(Seen::default());
        list.borrow_mut().push(seen.clone());
        Probe::new(seen, behaviour.clone())
    };
    (factory, accepted)
}

/// A server on a loopback port whose connections are probes acting by `behaviour`.
fn probe_server(lp: &EventLoop, behaviour: Behaviour) -> (Server, SocketAddr, Accepted) {
    let (factory, accepted) = probe_factory(behaviour);
    let server = lp
        .create_server(factory, "127.0.0.1:0")
        .expect("a loopback server");
    let addr = server.local_addr().expect("its address");
    (server, addr, accepted)
}

/// A path in the temporary directory for test `what`'s Unix server on backend `b`, with
/// nothing there.
fn socket_path(what: &str, b: Backend) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "tulip-transport-{}-{what}-{b}.sock",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

/// A server on the Unix socket `path` whose connections are probes acting by `behaviour`.
fn unix_probe_server(lp: &EventLoop, behaviour: Behaviour, path: &Path) -> (Server, Accepted) {
    let (factory, accepted) = probe_factory(behaviour);
    let server = lp.create_unix_server(factory, path).expect("a Unix server");
    (server, accepted)
}

/// The probe of the server's `i`-th connection, once it is made.
async fn nth(accepted: &Accepted, i: usize) -> io::Result<Rc<Seen>> {
    eventually(|| accepted.borrow().len() > i).await?;
    let seen = accepted.borrow()[i].clone();
    Ok(seen)
}

/// Send `message` on `stream` and read it back (from an echo server).
async fn round_trip(stream: &TcpStream, message: &[u8]) -> io::Result<()> {
    stream.write_all(message).await?;
    let mut back = vec![0; message.len()];
    stream.read_exact(&mut back).await?;
    assert_eq!(back, message, "the echo");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Fds, child processes.

/// How many fds this process has open (the directory listing's own included, every time).
#[cfg(target_os = "linux")]
fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd lists this process's fds")
        .count()
}

/// Connections wait in the backlog while the process has no fd left: the server reports each
/// `EMFILE` to the exception handler, rests between tries instead of spinning, and serves
/// them once fds are freed.
fn emfile_scenario(b: Backend) {
    const CLIENTS: usize = 3;
    let lp = new_loop(b);
    let reports = Rc::new(RefCell::new(Vec::<(String, String)>::new()));
    let sink = reports.clone();
    lp.set_exception_handler(move |_, context| {
        let message = context.message().unwrap_or_default().to_string();
        sink.borrow_mut()
            .push((context.callback().to_string(), message));
    });
    let echo = Behaviour {
        echo: true,
        ..Behaviour::default()
    };
    let (server, addr, accepted) = probe_server(&lp, echo);
    let clients: Vec<std::net::TcpStream> = (0..CLIENTS)
        .map(|_| std::net::TcpStream::connect(addr).expect("a connection in the backlog"))
        .collect();
    // A soft limit a little above the fds in use (this is a child: it stays lowered), then
    // every fd left taken.
    let (_, hard) = fd::nofile_limit().expect("RLIMIT_NOFILE");
    let lowest_free = std::fs::File::open("/dev/null")
        .expect("/dev/null")
        .as_raw_fd();
    fd::set_nofile_limit(lowest_free as u64 + 16, hard).expect("a lower soft limit");
    let mut hoard = Vec::new();
    let exhausted = loop {
        match std::fs::File::open("/dev/null") {
            Ok(file) => hoard.push(file),
            Err(e) => break e,
        }
    };
    assert_eq!(exhausted.raw_os_error(), Some(libc::EMFILE), "{exhausted}");

    run_test(&lp, async move {
        let start = Instant::now();
        eventually(|| reports.borrow().len() >= 3).await?;
        let elapsed = start.elapsed();
        let errors = reports.borrow().len() as u128;
        for (callback, message) in reports.borrow().iter() {
            assert_eq!(callback, &format!("the server on {addr}"));
            assert!(
                message.starts_with("socket.accept() out of system resource"),
                "{message}"
            );
        }
        assert!(accepted.borrow().is_empty());
        assert!(server.is_serving(), "the server goes on");
        // Not spinning: a try at most once per ACCEPT_RETRY_DELAY (a spinning server fails
        // thousands of times in that time).
        let most = elapsed.as_nanos() / ACCEPT_RETRY_DELAY.as_nanos() + 2;
        assert!(
            errors <= most,
            "{errors} EMFILEs in {elapsed:?}: no rest between tries"
        );

        drop(hoard);
        eventually(|| accepted.borrow().len() == CLIENTS).await?;
        for (i, client) in clients.into_iter().enumerate() {
            let client = TcpStream::from_std(client)?;
            round_trip(
                &client,
                format!("client {i}, served after EMFILE").as_bytes(),
            )
            .await?;
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// The tests.

per_backend! {
    /// `create_server_with`'s backlog reaches the kernel: with a backlog of 1,000 and the loop
    /// not running yet (nothing accepted), a burst of clients all complete their handshake at
    /// once (under std's fixed backlog of 128 the rest waited for SYN retransmits), and the
    /// server then accepts every one.
    exclusive fn a_server_with_a_backlog_of_1000_takes_a_burst_of_handshakes_before_accepting(b: Backend) {
        // On select the accepted fds must stay under FD_SETSIZE; 400 is still past 128.
        let burst = if b == Backend::Select { 400 } else { 1000 };
        fd::raise_nofile_limit(4096).expect("RLIMIT_NOFILE raised");
        let lp = new_loop(b);
        let (factory, accepted) = probe_factory(Behaviour::default());
        let options = ListenOptions { backlog: 1000, ..ListenOptions::default() };
        let server = lp.create_server_with(factory, "127.0.0.1:0", options).unwrap();
        let addr = server.local_addr().unwrap();
        let clients: Vec<std::net::TcpStream> = (0..burst)
            .map(|i| {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))
                    .unwrap_or_else(|e| panic!("client {i} of {burst} not queued: {e}"))
            })
            .collect();
        run_test(&lp, async move {
            eventually(|| accepted.borrow().len() == burst).await?;
            drop(clients);
            Ok(())
        });
    }

    /// A client protocol's writes reach an echo server and come back whole and in order; the
    /// client's transport knows both addresses, `create_connection` returns after
    /// `connection_made`, and closing it ends both sides cleanly.
    fn a_client_protocol_hears_its_bytes_back_from_an_echo_server(b: Backend) {
        let lp = new_loop(b);
        let echo = Behaviour { echo: true, ..Behaviour::default() };
        let (server, addr, accepted) = probe_server(&lp, echo);
        run_test(&lp, async move {
            let lp = get_running_loop()?;
            let seen = Rc::new(Seen::default());
            let probe = Probe::new(seen.clone(), Behaviour::default());
            let (transport, protocol) = lp.create_connection(move || probe, addr).await?;
            assert_eq!(seen.events(), ["made"], "connection_made before it returns");
            assert!(Rc::ptr_eq(&protocol.borrow().seen, &seen));
            assert_eq!(transport.peer_addr(), Some(addr));
            assert!(transport.local_addr().is_some_and(|a| a.ip().is_loopback()));
            assert_eq!(transport.peername().and_then(|a| a.as_inet()), Some(addr));
            assert_eq!(transport.sockname().and_then(|a| a.as_inet()), transport.local_addr());
            assert!(transport.can_write_eof() && transport.is_reading() && !transport.is_closing());

            let message = pattern(300_000);
            transport.write(&message[..100_000])?;
            transport.write(&message[100_000..])?;
            eventually(|| seen.received() == message.len()).await?;
            assert!(*seen.data.borrow() == message, "the echo, whole and in order");

            transport.close();
            assert!(transport.is_closing() && !transport.is_reading());
            eventually(|| seen.lost()).await?;
            assert_eq!(seen.events(), ["made", "data", "lost"]);
            let served = nth(&accepted, 0).await?;
            eventually(|| served.lost()).await?;
            assert_eq!(served.events(), ["made", "data", "eof", "lost"]);
            assert!(transport.is_closing(), "a transport whose connection is gone");
            assert_eq!(transport.peer_addr(), None);
            drop(server);
            Ok(())
        });
    }

    /// A task that keeps the protocol of `create_connection` borrowed across an await delays
    /// its callbacks, without spinning the loop meanwhile; they come once it lets go.
    fn a_protocol_borrowed_across_an_await_delays_callbacks_without_spinning(b: Backend) {
        let lp = new_loop(b);
        let echo = Behaviour { echo: true, ..Behaviour::default() };
        let (_server, addr, _accepted) = probe_server(&lp, echo);
        run_test(&lp, async move {
            let lp = get_running_loop()?;
            let seen = Rc::new(Seen::default());
            let probe = Probe::new(seen.clone(), Behaviour::default());
            let (transport, protocol) = lp.create_connection(move || probe, addr).await?;
            transport.write(b"echo me")?;
            let iterations = hold_across_a_sleep(&protocol, || seen.received()).await?;
            // A look every millisecond is about a hundred iterations; a spin, many thousands.
            assert!(iterations < 1_000, "{iterations} iterations in 100 ms");
            eventually(|| seen.received() == 7).await?;
            transport.close();
            Ok(())
        });
    }

    /// A peer that sends and ends its stream: `connection_made`, `data_received`,
    /// `eof_received`, `connection_lost(None)`, in that order and each once; the transport
    /// then closes itself (`eof_received` returned false), so the peer reads its end of stream.
    fn callbacks_come_in_order_and_the_end_of_stream_closes_by_default(b: Backend) {
        let lp = new_loop(b);
        let (_server, addr, accepted) = probe_server(&lp, Behaviour::default());
        run_test(&lp, async move {
            let client = TcpStream::connect(addr).await?;
            client.write_all(b"abc").await?;
            client.shutdown(Shutdown::Write)?;
            assert_eq!(read_to_end(&client).await?, b"", "the server closed, sending nothing");
            let served = nth(&accepted, 0).await?;
            eventually(|| served.lost()).await?;
            assert_eq!(served.events(), ["made", "data", "eof", "lost"]);
            assert_eq!(*served.data.borrow(), b"abc");
            Ok(())
        });
    }

    /// `eof_received` returning true keeps the connection half-open: the transport still
    /// writes, the peer reads no end of stream until `write_eof`, and the connection ends
    /// only at `close`.
    fn eof_received_returning_true_keeps_writing_until_write_eof(b: Backend) {
        let lp = new_loop(b);
        let half_open = Behaviour { keep_open: true, ..Behaviour::default() };
        let (_server, addr, accepted) = probe_server(&lp, half_open);
        run_test(&lp, async move {
            let (client, served) = half_closed_by_its_client(addr, &accepted).await?;
            let transport = served.transport();
            assert!(!transport.is_closing());

            transport.write(b"answer")?;
            let mut answer = [0; 6];
            client.read_exact(&mut answer).await?;
            assert_eq!(&answer, b"answer");
            settle().await?;
            let mut more = [0; 16];
            let pending = client.try_read(&mut more).unwrap_err();
            assert_eq!(pending.kind(), ErrorKind::WouldBlock, "no end of stream before write_eof");

            transport.write_eof();
            assert_eq!(read_to_end(&client).await?, b"", "the end of stream, and nothing after it");
            settle().await?;
            assert!(!served.lost(), "both ends of stream, and still open until close");
            transport.close();
            eventually(|| served.lost()).await?;
            assert_eq!(served.events(), ["made", "data", "eof", "lost"]);
            Ok(())
        });
    }

    /// `write` after `write_eof` is refused, as asyncio raises `RuntimeError('Cannot call
    /// write() after write_eof()')`: `BrokenPipe`, saying so, and nothing is sent (an empty
    /// write alike); the peer reads what came before and the end of stream. Reading goes on.
    fn a_write_after_write_eof_is_refused_and_sends_nothing(b: Backend) {
        let lp = new_loop(b);
        let (_server, addr, accepted) = probe_server(&lp, Behaviour::default());
        run_test(&lp, async move {
            let client = TcpStream::connect(addr).await?;
            let served = nth(&accepted, 0).await?;
            let transport = served.transport();
            transport.write(b"last words")?;
            transport.write_eof();
            for data in [&b"too late"[..], b""] {
                let refused = transport.write(data).unwrap_err();
                assert_eq!(refused.kind(), ErrorKind::BrokenPipe, "{refused}");
                assert!(refused.to_string().contains("after write_eof()"), "{refused}");
            }
            assert_eq!(read_to_end(&client).await?, b"last words", "nothing after the end");

            assert!(transport.is_reading() && !transport.is_closing(), "half-closed, reading");
            client.write_all(b"still heard").await?;
            eventually(|| served.received() == 11).await?;
            assert!(transport.write(b"still too late").is_err());
            transport.close();
            eventually(|| served.lost()).await?;
            assert_eq!(served.events(), ["made", "data", "lost"]);
            Ok(())
        });
    }

    /// Once a transport takes no more writes, `write` says so (`BrokenPipe`, with the reason)
    /// and sends nothing, where asyncio drops them without raising: after `close`, also while
    /// the buffer is still flushing (asyncio would still send those), after `abort`, and once
    /// the connection is gone.
    fn writes_after_close_abort_or_the_end_are_refused_not_dropped(b: Backend) {
        const CHUNK: usize = 1 << 20;
        let lp = new_loop(b);
        let (_server, addr, accepted) = probe_server(&lp, Behaviour::default());
        let refusal = |transport: &Transport, why: &str| {
            let refused = transport.write(b"refused").unwrap_err();
            assert_eq!(refused.kind(), ErrorKind::BrokenPipe, "{refused}");
            assert!(refused.to_string().contains(why), "{refused}: not {why:?}");
            let empty = transport.write(b"").unwrap_err();
            assert_eq!(empty.kind(), ErrorKind::BrokenPipe, "{empty}");
        };
        run_test(&lp, async move {
            // Closing, with megabytes still to flush to a client that does not read yet.
            let client = TcpStream::connect(addr).await?;
            let served = nth(&accepted, 0).await?;
            let transport = served.transport();
            let written = write_until_buffered(&transport, CHUNK).await?;
            transport.close();
            refusal(&transport, "closing");
            let received = read_to_end(&client).await?;
            assert_eq!(received.len(), written, "what was written before close, nothing more");
            assert!(received == pattern(written), "in order");
            eventually(|| served.lost()).await?;
            refusal(&transport, "gone");

            // Aborted.
            let _client = TcpStream::connect(addr).await?;
            let served = nth(&accepted, 1).await?;
            let transport = served.transport();
            transport.abort();
            refusal(&transport, "aborted");
            eventually(|| served.lost()).await?;
            Ok(())
        });
    }

    /// `is_reading` is asyncio's `not is_closing() and not _paused`: after the peer's end of
    /// stream kept open by `eof_received`, it stays true (nothing more can come, yet asyncio
    /// says so); `pause_reading` makes it false and `resume_reading` true again, without a
    /// second `eof_received`; `close` makes it false.
    fn is_reading_after_an_end_of_stream_kept_open_follows_asyncio(b: Backend) {
        let lp = new_loop(b);
        let half_open = Behaviour { keep_open: true, ..Behaviour::default() };
        let (_server, addr, accepted) = probe_server(&lp, half_open);
        run_test(&lp, async move {
            let (client, served) = half_closed_by_its_client(addr, &accepted).await?;
            let transport = served.transport();
            assert!(transport.is_reading(), "not closing, not paused");
            assert!(!transport.is_closing());

            transport.pause_reading();
            assert!(!transport.is_reading(), "paused");
            transport.resume_reading();
            assert!(transport.is_reading(), "resumed");
            settle().await?;
            assert_eq!(served.events(), ["made", "data", "eof"], "eof_received once");

            transport.close();
            assert!(!transport.is_reading() && transport.is_closing());
            eventually(|| served.lost()).await?;
            assert!(!transport.is_reading());
            drop(client);
            Ok(())
        });
    }

    /// The close removes the server's own socket file (asyncio 3.13's `cleanup_socket`), but
    /// not a file that took its place meanwhile; a file already at the path, even a stale
    /// socket, is `AddrInUse` and stays (see the README: it may be another process's socket).
    fn a_unix_server_removes_its_own_socket_file_at_close_and_nothing_else(b: Backend) {
        let lp = new_loop(b);
        let path = socket_path("cleanup", b);
        let (server, accepted) = unix_probe_server(&lp, Behaviour::default(), &path);
        let target = path.clone();
        run_test(&lp, async move {
            let lp = get_running_loop()?;
            let probe = Probe::new(Rc::default(), Behaviour::default());
            let (client, _protocol) = lp.create_unix_connection(move || probe, &target).await?;
            nth(&accepted, 0).await?;
            client.close();
            Ok(())
        });
        server.close();
        assert!(!path.exists(), "the close removed the server's socket file");

        // A stale socket (bound, its listener closed, the file left) and a plain file.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let (factory, _accepted) = probe_factory(Behaviour::default());
        let err = lp.create_unix_server(factory, &path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
        assert!(path.exists(), "the stale socket stays");
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"not a socket").unwrap();
        let (factory, _accepted) = probe_factory(Behaviour::default());
        let err = lp.create_unix_server(factory, &path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
        std::fs::remove_file(&path).unwrap();

        // A file put in the socket's place after the bind stays at the close.
        let (server, _accepted) = unix_probe_server(&lp, Behaviour::default(), &path);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"someone else's").unwrap();
        drop(server);
        assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
        std::fs::remove_file(&path).unwrap();
    }

    /// A Unix transport's addresses are what the kernel reports, as asyncio's `peername` and
    /// `sockname`: the client's peer and the server's own end are the server's path; the
    /// client's end, bound to nothing, is unnamed (asyncio's `''`). They have no IP address.
    fn unix_transports_report_their_socket_path(b: Backend) {
        let lp = new_loop(b);
        let path = socket_path("names", b);
        let (server, accepted) = unix_probe_server(&lp, Behaviour::default(), &path);
        assert_eq!(server.sockname().as_pathname(), Some(path.as_path()));
        let target = path.clone();
        run_test(&lp, async move {
            let lp = get_running_loop()?;
            let probe = Probe::new(Rc::default(), Behaviour::default());
            let (client, _protocol) = lp.create_unix_connection(move || probe, &target).await?;
            let served = nth(&accepted, 0).await?.transport();
            let named = |address: Option<tulip::Address>| {
                address.and_then(|a| a.as_pathname().map(Path::to_path_buf))
            };
            let unnamed = |address: Option<tulip::Address>| address.is_some_and(|a| a.is_unnamed());

            assert_eq!(named(client.peername()), Some(target.clone()), "the client's peer");
            assert!(unnamed(client.sockname()), "the client's end: {:?}", client.sockname());
            assert_eq!(named(served.sockname()), Some(target.clone()), "the server's end");
            assert!(unnamed(served.peername()), "the server's peer: {:?}", served.peername());
            let shown = served.sockname().map(|a| a.to_string());
            assert_eq!(shown, Some(target.display().to_string()));
            assert_eq!(served.peername().map(|a| a.to_string()).as_deref(), Some("(unnamed)"));
            for transport in [&client, &served] {
                assert_eq!((transport.peer_addr(), transport.local_addr()), (None, None));
            }
            client.close();
            drop(server);
            Ok(())
        });
        assert!(!path.exists(), "the server's close removed its socket file");
    }

    /// `close` with megabytes buffered for a peer that reads slowly: every byte arrives, in
    /// order, then the end of stream, and `connection_lost(None)`.
    fn close_flushes_a_large_buffered_write_before_the_connection_ends(b: Backend) {
        const LEN: usize = 4 << 20;
        let lp = new_loop(b);
        let (_server, addr, accepted) = probe_server(&lp, Behaviour::default());
        run_test(&lp, async move {
            let client = TcpStream::connect(addr).await?;
            let served = nth(&accepted, 0).await?;
            let transport = served.transport();
            let payload = pattern(LEN);
            transport.write(&payload)?;
            assert!(transport.get_write_buffer_size() > 0, "the kernel did not take 4 MiB at once");
            transport.close();
            assert!(transport.is_closing());

            let mut received = Vec::with_capacity(LEN);
            let mut buf = vec![0; 16 * 1024];
            loop {
                tulip::sleep(Duration::from_micros(200)).await?;
                match client.read(&mut buf).await? {
                    0 => break,
                    n => received.extend_from_slice(&buf[..n]),
                }
            }
            assert_eq!(received.len(), LEN);
            assert!(received == payload, "every byte, in order");
            eventually(|| served.lost()).await?;
            // Flow control goes on while closing: the flush drains the buffer to its low mark.
            assert_eq!(served.events(), ["made", "pause", "resume", "lost"]);
            Ok(())
        });
    }

    /// `abort` drops what is buffered and ends the connection at once, with the peer not
    /// reading: the peer then receives exactly what the kernel had taken, and an end of
    /// stream.
    fn abort_discards_the_buffer_and_ends_the_connection_at_once(b: Backend) {
        const CHUNK: usize = 1 << 20;
        let lp = new_loop(b);
        let (_server, addr, accepted) = probe_server(&lp, Behaviour::default());
        run_test(&lp, async move {
            let client = TcpStream::connect(addr).await?;
            let served = nth(&accepted, 0).await?;
            let transport = served.transport();
            let written = write_until_buffered(&transport, CHUNK).await?;
            let discarded = transport.get_write_buffer_size();
            transport.abort();
            eventually(|| served.lost()).await?;
            assert_eq!(served.events(), ["made", "pause", "lost"], "no resume: nothing drained");
            assert_eq!(transport.get_write_buffer_size(), 0);
            let received = read_to_end(&client).await?;
            assert_eq!(received.len(), written - discarded, "all the kernel took, nothing more");
            Ok(())
        });
    }

    /// A peer that resets its connection (`SO_LINGER` 0): that connection's protocol gets
    /// `connection_lost(Some(ConnectionReset))`; another connection goes on.
    fn a_reset_ends_that_connection_alone(b: Backend) {
        let lp = new_loop(b);
        let echo = Behaviour { echo: true, ..Behaviour::default() };
        let (_server, addr, accepted) = probe_server(&lp, echo);
        run_test(&lp, async move {
            let doomed = TcpStream::connect(addr).await?;
            round_trip(&doomed, b"before the reset").await?;
            let other = TcpStream::connect(addr).await?;
            round_trip(&other, b"another connection").await?;

            reset(&doomed)?;
            drop(doomed);
            let served = nth(&accepted, 0).await?;
            eventually(|| served.lost()).await?;
            assert_eq!(served.events(), ["made", "data", "lost: ConnectionReset"]);
            round_trip(&other, b"still served").await?;
            assert!(!accepted.borrow()[1].lost());
            Ok(())
        });
    }

    /// A write to a peer that reset the connection (unnoticed so far: reading is paused)
    /// fails, and the connection ends with that error at once, however the write was called.
    fn a_write_to_a_reset_peer_ends_the_connection_with_its_error(b: Backend) {
        let lp = new_loop(b);
        let (_server, addr, accepted) = probe_server(&lp, Behaviour::default());
        run_test(&lp, async move {
            let client = TcpStream::connect(addr).await?;
            let served = nth(&accepted, 0).await?;
            let transport = served.transport();
            transport.pause_reading();
            reset(&client)?;
            drop(client);
            settle().await?;
            assert!(!served.lost(), "not reading, the reset is not seen yet");
            transport.write(b"to nobody")?; // taken: the error goes to connection_lost
            eventually(|| served.lost()).await?;
            let events = served.events();
            assert!(
                events == ["made", "lost: ConnectionReset"] || events == ["made", "lost: BrokenPipe"],
                "{events:?}"
            );
            Ok(())
        });
    }

    /// An echo protocol that pauses reading in `pause_writing`, against a client that writes
    /// without reading: the protocol is paused once, its buffer never holds more than the
    /// high-water mark and one read, and it is resumed once the client reads; every byte
    /// comes back.
    fn a_client_that_does_not_read_pauses_the_writer_until_it_drains(b: Backend) {
        const CHUNK: usize = 64 * 1024;
        let lp = new_loop(b);
        let throttled = Behaviour { echo: true, throttle: true, ..Behaviour::default() };
        let (_server, addr, accepted) = probe_server(&lp, throttled);
        run_test(&lp, async move {
            let lp = get_running_loop()?;
            let (reader, writer) = TcpStream::connect(addr).await?.into_split();
            // Writes until told to stop (and then ends its stream): however much the kernel's
            // buffers hold, the server's fill up in the end.
            let stop = Rc::new(Cell::new(false));
            let stopped = stop.clone();
            let writing = lp.create_task(async move {
                let mut sent = 0;
                while !stopped.get() {
                    sent += writer.write(&pattern_at(sent, CHUNK)).await?;
                }
                drop(writer);
                Ok::<usize, io::Error>(sent)
            });
            let served = nth(&accepted, 0).await?;
            let bound = HIGH_WATER + READ_SIZE;
            eventually(|| served.has("pause") || served.max_buffered.get() > bound).await?;
            let transport = served.transport();
            // Until the client reads, nothing moves: one pause, no resume, the buffer bounded.
            settle().await?;
            assert_eq!(served.count("pause"), 1);
            assert_eq!(served.count("resume"), 0);
            assert!(!transport.is_reading(), "paused by its protocol");
            assert!(transport.get_write_buffer_size() > HIGH_WATER);
            assert!(served.max_buffered.get() <= bound, "{} buffered", served.max_buffered.get());

            stop.set(true);
            let mut echoed = Vec::new();
            let mut buf = vec![0; 256 * 1024];
            loop {
                match reader.read(&mut buf).await? {
                    0 => break,
                    n => echoed.extend_from_slice(&buf[..n]),
                }
            }
            let sent = writing.await??;
            assert_eq!(echoed.len(), sent, "every byte back");
            assert!(echoed == pattern_at(0, sent), "in order");
            assert!(served.max_buffered.get() <= bound, "{} buffered", served.max_buffered.get());
            let flow: Vec<String> = served
                .events()
                .into_iter()
                .filter(|e| e == "pause" || e == "resume")
                .collect();
            assert!(flow.len() >= 2 && flow.len() % 2 == 0, "{flow:?}");
            assert!(flow.chunks(2).all(|pair| pair == ["pause", "resume"]), "{flow:?}");
            eventually(|| served.lost()).await?;
            assert_eq!(served.events().last().map(String::as_str), Some("lost"));
            Ok(())
        });
    }

    /// The write buffer limits follow asyncio: (16 KiB, 64 KiB) by default, low = high / 4,
    /// high = 4 × low, `InvalidInput` (and no change) for low > high, and a high-water mark
    /// below what is buffered pauses the protocol at once.
    fn write_buffer_limits_follow_asyncio_and_reject_low_above_high(b: Backend) {
        let lp = new_loop(b);
        let (_server, addr, accepted) = probe_server(&lp, Behaviour::default());
        run_test(&lp, async move {
            let client = TcpStream::connect(addr).await?;
            let served = nth(&accepted, 0).await?;
            let transport = served.transport();
            assert_eq!(transport.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
            transport.set_write_buffer_limits(Some(1000), None)?;
            assert_eq!(transport.get_write_buffer_limits(), (250, 1000));
            transport.set_write_buffer_limits(None, Some(300))?;
            assert_eq!(transport.get_write_buffer_limits(), (300, 1200));
            let e = transport.set_write_buffer_limits(Some(10), Some(11)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert_eq!(transport.get_write_buffer_limits(), (300, 1200));
            transport.set_write_buffer_limits(None, None)?;
            assert_eq!(transport.get_write_buffer_limits(), (16 * 1024, 64 * 1024));

            // Fill the buffer (the client does not read), with no high-water mark to pass...
            transport.set_write_buffer_limits(Some(usize::MAX), None)?;
            write_until_buffered(&transport, 1 << 20).await?;
            assert!(!served.has("pause"));
            // ... then bring the mark below what is buffered.
            let buffered = transport.get_write_buffer_size();
            transport.set_write_buffer_limits(Some(buffered - 1), Some(0))?;
            assert_eq!(served.events(), ["made", "pause"], "paused at once");
            drop(client);
            Ok(())
        });
    }

    /// `pause_reading` stops `data_received` (the bytes wait in the kernel) and
    /// `resume_reading` delivers them.
    fn pause_reading_holds_data_until_resume_reading(b: Backend) {
        let lp = new_loop(b);
        let (_server, addr, accepted) = probe_server(&lp, Behaviour::default());
        run_test(&lp, async move {
            let client = TcpStream::connect(addr).await?;
            let served = nth(&accepted, 0).await?;
            let transport = served.transport();
            transport.pause_reading();
            assert!(!transport.is_reading());
            client.write_all(b"held back").await?;
            settle().await?;
            assert_eq!(served.received(), 0, "no data_received while paused");
            transport.resume_reading();
            assert!(transport.is_reading());
            eventually(|| served.received() == 9).await?;
            assert_eq!(*served.data.borrow(), b"held back");
            Ok(())
        });
    }

    /// An empty `write` on an open transport is a no-op, as in asyncio: `Ok`, nothing
    /// buffered, nothing sent, whether the buffer is empty or not; the bytes around it arrive
    /// as written.
    fn an_empty_write_on_an_open_transport_sends_nothing(b: Backend) {
        const CHUNK: usize = 1 << 20;
        let lp = new_loop(b);
        let (_server, addr, accepted) = probe_server(&lp, Behaviour::default());
        run_test(&lp, async move {
            let client = TcpStream::connect(addr).await?;
            let served = nth(&accepted, 0).await?;
            let transport = served.transport();
            transport.write(b"")?;
            assert_eq!(transport.get_write_buffer_size(), 0);
            settle().await?;
            let mut buf = [0; 16];
            let nothing = client.try_read(&mut buf).unwrap_err();
            assert_eq!(nothing.kind(), ErrorKind::WouldBlock, "no bytes, no end of stream");

            let written = write_until_buffered(&transport, CHUNK).await?;
            let buffered = transport.get_write_buffer_size();
            transport.write(b"")?;
            assert_eq!(transport.get_write_buffer_size(), buffered, "nothing added");
            transport.close();
            let received = read_to_end(&client).await?;
            assert_eq!(received.len(), written);
            assert!(received == pattern(written), "in order, nothing between");
            eventually(|| served.lost()).await?;
            Ok(())
        });
    }

    /// `close` twice, then `abort` while the close is still flushing (asyncio's
    /// `_force_close` of a closing transport): `is_closing` stays true, the abort drops what
    /// is left, and `connection_lost(None)` comes once. An `abort` twice, or a `close` after
    /// an `abort`, is harmless too, and so are both once the connection is gone.
    fn closing_twice_and_aborting_while_closing_end_the_connection_once(b: Backend) {
        const CHUNK: usize = 1 << 20;
        let lp = new_loop(b);
        let (_server, addr, accepted) = probe_server(&lp, Behaviour::default());
        run_test(&lp, async move {
            let client = TcpStream::connect(addr).await?;
            let served = nth(&accepted, 0).await?;
            let transport = served.transport();
            let written = write_until_buffered(&transport, CHUNK).await?;
            transport.close();
            transport.close();
            assert!(transport.is_closing());
            let discarded = transport.get_write_buffer_size();
            transport.abort();
            assert!(transport.is_closing());
            eventually(|| served.lost()).await?;
            transport.close();
            transport.abort();
            settle().await?;
            assert_eq!(served.events(), ["made", "pause", "lost"], "one connection_lost(None)");
            let received = read_to_end(&client).await?;
            assert_eq!(received.len(), written - discarded, "the rest was dropped");

            let _client = TcpStream::connect(addr).await?;
            let served = nth(&accepted, 1).await?;
            let transport = served.transport();
            transport.abort();
            transport.abort();
            transport.close();
            assert!(transport.is_closing());
            eventually(|| served.lost()).await?;
            settle().await?;
            assert_eq!(served.events(), ["made", "lost"]);
            Ok(())
        });
    }

    /// `pause_reading` called in `connection_made` holds from the start: the bytes a client
    /// sends at once wait until `resume_reading` (CPython's
    /// `test_pause_reading_connection_made`).
    fn pause_reading_in_connection_made_holds_data_from_the_start(b: Backend) {
        let lp = new_loop(b);
        let paused = Behaviour { pause_at_start: true, ..Behaviour::default() };
        let (_server, addr, accepted) = probe_server(&lp, paused);
        run_test(&lp, async move {
            let client = TcpStream::connect(addr).await?;
            client.write_all(b"early").await?;
            let served = nth(&accepted, 0).await?;
            settle().await?;
            let transport = served.transport();
            assert!(!transport.is_reading());
            assert_eq!(served.received(), 0, "paused before the first read");
            transport.resume_reading();
            eventually(|| served.received() == 5).await?;
            assert_eq!(served.events(), ["made", "data"]);
            Ok(())
        });
    }

    /// `pause_reading` twice needs one `resume_reading` (asyncio's are no-ops in the state
    /// they would set); `resume_reading` while reading changes nothing; once closing, the
    /// transport is not reading, and neither call changes that.
    fn pausing_reading_twice_then_resuming_once_reads_again(b: Backend) {
        let lp = new_loop(b);
        let (_server, addr, accepted) = probe_server(&lp, Behaviour::default());
        run_test(&lp, async move {
            let client = TcpStream::connect(addr).await?;
            let served = nth(&accepted, 0).await?;
            let transport = served.transport();
            transport.resume_reading();
            assert!(transport.is_reading(), "resuming a reading transport changes nothing");
            transport.pause_reading();
            transport.pause_reading();
            assert!(!transport.is_reading());
            client.write_all(b"held").await?;
            settle().await?;
            assert_eq!(served.received(), 0, "still paused");
            transport.resume_reading();
            assert!(transport.is_reading());
            eventually(|| served.received() == 4).await?;

            transport.close();
            transport.resume_reading();
            assert!(!transport.is_reading(), "closing: not reading");
            transport.pause_reading();
            transport.resume_reading();
            assert!(!transport.is_reading());
            eventually(|| served.lost()).await?;
            assert_eq!(served.events(), ["made", "data", "lost"]);
            Ok(())
        });
    }

    /// A protocol that panics in `eof_received`: reported, and the connection ends with
    /// an error (asyncio's `_fatal_error` for a failed `eof_received`), not kept open.
    fn a_panic_in_eof_received_is_reported_and_ends_the_connection_with_an_error(b: Backend) {
        let lp = new_loop(b);
        let reports = Rc::new(RefCell::new(Vec::<String>::new()));
        let sink = reports.clone();
        lp.set_exception_handler(move |_, context| {
            sink.borrow_mut().push(context.callback().to_string());
        });
        let fragile = Behaviour { keep_open: true, panic_in: Some("eof_received"), ..Behaviour::default() };
        let (_server, addr, accepted) = probe_server(&lp, fragile);
        run_test(&lp, async move {
            let (client, served) = half_closed_by_its_client(addr, &accepted).await?;
            eventually(|| served.lost()).await?;
            assert_eq!(served.events(), ["made", "data", "eof", "lost: Other"]);
            let reports = reports.borrow().clone();
            assert_eq!(reports.len(), 1, "{reports:?}");
            assert!(reports[0].ends_with("Probe::eof_received"), "{reports:?}");
            assert!(read_to_end(&client).await?.is_empty(), "closed, not kept open");
            Ok(())
        });
    }

    /// A protocol that panics in `connection_made` or in `pause_writing`: reported, and that
    /// connection is aborted (`connection_lost` with an error, the peer reads the end), as
    /// for any callback; asyncio only reports these two and goes on (see the README's
    /// differences).
    fn a_panic_in_connection_made_or_pause_writing_aborts_the_connection(b: Backend) {
        let lp = new_loop(b);
        let reports = Rc::new(RefCell::new(Vec::<String>::new()));
        let sink = reports.clone();
        lp.set_exception_handler(move |_, context| {
            sink.borrow_mut().push(context.callback().to_string());
        });
        let at_start = Behaviour { panic_in: Some("connection_made"), ..Behaviour::default() };
        let (_server, addr, accepted) = probe_server(&lp, at_start);
        let at_pause = Behaviour { panic_in: Some("pause_writing"), ..Behaviour::default() };
        let (_server2, addr2, accepted2) = probe_server(&lp, at_pause);
        run_test(&lp, async move {
            let client = TcpStream::connect(addr).await?;
            assert!(read_to_end(&client).await?.is_empty(), "aborted: the end of stream");
            let served = nth(&accepted, 0).await?;
            eventually(|| served.lost()).await?;
            assert_eq!(served.events(), ["made", "lost: Other"]);

            let client = TcpStream::connect(addr2).await?;
            let served = nth(&accepted2, 0).await?;
            let transport = served.transport();
            transport.set_write_buffer_limits(Some(0), Some(0))?;
            while !served.has("pause") {
                transport.write(&pattern(1 << 20))?;
                settle().await?;
            }
            eventually(|| served.lost()).await?;
            assert_eq!(served.events(), ["made", "pause", "lost: Other"]);
            let reports = reports.borrow().clone();
            assert_eq!(reports.len(), 2, "{reports:?}");
            assert!(reports[0].ends_with("Probe::connection_made"), "{reports:?}");
            assert!(reports[1].ends_with("Probe::pause_writing"), "{reports:?}");
            drop(client);
            Ok(())
        });
    }

    /// A protocol that panics in `data_received`: the panic goes to the loop's exception
    /// handler, naming the callback; that connection is aborted (`connection_lost` with an
    /// error, the peer reads the end); other connections and the server go on.
    fn a_panicking_protocol_is_reported_and_only_its_connection_aborted(b: Backend) {
        let lp = new_loop(b);
        let reports = Rc::new(RefCell::new(Vec::<(String, String)>::new()));
        let sink = reports.clone();
        lp.set_exception_handler(move |_, context| {
            let message = context.message().unwrap_or_default().to_string();
            sink.borrow_mut().push((context.callback().to_string(), message));
        });
        let fragile = Behaviour { echo: true, panic_on: Some(b"boom"), ..Behaviour::default() };
        let (_server, addr, accepted) = probe_server(&lp, fragile);
        run_test(&lp, async move {
            let doomed = TcpStream::connect(addr).await?;
            let other = TcpStream::connect(addr).await?;
            round_trip(&other, b"hello").await?;
            doomed.write_all(b"boom").await?;
            assert!(read_to_end(&doomed).await?.is_empty(), "aborted: the end of stream");
            let served = nth(&accepted, 0).await?;
            eventually(|| served.lost()).await?;
            assert_eq!(served.events(), ["made", "data", "lost: Other"]);
            let reports = reports.borrow().clone();
            assert_eq!(reports.len(), 1, "{reports:?}");
            assert!(reports[0].0.ends_with("Probe::data_received"), "{reports:?}");
            assert!(reports[0].1.contains("told to panic"), "{reports:?}");

            round_trip(&other, b"still served").await?;
            let late = TcpStream::connect(addr).await?;
            round_trip(&late, b"and still serving").await?;
            Ok(())
        });
    }

    /// A protocol factory that panics: reported, that connection closed, the server goes on.
    fn a_panicking_factory_is_reported_and_the_server_goes_on(b: Backend) {
        let lp = new_loop(b);
        let reports = Rc::new(Cell::new(0));
        let sink = reports.clone();
        lp.set_exception_handler(move |_, context| {
            assert!(context.callback().starts_with("the protocol factory of the server on"));
            sink.set(sink.get() + 1);
        });
        let calls = Rc::new(Cell::new(0));
        let server = lp
            .create_server(
                move || {
                    calls.set(calls.get() + 1);
                    assert!(calls.get() > 1, "the first connection gets no protocol");
                    Probe::new(Rc::default(), Behaviour { echo: true, ..Behaviour::default() })
                },
                "127.0.0.1:0",
            )
            .expect("a loopback server");
        let addr = server.local_addr().expect("its address");
        run_test(&lp, async move {
            let refused = TcpStream::connect(addr).await?;
            assert!(read_to_end(&refused).await?.is_empty(), "closed at once");
            assert_eq!(reports.get(), 1);
            let served = TcpStream::connect(addr).await?;
            round_trip(&served, b"the next one is served").await?;
            assert!(server.is_serving());
            Ok(())
        });
    }

    /// `Server::close` closes the listening socket at once (new connections are refused) and
    /// leaves the connections already made alone.
    fn closing_the_server_refuses_new_connections_but_keeps_the_old_ones(b: Backend) {
        let lp = new_loop(b);
        let echo = Behaviour { echo: true, ..Behaviour::default() };
        let (server, addr, _accepted) = probe_server(&lp, echo);
        run_test(&lp, async move {
            let client = TcpStream::connect(addr).await?;
            round_trip(&client, b"before").await?;
            assert!(server.is_serving());
            server.close();
            assert!(!server.is_serving());
            assert_eq!(server.local_addr()?, addr, "still known after close");
            let refused = TcpStream::connect(addr).await.unwrap_err();
            assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
            round_trip(&client, b"after").await?;
            server.close();
            Ok(())
        });
    }

    /// `close_clients` closes every connection the server accepted (each flushing its buffer
    /// first), `abort_clients` aborts them (their buffers dropped), as asyncio 3.13's; neither
    /// stops the server, whose `wait_closed` then returns once it is closed.
    fn close_clients_and_abort_clients_end_the_servers_connections(b: Backend) {
        const CHUNK: usize = 1 << 20;
        let lp = new_loop(b);
        let (server, addr, accepted) = probe_server(&lp, Behaviour::default());
        run_test(&lp, async move {
            let first = TcpStream::connect(addr).await?;
            let second = TcpStream::connect(addr).await?;
            let (one, two) = (nth(&accepted, 0).await?, nth(&accepted, 1).await?);
            two.transport().close();
            eventually(|| two.lost()).await?;
            one.transport().write(b"flushed first")?;
            server.close_clients();
            assert!(one.transport().is_closing());
            assert_eq!(read_to_end(&first).await?, b"flushed first");
            assert_eq!(read_to_end(&second).await?, b"");
            eventually(|| one.lost()).await?;
            assert_eq!(one.events(), ["made", "lost"]);
            assert_eq!(two.events(), ["made", "lost"]);
            assert!(server.is_serving(), "the server goes on");

            let third = TcpStream::connect(addr).await?;
            let three = nth(&accepted, 2).await?;
            let transport = three.transport();
            let written = write_until_buffered(&transport, CHUNK).await?;
            let discarded = transport.get_write_buffer_size();
            server.abort_clients();
            eventually(|| three.lost()).await?;
            assert_eq!(three.events(), ["made", "pause", "lost"]);
            assert_eq!(read_to_end(&third).await?.len(), written - discarded, "buffer dropped");
            assert!(server.is_serving());
            server.close();
            server.wait_closed().await;
            Ok(())
        });
    }

    /// The same protocols over a Unix socket: a client hears its bytes back, the IP addresses
    /// are `None`, `write_eof` is supported.
    fn unix_servers_and_connections_echo(b: Backend) {
        let lp = new_loop(b);
        let path = socket_path("echo", b);
        let echo = Behaviour { echo: true, ..Behaviour::default() };
        let (server, accepted) = unix_probe_server(&lp, echo, &path);
        assert_eq!(server.path(), Some(path.as_path()));
        assert_eq!(server.local_addr().unwrap_err().kind(), ErrorKind::InvalidInput);
        let target = path.clone();
        run_test(&lp, async move {
            let lp = get_running_loop()?;
            let seen = Rc::new(Seen::default());
            let probe = Probe::new(seen.clone(), Behaviour::default());
            let (transport, _protocol) = lp.create_unix_connection(move || probe, &target).await?;
            assert_eq!((transport.peer_addr(), transport.local_addr()), (None, None));
            assert!(transport.can_write_eof());
            let message = pattern(200_000);
            transport.write(&message)?;
            eventually(|| seen.received() == message.len()).await?;
            assert!(*seen.data.borrow() == message);
            transport.write_eof();
            let served = nth(&accepted, 0).await?;
            eventually(|| served.lost() && seen.lost()).await?;
            assert_eq!(served.events(), ["made", "data", "eof", "lost"]);
            assert_eq!(seen.events(), ["made", "data", "eof", "lost"]);
            drop(server);
            Ok(())
        });
        assert!(!path.exists(), "the server's close removed its socket file");
    }

    /// Out of fds, the server reports `socket.accept() out of system resource` to the
    /// exception handler, rests between tries (no spinning) and serves the waiting clients once
    /// fds are freed. In a child process, whose fd limit can be lowered for good.
    fn accept_out_of_fds_is_reported_and_the_server_recovers(b: Backend) {
        if child_role().as_deref() == Some("emfile") {
            return emfile_scenario(b);
        }
        assert_child_passed(&run_in_child(&test_name(module_path!(), b), "emfile"));
    }

    /// Closing the loop with connections open (both ends of each are protocols, their
    /// transports kept) frees every connection, protocol and fd: no `Rc` cycle survives.
    exclusive fn closing_the_loop_with_live_connections_frees_everything(b: Backend) {
        const CONNECTIONS: usize = 10;
        #[cfg(target_os = "linux")]
        let fds_before = open_fd_count();
        let alive = Rc::new(());
        {
            let lp = new_loop(b);
            let marker = alive.clone();
            let served = Rc::new(RefCell::new(Vec::new()));
            let list = served.clone();
            let factory = move || {
                let seen = Rc::new(Seen::default());
                list.borrow_mut().push(seen.clone());
                let mut probe = Probe::new(seen, Behaviour { echo: true, ..Behaviour::default() });
                probe._alive = Some(marker.clone());
                probe
            };
            let server = lp.create_server(factory, "127.0.0.1:0").expect("a loopback server");
            let addr = server.local_addr().expect("its address");
            let marker = alive.clone();
            let clients = run_test(&lp, async move {
                let lp = get_running_loop()?;
                let mut clients = Vec::new();
                for i in 0..CONNECTIONS {
                    let seen = Rc::new(Seen::default());
                    let mut probe = Probe::new(seen.clone(), Behaviour::default());
                    probe._alive = Some(marker.clone());
                    let (transport, protocol) = lp.create_connection(move || probe, addr).await?;
                    transport.write(format!("connection {i}").as_bytes())?;
                    eventually(|| seen.received() > 0).await?;
                    clients.push((transport, protocol));
                }
                Ok(clients)
            });
            assert_eq!(Rc::strong_count(&alive), 1 + 2 * CONNECTIONS + 1, "all alive");
            lp.close().expect("the loop closes");
            assert_eq!(
                Rc::strong_count(&alive),
                1 + CONNECTIONS,
                "the server's protocols and factory are freed; the clients' are the test's"
            );
            for (transport, protocol) in &clients {
                assert_eq!(Rc::strong_count(protocol), 1, "the connection let go of it");
                assert!(transport.is_closing());
                let refused = transport.write(b"to a closed loop").unwrap_err();
                assert_eq!(refused.kind(), ErrorKind::BrokenPipe, "{refused}");
                assert_eq!(transport.get_write_buffer_size(), 0);
            }
            assert!(served.borrow().iter().all(|seen| !seen.lost()));
            drop(clients);
            drop(server);
        }
        assert_eq!(Rc::strong_count(&alive), 1, "every protocol was dropped");
        #[cfg(target_os = "linux")]
        assert_eq!(open_fd_count(), fds_before, "every socket was closed");
    }

    /// Idle connections that have each read and written cost no read buffer of their own:
    /// their reads share one per thread.
    exclusive fn an_idle_connection_costs_far_less_than_a_read_buffer(b: Backend) {
        const CONNECTIONS: usize = 200;
        let lp = new_loop(b);
        let echo = Behaviour { echo: true, ..Behaviour::default() };
        let (server, addr, _accepted) = probe_server(&lp, echo);
        let per_connection = run_test(&lp, async move {
            let lp = get_running_loop()?;
            // Warm up: the shared read buffer, the loop's tables.
            let (warm, _protocol) = lp.create_connection(|| Probe::new(Rc::default(), Behaviour::default()), addr).await?;
            warm.write(b"warm up")?;
            settle().await?;
            let before = live_bytes();
            let mut clients = Vec::new();
            for _ in 0..CONNECTIONS {
                let seen = Rc::new(Seen::default());
                let probe = Probe::new(seen.clone(), Behaviour::default());
                let client = lp.create_connection(move || probe, addr).await?;
                client.0.write(b"ping")?;
                eventually(|| seen.received() == 4).await?;
                seen.data.borrow_mut().clear();
                seen.data.borrow_mut().shrink_to_fit();
                clients.push(client);
            }
            let grown = live_bytes() - before;
            Ok(grown / (2 * CONNECTIONS as isize))
        });
        assert!(per_connection < 8 * 1024, "{per_connection} bytes per connection end");
        drop(server);
    }
}

/// Reset `stream`'s connection when it is closed (`SO_LINGER` on, 0 s), as a crashing peer
/// does.
/// Keep `protocol` borrowed through a 100 ms sleep; the loop's iterations meanwhile. Nothing
/// may be delivered to it meanwhile (`received` stays 0).
#[allow(clippy::await_holding_refcell_ref)] // the very situation under test
async fn hold_across_a_sleep<P>(
    protocol: &RefCell<P>,
    received: impl Fn() -> usize,
) -> io::Result<u64> {
    let lp = get_running_loop()?;
    let _held = protocol.borrow_mut();
    let before = lp.stats().iterations;
    tulip::sleep(Duration::from_millis(100)).await?;
    assert_eq!(received(), 0, "no callback while the protocol is borrowed");
    Ok(lp.stats().iterations - before)
}
