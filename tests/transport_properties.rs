//! Properties of the transports, each checked for every generated case on every backend of
//! this OS (a fresh loop per backend), over a Unix and a TCP server, against a small model of
//! what the protocol sees ([`replay`]) and of the bytes its client reads:
//!
//! 1. a transport's `pause_writing` and `resume_writing` alternate, each on its side of the
//!    water marks, against a client that reads in fits and starts;
//! 2. `close` flushes what a transport buffered before the end of the stream.
//!
//! The sockets underneath have theirs in `net_properties.rs`; the two share the configuration,
//! the loop per case and the byte pattern (`support/properties.rs`).
//!
//! Both peers run on the same loop, so nothing depends on another thread's timing, and nothing
//! asserts a duration: [`TIMEOUT`] only turns a hang into a failure.
//!
//! 32 cases per property by default; `PROPTEST_CASES=256 cargo test --test transport_properties`
//! for more.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::net::Shutdown;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tulip::net::{TcpStream, UnixStream};
use tulip::selectors::Backend;
use tulip::{get_running_loop, yield_now, Protocol, Server, Transport};

#[macro_use]
#[path = "support/properties.rs"]
mod properties;
use properties::*;

/// Wait until `condition` holds, letting everything else on the loop run between looks.
async fn until(mut condition: impl FnMut() -> bool) {
    while !condition() {
        yield_now().await;
    }
}

// ---- The bytes ----------------------------------------------------------------------------------

/// Where `bytes` first differs from the pattern from 0, if it does.
fn first_difference_from_pattern(bytes: &[u8]) -> Option<usize> {
    let block = pattern_block();
    let (i, chunk) = bytes
        .chunks(block.len())
        .enumerate()
        .find(|(_, chunk)| chunk[..] != block[..chunk.len()])?;
    let at = chunk.iter().zip(block).position(|(a, b)| a != b);
    Some(i * block.len() + at.expect("the chunk differs somewhere"))
}

// ---- What a protocol sees -----------------------------------------------------------------------

/// A protocol callback.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    Made,
    Data(usize),
    Eof,
    Pause,
    Resume,
    Lost(Option<ErrorKind>),
}

/// A callback and the transport's write-buffer size when it was called and when it returned.
#[derive(Clone, Debug)]
struct Seen {
    call: Call,
    at_entry: usize,
    at_return: usize,
}

/// What a server's protocol saw and did, shared with the test.
#[derive(Default)]
struct Record {
    calls: RefCell<Vec<Seen>>,
    transport: RefCell<Option<Transport>>,
    /// Bytes handed to `Transport::write` and taken: the pattern from 0.
    written: Cell<usize>,
    /// Request bytes handled (property 1).
    handled: Cell<usize>,
    /// Set once `close` was called (property 2), with how many writes were refused after it.
    closed: Cell<Option<usize>>,
}

impl Record {
    fn transport(&self) -> Transport {
        let transport = self.transport.borrow().clone();
        transport.expect("connection_made keeps the transport")
    }

    fn buffered(&self) -> usize {
        self.transport
            .borrow()
            .as_ref()
            .map_or(0, Transport::get_write_buffer_size)
    }

    /// Run callback `call`'s `body`, and note it.
    fn around(&self, call: Call, body: impl FnOnce()) {
        let at_entry = self.buffered();
        body();
        let at_return = self.buffered();
        self.calls.borrow_mut().push(Seen {
            call,
            at_entry,
            at_return,
        });
    }

    /// Write the next `len` bytes of the pattern.
    fn write(&self, len: usize) {
        self.transport()
            .write(pattern_at(self.written.get(), len))
            .expect("the script writes while its transport is open");
        self.written.set(self.written.get() + len);
    }

    /// Write [`MAX_PIECE`]s until the transport's buffer holds more than `level`: the kernel's
    /// buffers are full then. (A closing transport refuses writes: then it stops.)
    fn fill_above(&self, level: usize) {
        while self.buffered() <= level && !self.transport().is_closing() {
            self.write(MAX_PIECE);
        }
    }

    /// Fill the kernel's buffers, then write until the transport's holds exactly `level` bytes
    /// (if it does not hold more already).
    fn fill_to(&self, level: usize) {
        self.fill_above(0);
        while self.buffered() < level && !self.transport().is_closing() {
            self.write((level - self.buffered()).min(MAX_PIECE));
        }
    }

    fn lost(&self) -> bool {
        self.calls
            .borrow()
            .iter()
            .any(|seen| matches!(seen.call, Call::Lost(_)))
    }
}

/// What replaying the calls through the model ends with.
#[derive(Debug, Default)]
struct Replay {
    paused: bool,
    eof: bool,
    lost: Option<Option<ErrorKind>>,
    received: usize,
}

/// The model of a protocol's callbacks: `Protocol`'s contract (`connection_made` first and
/// once, `data_received` never empty and not after `eof_received`, `connection_lost` once and
/// last) and asyncio's water marks: `pause_writing` and `resume_writing` strictly alternate,
/// starting with a pause; a pause comes with more than `high` bytes buffered, a resume with
/// `low` or fewer; and a callback that leaves more than `high` buffered, unpaused, is followed
/// by the pause (tulip calls it as soon as the callback returns).
fn replay(calls: &[Seen], (high, low): (usize, usize)) -> Result<Replay, String> {
    let mut state = Replay::default();
    let mut made = false;
    let mut pause_due = false;
    for (i, seen) in calls.iter().enumerate() {
        let broken = |why: String| Err(format!("call {i}, {seen:?}: {why}; all calls: {calls:?}"));
        if state.lost.is_some() {
            return broken("after connection_lost".into());
        }
        if made == (seen.call == Call::Made) {
            return broken("connection_made comes first, once".into());
        }
        if pause_due && seen.call != Call::Pause {
            return broken(format!(
                "more than {high} bytes buffered, so pause_writing was due"
            ));
        }
        match seen.call {
            Call::Made => made = true,
            Call::Data(n) if n == 0 || state.eof => {
                return broken("data_received empty or after eof_received".into())
            }
            Call::Data(n) => state.received += n,
            Call::Eof if state.eof => return broken("eof_received twice".into()),
            Call::Eof => state.eof = true,
            Call::Pause if state.paused || seen.at_entry <= high => {
                return broken(format!("a pause must follow a resume and pass {high}"));
            }
            Call::Pause => state.paused = true,
            Call::Resume if !state.paused || seen.at_entry > low => {
                return broken(format!(
                    "a resume must follow a pause and be at {low} or below"
                ));
            }
            Call::Resume => state.paused = false,
            Call::Lost(error) => state.lost = Some(error),
        }
        pause_due = !state.paused && seen.at_return > high && state.lost.is_none();
    }
    if state.lost.is_none() {
        return Err(format!("no connection_lost; all calls: {calls:?}"));
    }
    Ok(state)
}

/// Where a transport property's server listens.
#[derive(Copy, Clone, Debug)]
enum Family {
    /// A Unix socket in the temporary directory: small kernel buffers.
    Unix,
    /// A loopback port: kernel buffers of megabytes.
    Tcp,
}

const FAMILIES: [Family; 2] = [Family::Unix, Family::Tcp];

/// The client of a transport property: a plain stream.
enum Client {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Client {
    async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        on_end!(self, Client[Unix, Tcp], s => s.write_all(buf).await)
    }

    fn shutdown_write(&self) -> io::Result<()> {
        on_end!(self, Client[Unix, Tcp], s => s.shutdown(Shutdown::Write))
    }

    /// Read `len` more bytes into `received`.
    async fn read_into(&self, received: &mut Vec<u8>, len: usize) -> io::Result<()> {
        let start = received.len();
        received.resize(start + len, 0);
        on_end!(self, Client[Unix, Tcp], s => s.read_exact(&mut received[start..]).await)
    }

    /// Read the rest of the stream into `received`.
    async fn read_to_end(&self, received: &mut Vec<u8>) -> io::Result<()> {
        let mut buf = vec![0; 256 * 1024];
        loop {
            match on_end!(self, Client[Unix, Tcp], s => s.read(&mut buf).await)? {
                0 => return Ok(()),
                n => received.extend_from_slice(&buf[..n]),
            }
        }
    }
}

/// A path no other test uses, for a Unix server.
fn unique_socket_path() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "tulip-transport-properties-{}-{n}.sock",
        std::process::id()
    ))
}

/// A server of `family` on the running loop whose one connection gets `protocol`, and a client
/// connected to it, once the connection is made (`record` has the transport).
async fn connect_to_server<P: Protocol>(
    family: Family,
    record: &Rc<Record>,
    protocol: impl FnOnce() -> P + 'static,
) -> io::Result<(Server, Client)> {
    let lp = get_running_loop()?;
    let mut protocol = Some(protocol);
    let factory = move || protocol.take().expect("one connection per server")();
    let (server, client) = match family {
        Family::Unix => {
            let path = unique_socket_path();
            let server = lp.create_unix_server(factory, &path)?;
            let client = UnixStream::connect(&path).await;
            std::fs::remove_file(&path)?;
            (server, Client::Unix(client?))
        }
        Family::Tcp => {
            let server = lp.create_server(factory, "127.0.0.1:0")?;
            let client = TcpStream::connect(server.local_addr()?).await?;
            (server, Client::Tcp(client))
        }
    };
    until(|| record.transport.borrow().is_some()).await;
    Ok((server, client))
}

/// What a server's connection ended with: the bytes its client read, what the protocol wrote
/// and saw.
struct Outcome {
    received: Vec<u8>,
    written: usize,
    calls: Vec<Seen>,
}

impl Outcome {
    fn of(received: Vec<u8>, record: &Record) -> Outcome {
        let calls = record.calls.borrow().clone();
        Outcome {
            received,
            written: record.written.get(),
            calls,
        }
    }

    /// The checks both transport properties make: every byte written arrived, in order, and
    /// the calls follow the model to a clean end, resumed (the buffer was flushed). A failure
    /// names the run: `on`.
    fn check(&self, limits: (usize, usize), on: &str) -> Result<Replay, TestCaseError> {
        self.check_clean_end(limits)
            .map_err(|e| TestCaseError::fail(format!("{on}: {e}")))
    }

    fn check_clean_end(&self, limits: (usize, usize)) -> Result<Replay, String> {
        if self.received.len() != self.written {
            return Err(format!(
                "{} bytes received, {} written",
                self.received.len(),
                self.written
            ));
        }
        if let Some(at) = first_difference_from_pattern(&self.received) {
            return Err(format!(
                "the bytes received differ from those written at byte {at}"
            ));
        }
        let replay = replay(&self.calls, limits)?;
        if replay.lost != Some(None) || replay.paused {
            return Err(format!("not a clean end, or still paused: {replay:?}"));
        }
        Ok(replay)
    }
}

/// Water marks near the sizes written, or megabytes apart: farther than the kernel often drains
/// a loopback connection's buffer at once, so that a draining buffer is seen between them.
fn limits() -> impl Strategy<Value = (usize, usize)> {
    let high = prop_oneof![0..=256 * 1024usize, 1024 * 1024..=4 * 1024 * 1024usize];
    high.prop_flat_map(|high| (Just(high), 0..=high))
}

fn piece() -> impl Strategy<Value = usize> {
    prop_oneof![1 => 0..=64usize, 3 => 0..=MAX_PIECE]
}

/// The server's protocol of both properties: it notes every callback in its [`Record`] and
/// writes as told: its next burst for each request byte, its next amount of `on_resume` in
/// each `resume_writing` (until the client's end of stream, after which the transport closes
/// and would refuse writes), and `closing` in `connection_made`.
struct Scripted {
    record: Rc<Record>,
    limits: (usize, usize),
    bursts: VecDeque<Burst>,
    on_resume: VecDeque<usize>,
    closing: Option<Closing>,
}

impl Protocol for Scripted {
    fn connection_made(&mut self, transport: Transport) {
        let (high, low) = self.limits;
        transport
            .set_write_buffer_limits(Some(high), Some(low))
            .expect("the strategy makes low <= high");
        let record = &self.record;
        record.around(Call::Made, || {
            *record.transport.borrow_mut() = Some(transport);
            if let Some(closing) = &self.closing {
                closing.run(record);
            }
        });
    }

    fn data_received(&mut self, data: &[u8]) {
        let record = Rc::clone(&self.record);
        record.around(Call::Data(data.len()), || {
            for _ in data {
                let burst = self.bursts.pop_front().expect("one burst per request");
                match burst.fill {
                    Fill::Nothing => {}
                    Fill::Kernel => record.fill_above(0),
                    Fill::ToHigh => record.fill_to(self.limits.0),
                    Fill::AboveHigh => record.fill_above(self.limits.0),
                }
                burst.pieces.iter().for_each(|&len| record.write(len));
                record.handled.set(record.handled.get() + 1);
            }
        });
    }

    fn eof_received(&mut self) -> bool {
        self.record.around(Call::Eof, || self.on_resume.clear());
        false
    }

    fn pause_writing(&mut self) {
        self.record.around(Call::Pause, || {});
    }

    fn resume_writing(&mut self) {
        let record = Rc::clone(&self.record);
        record.around(Call::Resume, || {
            if let Some(len) = self.on_resume.pop_front() {
                record.write(len);
            }
        });
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        let call = Call::Lost(error.map(|e| e.kind()));
        self.record.around(call, || {});
    }
}

// ---- 1. Flow control ----------------------------------------------------------------------------

/// How a burst starts: as it is, or with the kernel's buffers full (so that what follows is
/// buffered by the transport), and then the transport's buffer at the high-water mark exactly
/// (no pause is due: asyncio pauses above it) or past it (the protocol is paused).
#[derive(Copy, Clone, Debug)]
enum Fill {
    Nothing,
    Kernel,
    ToHigh,
    AboveHigh,
}

/// What the server writes for one request: a fill, then pieces.
#[derive(Clone, Debug)]
struct Burst {
    fill: Fill,
    pieces: Vec<usize>,
}

/// What the client reads once the server has written a burst.
#[derive(Clone, Debug)]
enum Reading {
    Nothing,
    /// This many bytes, or all it has not read if fewer.
    Some(usize),
    /// This percentage of what it has not read: with megabytes in the kernel's buffers and
    /// the transport's, this drains the transport's part way.
    Part(u8),
    /// All that was written so far.
    All,
}

/// A client that asks for each burst in turn (one request byte), and once the server has
/// written it, reads as the script says; then it ends its stream and reads the rest.
fn fitful_exchange(
    backend: Backend,
    family: Family,
    limits: (usize, usize),
    script: Vec<(Burst, Reading)>,
    on_resume: Vec<usize>,
) -> Result<Outcome, TestCaseError> {
    run_on(backend, async move {
        let record = Rc::new(Record::default());
        let protocol = {
            let record = Rc::clone(&record);
            let bursts = script.iter().map(|(burst, _)| burst.clone()).collect();
            move || Scripted {
                record,
                limits,
                bursts,
                on_resume: on_resume.into(),
                closing: None,
            }
        };
        let (_server, client) = connect_to_server(family, &record, protocol).await?;
        let mut received = Vec::new();
        for (k, (_, reading)) in script.iter().enumerate() {
            client.write_all(b"?").await?;
            until(|| record.handled.get() > k).await;
            let unread = record.written.get() - received.len();
            let len = match *reading {
                Reading::Nothing => 0,
                Reading::Some(len) => len.min(unread),
                Reading::Part(percent) => unread * usize::from(percent) / 100,
                Reading::All => unread,
            };
            client.read_into(&mut received, len).await?;
        }
        client.shutdown_write()?;
        client.read_to_end(&mut received).await?;
        until(|| record.lost()).await;
        Ok(Outcome::of(received, &record))
    })
}

fn script() -> impl Strategy<Value = Vec<(Burst, Reading)>> {
    let fill = prop_oneof![
        Just(Fill::Nothing),
        Just(Fill::Kernel),
        Just(Fill::ToHigh),
        Just(Fill::AboveHigh)
    ];
    let burst = (fill, vec(piece(), 0..=3)).prop_map(|(fill, pieces)| Burst { fill, pieces });
    let reading = prop_oneof![
        Just(Reading::Nothing),
        (0..=300_000usize).prop_map(Reading::Some),
        (0..=100u8).prop_map(Reading::Part),
        Just(Reading::All),
    ];
    vec((burst, reading), 1..=6)
}

// ---- 2. Closing ---------------------------------------------------------------------------------

/// Writes, then `close`, then writes that must be refused.
#[derive(Clone, Debug)]
struct Closing {
    /// First write until the kernel's buffers are full, so that the pieces are buffered.
    fill_first: bool,
    pieces: Vec<usize>,
    after_close: Vec<usize>,
    /// Done in `connection_made`; otherwise by the test's task, outside any callback.
    in_callback: bool,
}

impl Closing {
    fn run(&self, record: &Record) {
        if self.fill_first {
            record.fill_above(0);
        }
        self.pieces.iter().for_each(|&len| record.write(len));
        let transport = record.transport();
        transport.close();
        let refused = self
            .after_close
            .iter()
            .filter(|&&len| transport.write(pattern_at(0, len)).is_err())
            .count();
        record.closed.set(Some(refused));
    }
}

/// A server connection that writes and closes as `closing` says, before its client reads a
/// byte; the client then reads to the end. Also how many writes after the close were refused.
fn close_then_read(
    backend: Backend,
    family: Family,
    limits: (usize, usize),
    closing: Closing,
) -> Result<(Outcome, usize), TestCaseError> {
    run_on(backend, async move {
        let record = Rc::new(Record::default());
        let protocol = {
            let record = Rc::clone(&record);
            let in_callback = closing.in_callback.then(|| closing.clone());
            move || Scripted {
                record,
                limits,
                bursts: VecDeque::new(),
                on_resume: VecDeque::new(),
                closing: in_callback,
            }
        };
        let (_server, client) = connect_to_server(family, &record, protocol).await?;
        if !closing.in_callback {
            closing.run(&record);
        }
        let refused = record.closed.get().expect("closed before the client reads");
        let mut received = Vec::new();
        client.read_to_end(&mut received).await?;
        until(|| record.lost()).await;
        Ok((Outcome::of(received, &record), refused))
    })
}

fn closing() -> impl Strategy<Value = Closing> {
    let after_close = vec(0..=64usize, 0..=2);
    (
        any::<bool>(),
        vec(piece(), 0..=4),
        after_close,
        any::<bool>(),
    )
        .prop_map(|(fill_first, pieces, after_close, in_callback)| Closing {
            fill_first,
            pieces,
            after_close,
            in_callback,
        })
}

// ---- The properties -----------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Over a Unix and a TCP server; the model is [`replay`], and the bytes written, in order.
    #[test]
    fn transport_flow_control_alternates_pause_and_resume_around_the_water_marks(
        limits in limits(),
        script in script(),
        on_resume in vec(piece(), 0..=3),
    ) {
        for family in FAMILIES {
            for &backend in Backend::available() {
                let outcome =
                    fitful_exchange(backend, family, limits, script.clone(), on_resume.clone())?;
                let on = format!("{family:?} on {backend}");
                let replay = outcome.check(limits, &on)?;
                prop_assert!(replay.eof, "{}: the client's end of stream", on);
                prop_assert_eq!(replay.received, script.len(), "{}: a request byte per burst", on);
            }
        }
    }

    /// Over a Unix and a TCP server; the model is the bytes written before `close`, in order,
    /// then the end of stream and one `connection_lost(None)`, last ([`replay`]).
    #[test]
    fn closing_a_transport_delivers_everything_buffered_before_the_end_of_stream(
        limits in limits(),
        closing in closing(),
    ) {
        // Every one, empty or not, as `write` after `close` is refused.
        let refused = closing.after_close.len();
        for family in FAMILIES {
            for &backend in Backend::available() {
                let (outcome, refused_writes) =
                    close_then_read(backend, family, limits, closing.clone())?;
                let on = format!("{family:?} on {backend}");
                let replay = outcome.check(limits, &on)?;
                prop_assert_eq!(replay.received, 0, "{}: the client sent nothing", on);
                prop_assert!(!replay.eof, "{}: a closing transport does not read", on);
                prop_assert_eq!(refused_writes, refused, "{}: the writes after close", on);
            }
        }
    }
}
