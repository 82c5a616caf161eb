//! The probes with sockets and clients: the signal storm, `EMFILE`, resets, half-closes, a
//! client that does not read, and a burst of connects. Clients are plain blocking std sockets
//! on their own threads, so that what they see does not depend on the loop under test.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::pthread::{pthread_kill, pthread_self};
use nix::sys::signal::Signal;
use nix::sys::socket::{setsockopt, sockopt::Linger};
use tulip::net::{ListenOptions, ACCEPT_RETRY_DELAY};
use tulip::selectors::fd;
use tulip::{EventLoop, Protocol, Transport};

use super::{check, human_bytes, human_time, misbehaved, rss_bytes, spin_until, Ctx, Outcome};

/// How the server's connections ended, counted by the protocols.
#[derive(Default, Debug)]
struct Conns {
    made: Cell<usize>,
    clean: Cell<usize>,
    errors: Cell<usize>,
    resets: Cell<usize>,
}

impl Conns {
    fn ended(&self) -> usize {
        self.clean.get() + self.errors.get()
    }
}

fn bump(cell: &Cell<usize>) {
    cell.set(cell.get() + 1);
}

/// An echo protocol counting into `conns`.
struct Echo {
    transport: Option<Transport>,
    conns: Rc<Conns>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: Transport) {
        bump(&self.conns.made);
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.transport {
            // A write to a connection already failing is reported by connection_lost.
            let _ = t.write(data);
        }
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        match error {
            None => bump(&self.conns.clean),
            Some(e) => {
                bump(&self.conns.errors);
                if e.kind() == io::ErrorKind::ConnectionReset {
                    bump(&self.conns.resets);
                }
            }
        }
        self.transport = None;
    }
}

fn echo_factory(conns: &Rc<Conns>) -> impl FnMut() -> Echo + 'static {
    let conns = conns.clone();
    move || Echo {
        transport: None,
        conns: conns.clone(),
    }
}

/// `len` bytes of a stream that names where it is: byte `i` of stream `seed`.
fn pattern(seed: u64, offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| pattern_byte(seed, offset + i))
        .collect()
}

fn pattern_byte(seed: u64, at: u64) -> u8 {
    (seed.wrapping_mul(131).wrapping_add(at.wrapping_mul(7)) % 251) as u8
}

/// A blocking client with time-outs, so that a lost reply fails the probe instead of hanging.
fn client(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    stream.set_write_timeout(Some(Duration::from_secs(20)))?;
    Ok(stream)
}

/// Send `total` bytes of stream `seed` in `chunk`s, reading each back and comparing: the bytes
/// echoed intact.
fn echo_round_trips(
    stream: &mut TcpStream,
    seed: u64,
    total: u64,
    chunk: usize,
) -> io::Result<u64> {
    let mut done = 0u64;
    let mut back = vec![0u8; chunk];
    while done < total {
        let len = chunk.min((total - done) as usize);
        let message = pattern(seed, done, len);
        stream.write_all(&message)?;
        stream.read_exact(&mut back[..len])?;
        if back[..len] != message[..] {
            return Err(misbehaved(format!(
                "stream {seed}: bytes {done}..{} came back altered",
                done + len as u64
            )));
        }
        done += len as u64;
    }
    Ok(done)
}

/// Join client threads, the first error winning.
fn join_all<T>(threads: Vec<JoinHandle<io::Result<T>>>) -> io::Result<Vec<T>> {
    let mut out = Vec::new();
    let mut first_error = None;
    for t in threads {
        match t.join() {
            Ok(Ok(v)) => out.push(v),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert(misbehaved("a client thread panicked"));
            }
        }
    }
    first_error.map_or(Ok(out), Err)
}

/// 1. A thread sends SIGUSR1 to the loop's thread as fast as it can while the loop runs
///    timers (one per ms) and echoes a TCP stream.
pub fn eintr_storm(ctx: &Ctx) -> io::Result<Outcome> {
    let duration = ctx.pick(Duration::from_secs(1), Duration::from_millis(200));
    let lp = EventLoop::with_backend(ctx.backend)?;
    let handled = Rc::new(Cell::new(0u64));
    let h = handled.clone();
    lp.add_signal_handler(Signal::SIGUSR1 as i32, move |_| h.set(h.get() + 1))?;
    let conns = Rc::new(Conns::default());
    let server = lp.create_server(echo_factory(&conns), "127.0.0.1:0")?;
    let addr = server.local_addr()?;

    let timers = duration.as_millis() as u64;
    let fired = Rc::new(Cell::new(0u64));
    let latest = Rc::new(Cell::new(Duration::ZERO));
    let start = lp.time();
    for i in 0..timers {
        let when = start + Duration::from_millis(i + 1);
        let (fired, latest) = (fired.clone(), latest.clone());
        lp.call_at(when, move |lp| {
            fired.set(fired.get() + 1);
            latest.set(latest.get().max(lp.time().saturating_sub(when)));
        })?;
    }

    let target = pthread_self();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let sender = {
        let (stop, sent) = (stop.clone(), sent.clone());
        thread::spawn(move || -> io::Result<()> {
            while !stop.load(Ordering::Relaxed) {
                pthread_kill(target, Signal::SIGUSR1).map_err(io::Error::from)?;
                sent.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
    };
    let client_done = Arc::new(AtomicBool::new(false));
    let echo = {
        let done = client_done.clone();
        thread::spawn(move || -> io::Result<u64> {
            let result = (|| {
                let mut stream = client(addr)?;
                let deadline = Instant::now() + duration;
                let mut total = 0;
                while Instant::now() < deadline {
                    total += echo_round_trips(&mut stream, 1, 64 * 1024, 16 * 1024)?;
                }
                Ok(total)
            })();
            done.store(true, Ordering::Release);
            result
        })
    };
    let ran = spin_until(&lp, "the storm", duration + Duration::from_secs(20), || {
        fired.get() == timers && client_done.load(Ordering::Acquire)
    });
    stop.store(true, Ordering::Relaxed);
    let sender_result = sender
        .join()
        .map_err(|_| misbehaved("the sender panicked"))?;
    // Signals already pending for this thread are delivered before it leaves the join.
    let echoed = join_all(vec![echo]);
    ran?;
    sender_result?;
    let echoed = echoed?[0];
    // What the handler got of the storm is known once the pipe is drained.
    lp.run_once(Some(Duration::ZERO))?;
    let sent = sent.load(Ordering::Relaxed);
    check(handled.get() > 0, || {
        format!("none of {sent} signals handled")
    })?;
    check(fired.get() == timers, || {
        format!("{} of {timers} timers fired", fired.get())
    })?;
    check(latest.get() < Duration::from_secs(1), || {
        format!("a timer ran {:?} late", latest.get())
    })?;
    drop(server);
    Ok(Outcome {
        did: "every syscall interrupted by a signal retried; handler run once per signal \
              handled (the kernel merges one sent while pending), timers all fired, stream \
              intact"
            .into(),
        figure: format!(
            "{sent} signals sent in {:.1} s, handler run {} times; timers {}/{timers}, max \
             lateness {}; {} echoed intact",
            duration.as_secs_f64(),
            handled.get(),
            fired.get(),
            human_time(latest.get()),
            human_bytes(echoed as i64)
        ),
    })
}

/// 3. `EMFILE`, in a child process (`faults-child emfile`): this side runs it and reads its
///    outcome (a tab-separated line on its stdout).
pub fn emfile(ctx: &Ctx) -> io::Result<Outcome> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args([
            "faults-child",
            "emfile",
            "--backend",
            &ctx.backend.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if ctx.quick {
        command.arg("--quick");
    }
    let output = command.output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(misbehaved(format!(
            "the child {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let line = stdout.lines().last().unwrap_or_default();
    let (did, figure) = line
        .split_once('\t')
        .ok_or_else(|| misbehaved(format!("the child printed no outcome: {stdout:?}")))?;
    Ok(Outcome {
        did: did.into(),
        figure: figure.into(),
    })
}

/// The child's side of [`emfile`]: clients wait in the backlog while every fd is taken, then
/// the fds are freed and each client must be served.
pub fn emfile_child(ctx: &Ctx) -> io::Result<()> {
    let _watchdog = super::Watchdog::arm("emfile (child)", Duration::from_secs(50));
    let clients_n = ctx.pick(50, 10);
    let rest = ctx.pick(Duration::from_secs(1), Duration::from_millis(300));
    let lp = EventLoop::with_backend(ctx.backend)?;
    let reports = Rc::new(Cell::new(0usize));
    let odd = Rc::new(RefCell::new(None::<String>));
    {
        let (reports, odd) = (reports.clone(), odd.clone());
        lp.set_exception_handler(move |_, context| {
            let message = context.message().unwrap_or_default();
            if message.starts_with("socket.accept() out of system resource") {
                reports.set(reports.get() + 1);
            } else {
                odd.borrow_mut().get_or_insert_with(|| context.to_string());
            }
        });
    }
    let conns = Rc::new(Conns::default());
    let server = lp.create_server(echo_factory(&conns), "127.0.0.1:0")?;
    let addr = server.local_addr()?;
    let clients = (0..clients_n)
        .map(|_| client(addr))
        .collect::<io::Result<Vec<_>>>()?;

    // A soft limit just above the fds in use plus one per client, then every fd left taken.
    let (_, hard) = fd::nofile_limit()?;
    let lowest_free = std::fs::File::open("/dev/null")?.as_raw_fd() as u64;
    fd::set_nofile_limit(lowest_free + clients_n as u64 + 16, hard)?;
    let mut hoard = Vec::new();
    let exhausted = loop {
        match std::fs::File::open("/dev/null") {
            Ok(file) => hoard.push(file),
            Err(e) => break e,
        }
    };
    check(
        exhausted.raw_os_error() == Some(nix::errno::Errno::EMFILE as i32),
        || format!("the fds ran out with {exhausted}, not EMFILE"),
    )?;

    let before = lp.stats();
    let t0 = Instant::now();
    lp.call_later(rest, |_| {})?;
    lp.run_until(|_| t0.elapsed() >= rest)?;
    let elapsed = t0.elapsed();
    let selects = lp.stats().selects - before.selects;
    let errors = reports.get();
    if let Some(odd) = odd.borrow().as_ref() {
        return Err(misbehaved(format!("an unexpected report: {odd}")));
    }
    check(errors >= 1, || {
        "no EMFILE reported to the exception handler".into()
    })?;
    check(conns.made.get() == 0, || "accepted without an fd?".into())?;
    let most = (elapsed.as_nanos() / ACCEPT_RETRY_DELAY.as_nanos() + 2) as usize;
    check(errors <= most, || {
        format!("{errors} EMFILEs in {elapsed:?}: no rest between tries (a busy spin)")
    })?;
    check(selects <= 4 * most as u64 + 10, || {
        format!("{selects} selects in {elapsed:?} while out of fds: a busy spin")
    })?;
    check(server.is_serving(), || "the server stopped serving".into())?;

    drop(hoard);
    let freed = Instant::now();
    let finished = Arc::new(AtomicBool::new(false));
    let talker = {
        let finished = finished.clone();
        thread::spawn(move || -> io::Result<u64> {
            let result = clients
                .into_iter()
                .enumerate()
                .map(|(i, mut c)| echo_round_trips(&mut c, i as u64, 4096, 4096))
                .sum::<io::Result<u64>>();
            finished.store(true, Ordering::Release);
            result
        })
    };
    let served = spin_until(&lp, "serving after EMFILE", Duration::from_secs(20), || {
        finished.load(Ordering::Acquire)
    });
    let recovered = freed.elapsed();
    let echoed = join_all(vec![talker]);
    served?;
    echoed?;
    check(conns.made.get() == clients_n, || {
        format!("{} of {clients_n} served", conns.made.get())
    })?;
    println!(
        "EMFILE reported to the exception handler, accept rested {} between tries (no spin); \
         the backlog served once fds were freed\t{errors} EMFILEs reported and {selects} \
         selects in {} of exhaustion ({:.0} selects/s); {}/{clients_n} connections served \
         within {} of fds freed",
        human_time(ACCEPT_RETRY_DELAY),
        human_time(elapsed),
        selects as f64 / elapsed.as_secs_f64(),
        conns.made.get(),
        human_time(recovered),
    );
    Ok(())
}

/// Reset the connection when `stream` is closed (`SO_LINGER` on, 0 s), as a crashing peer does.
fn set_reset_on_close(stream: &TcpStream) -> io::Result<()> {
    let linger = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    setsockopt(stream, Linger, &linger).map_err(io::Error::from)
}

/// 4. `resets` connections are reset in the middle of their stream while `echoes` others
///    stream through the same server.
pub fn resets(ctx: &Ctx) -> io::Result<Outcome> {
    let resets_n = ctx.pick(1000, 100);
    let echoes = ctx.pick(20, 5);
    let per_echo = ctx.pick(4 << 20, 256 << 10);
    let lp = EventLoop::with_backend(ctx.backend)?;
    let reports = Rc::new(Cell::new(0usize));
    let r = reports.clone();
    lp.set_exception_handler(move |_, _| r.set(r.get() + 1));
    let conns = Rc::new(Conns::default());
    let server = lp.create_server(echo_factory(&conns), "127.0.0.1:0")?;
    let addr = server.local_addr()?;
    let finished = Arc::new(AtomicUsize::new(0));
    let mut threads: Vec<JoinHandle<io::Result<u64>>> = Vec::new();
    {
        let finished = finished.clone();
        threads.push(thread::spawn(move || {
            let result = (|| {
                for i in 0..resets_n as u64 {
                    let mut stream = client(addr)?;
                    stream.write_all(&pattern(i, 0, 64 * 1024))?;
                    // Mid-stream: the server has echoed, more is in flight both ways.
                    let mut first = [0u8; 1024];
                    stream.read_exact(&mut first)?;
                    set_reset_on_close(&stream)?;
                }
                Ok(0)
            })();
            finished.fetch_add(1, Ordering::Release);
            result
        }));
    }
    for e in 0..echoes {
        let finished = finished.clone();
        threads.push(thread::spawn(move || {
            let result = client(addr).and_then(|mut s| {
                echo_round_trips(&mut s, 1_000_000 + e as u64, per_echo, 16 * 1024)
            });
            finished.fetch_add(1, Ordering::Release);
            result
        }));
    }
    let clients = threads.len();
    let ran = spin_until(&lp, "the clients", Duration::from_secs(40), || {
        finished.load(Ordering::Acquire) == clients
    });
    let echoed = join_all(threads);
    ran?;
    let echoed: u64 = echoed?.iter().sum();
    let total = resets_n + echoes;
    spin_until(
        &lp,
        "every connection's end",
        Duration::from_secs(10),
        || conns.ended() == total,
    )?;
    check(conns.made.get() == total, || {
        format!("{} of {total} connections made", conns.made.get())
    })?;
    check(echoed == per_echo * echoes as u64, || {
        format!("{echoed} bytes echoed of {}", per_echo * echoes as u64)
    })?;
    drop(server);
    Ok(Outcome {
        did: "each reset ends its own connection (connection_lost with the error); the others \
              go on"
            .into(),
        figure: format!(
            "{resets_n} resets: {} seen as ConnectionReset, {} other errors, {} as a clean end; \
             {echoes} concurrent streams, {} echoed intact; {} exception-handler reports",
            conns.resets.get(),
            conns.errors.get() - conns.resets.get(),
            conns.clean.get() - echoes,
            human_bytes(echoed as i64),
            reports.get()
        ),
    })
}

/// A protocol that answers once its peer has ended its stream: all it got, then it closes.
struct AnswerAtEof {
    transport: Option<Transport>,
    got: Vec<u8>,
}

impl Protocol for AnswerAtEof {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        self.got.extend_from_slice(data);
    }

    fn eof_received(&mut self) -> bool {
        if let Some(t) = &self.transport {
            let _ = t.write(&std::mem::take(&mut self.got));
        }
        false
    }
}

/// 5. Clients write, shut down their write side, and must still get their whole reply.
pub fn half_close(ctx: &Ctx) -> io::Result<Outcome> {
    let clients_n: u64 = ctx.pick(2000, 200);
    let size = 8 * 1024;
    let threads_n = 8;
    let lp = EventLoop::with_backend(ctx.backend)?;
    let server = lp.create_server(
        || AnswerAtEof {
            transport: None,
            got: Vec::new(),
        },
        "127.0.0.1:0",
    )?;
    let addr = server.local_addr()?;
    let finished = Arc::new(AtomicUsize::new(0));
    let threads: Vec<JoinHandle<io::Result<u64>>> = (0..threads_n)
        .map(|t| {
            let finished = finished.clone();
            thread::spawn(move || {
                let result = (|| {
                    let mut whole = 0;
                    for i in (t..clients_n).step_by(threads_n as usize) {
                        let mut stream = client(addr)?;
                        let message = pattern(i, 0, size);
                        stream.write_all(&message)?;
                        stream.shutdown(Shutdown::Write)?;
                        let mut reply = Vec::new();
                        stream.read_to_end(&mut reply)?;
                        if reply != message {
                            return Err(misbehaved(format!(
                                "client {i}: a reply of {} bytes, {} expected{}",
                                reply.len(),
                                message.len(),
                                if reply.len() == message.len() {
                                    ", altered"
                                } else {
                                    ""
                                }
                            )));
                        }
                        whole += 1;
                    }
                    Ok(whole)
                })();
                finished.fetch_add(1, Ordering::Release);
                result
            })
        })
        .collect();
    let ran = spin_until(&lp, "the clients", Duration::from_secs(40), || {
        finished.load(Ordering::Acquire) == threads_n as usize
    });
    let whole = join_all(threads);
    ran?;
    let whole: u64 = whole?.iter().sum();
    check(whole == clients_n, || {
        format!("{whole} of {clients_n} replies whole")
    })?;
    drop(server);
    Ok(Outcome {
        did: "eof_received, then the reply written and flushed before the close".into(),
        figure: format!(
            "{whole}/{clients_n} half-closed clients got their whole {} reply",
            human_bytes(size as i64)
        ),
    })
}

/// What the flooding protocol shares with the probe.
#[derive(Default)]
struct Flood {
    transport: RefCell<Option<Transport>>,
    paused: Cell<bool>,
    pauses: Cell<usize>,
    sent: Cell<u64>,
    peak: Cell<usize>,
    error: RefCell<Option<io::Error>>,
}

struct Flooder(Rc<Flood>);

impl Protocol for Flooder {
    fn connection_made(&mut self, transport: Transport) {
        *self.0.transport.borrow_mut() = Some(transport);
    }

    fn data_received(&mut self, _: &[u8]) {}

    fn pause_writing(&mut self) {
        self.0.paused.set(true);
        self.0.pauses.set(self.0.pauses.get() + 1);
    }

    fn resume_writing(&mut self) {
        self.0.paused.set(false);
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        if let Some(e) = error {
            self.0.error.borrow_mut().get_or_insert(e);
        }
    }
}

/// Write the flood's next chunks while not paused, every millisecond until `total` is sent.
fn pump(lp: &EventLoop, flood: Rc<Flood>, total: u64) {
    const CHUNK: usize = 16 * 1024;
    let transport = flood.transport.borrow().clone();
    if let Some(t) = transport {
        while !flood.paused.get() && flood.sent.get() < total {
            let len = CHUNK.min((total - flood.sent.get()) as usize);
            if let Err(e) = t.write(&pattern(7, flood.sent.get(), len)) {
                flood.error.borrow_mut().get_or_insert(e);
                return;
            }
            flood.sent.set(flood.sent.get() + len as u64);
            flood
                .peak
                .set(flood.peak.get().max(t.get_write_buffer_size()));
        }
    }
    if flood.sent.get() < total {
        let next = flood.clone();
        if let Err(e) = lp.call_later(Duration::from_millis(1), move |lp| pump(lp, next, total)) {
            flood.error.borrow_mut().get_or_insert(e);
        }
    }
}

/// 6. A server writes as fast as it may to a client that does not read for a while, then
///    reads slowly: `pause_writing` must bound the buffer.
pub fn slow_client(ctx: &Ctx) -> io::Result<Outcome> {
    let stall = ctx.pick(Duration::from_secs(2), Duration::from_millis(300));
    let total: u64 = ctx.pick(64 << 20, 8 << 20);
    let lp = EventLoop::with_backend(ctx.backend)?;
    let flood = Rc::new(Flood::default());
    let f = flood.clone();
    let server = lp.create_server(move || Flooder(f.clone()), "127.0.0.1:0")?;
    let addr = server.local_addr()?;
    let rss0 = rss_bytes()?;
    let finished = Arc::new(AtomicBool::new(false));
    let reader = {
        let finished = finished.clone();
        thread::spawn(move || -> io::Result<u64> {
            let result = (|| {
                let mut stream = client(addr)?;
                thread::sleep(stall);
                let mut at = 0u64;
                let mut buf = vec![0u8; 4096];
                while at < total {
                    let n = stream.read(&mut buf)?;
                    if n == 0 {
                        return Err(misbehaved(format!("EOF after {at} of {total} bytes")));
                    }
                    if buf[..n] != pattern(7, at, n)[..] {
                        return Err(misbehaved(format!("bytes from {at} on altered")));
                    }
                    at += n as u64;
                }
                Ok(at)
            })();
            finished.store(true, Ordering::Release);
            result
        })
    };
    spin_until(&lp, "the connection", Duration::from_secs(10), || {
        flood.transport.borrow().is_some()
    })?;
    let (low, high) = flood
        .transport
        .borrow()
        .as_ref()
        .map_or((0, 0), Transport::get_write_buffer_limits);
    pump(&lp, flood.clone(), total);
    let t0 = Instant::now();
    spin_until(&lp, "the stall", stall + Duration::from_secs(5), || {
        t0.elapsed() >= stall.mul_f64(0.9)
    })?;
    let stalled_peak = flood.peak.get();
    let stalled_sent = flood.sent.get();
    let rss_stalled = rss_bytes()?;
    let ran = spin_until(&lp, "the slow reader", Duration::from_secs(40), || {
        finished.load(Ordering::Acquire)
    });
    let read = join_all(vec![reader]);
    ran?;
    let read = read?[0];
    if let Some(e) = flood.error.borrow_mut().take() {
        return Err(misbehaved(format!("the flood failed: {e}")));
    }
    const CHUNK: usize = 16 * 1024;
    check(flood.peak.get() <= high + CHUNK, || {
        format!(
            "{} bytes buffered, above the high-water mark {high} + one write",
            flood.peak.get()
        )
    })?;
    check(flood.pauses.get() >= 1, || {
        "pause_writing never called".into()
    })?;
    check(read == total, || format!("{read} of {total} bytes read"))?;
    drop(server);
    Ok(Outcome {
        did: "pause_writing above the high-water mark, resume_writing at the low one; the \
              protocol's writes stop meanwhile"
            .into(),
        figure: format!(
            "peak buffer {} (high-water {}, low {}) while the client read nothing for {} \
             ({} taken by the kernel meanwhile); {} pauses; RSS {} during the stall; {} \
             delivered intact after",
            human_bytes(stalled_peak.max(flood.peak.get()) as i64),
            human_bytes(high as i64),
            human_bytes(low as i64),
            human_time(stall),
            human_bytes(stalled_sent as i64),
            flood.pauses.get(),
            signed(human_bytes(rss_stalled as i64 - rss0 as i64)),
            human_bytes(read as i64),
        ),
    })
}

fn signed(s: String) -> String {
    if s.starts_with('-') {
        s
    } else {
        format!("+{s}")
    }
}

/// Connect `n` clients to `addr` one after another: the streams and each connect's latency.
fn connect_burst(addr: SocketAddr, n: usize) -> io::Result<(Vec<TcpStream>, Vec<f64>)> {
    let mut streams = Vec::with_capacity(n);
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        streams.push(TcpStream::connect_timeout(&addr, Duration::from_secs(10))?);
        latencies.push(t.elapsed().as_secs_f64());
    }
    Ok((streams, latencies))
}

/// 13. 2,000 connects against a server listening with a backlog of 1,000: first 1,000 while
///     the loop does not run (the kernel's queue must hold them all: under a backlog of 128,
///     the rest wait for a SYN retransmit, 1 s), then the rest from several threads at once
///     while the loop accepts.
pub fn backlog(ctx: &Ctx) -> io::Result<Outcome> {
    // select(2) watches fds below FD_SETSIZE only: 400 each there (still past 128).
    let on_select = ctx.backend == tulip::selectors::Backend::Select;
    let queued: usize = if on_select { 400 } else { 1000 };
    let threads_n = 2;
    let wanted_live: usize = if on_select { 400 } else { ctx.pick(1000, 500) };
    let _ = fd::raise_nofile_limit(2 * (queued + wanted_live) as u64 + 256);
    let (soft, _) = fd::nofile_limit()?;
    let room = (soft.saturating_sub(256) / 2) as usize;
    check(room >= queued, || {
        format!("RLIMIT_NOFILE {soft} leaves room for only {room} connections")
    })?;
    let live = wanted_live.min(room - queued) / threads_n * threads_n;
    let total = queued + live;
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    let lp = EventLoop::with_backend(ctx.backend)?;
    let conns = Rc::new(Conns::default());
    let options = ListenOptions {
        backlog: 1000,
        ..ListenOptions::default()
    };
    let server = lp.create_server_with(echo_factory(&conns), "127.0.0.1:0", options)?;
    let addr = server.local_addr()?;

    // The loop is not running: only the kernel's queue holds these.
    let (first, mut latencies) = connect_burst(addr, queued)?;
    let queued_max = Duration::from_secs_f64(latencies.iter().copied().fold(0.0, f64::max));
    check(queued_max < Duration::from_secs(1), || {
        format!(
            "a queued connect took {queued_max:?}: the backlog of 1,000 did not reach the kernel"
        )
    })?;
    spin_until(&lp, "accepting the queue", Duration::from_secs(20), || {
        conns.made.get() == queued
    })?;

    let start = Arc::new(Barrier::new(threads_n));
    let finished = Arc::new(AtomicUsize::new(0));
    type Burst = (Vec<TcpStream>, Vec<f64>);
    let threads: Vec<JoinHandle<io::Result<Burst>>> = (0..threads_n)
        .map(|_| {
            let (start, finished) = (start.clone(), finished.clone());
            thread::spawn(move || {
                start.wait();
                let result = connect_burst(addr, live / threads_n);
                finished.fetch_add(1, Ordering::Release);
                result
            })
        })
        .collect();
    let accepted = spin_until(&lp, "accepting the burst", Duration::from_secs(40), || {
        conns.made.get() == total && finished.load(Ordering::Acquire) == threads_n
    });
    let bursts = join_all(threads);
    accepted?;
    let bursts = bursts?;
    latencies.extend(bursts.iter().flat_map(|(_, l)| l.iter().copied()));
    latencies.sort_by(f64::total_cmp);
    let max = Duration::from_secs_f64(latencies.last().copied().unwrap_or(0.0));
    let p99 = Duration::from_secs_f64(crate::stats::p99(&latencies).unwrap_or(0.0));
    drop((first, bursts));
    check(max < Duration::from_secs(1), || {
        format!("a connect took {max:?}: a SYN was dropped and retransmitted (accept queue full)")
    })?;
    drop(server);
    let note = match somaxconn {
        Some(cap) if cap < 1000 => format!(" (the kernel caps it at somaxconn {cap})"),
        _ => String::new(),
    };
    let fit = if live < wanted_live {
        format!("; only {total} fit under RLIMIT_NOFILE {soft} (hard limit too low)")
    } else {
        String::new()
    };
    Ok(Outcome {
        did: format!("listen(2) gets the backlog of 1,000{note}; every connection accepted"),
        figure: format!(
            "{}/{total} accepted: {queued} queued while the loop was not running (max connect \
             {}), then {live} from {threads_n} threads while it accepted; connect latency \
             max {}, p99 {} (no 1 s SYN retransmit){fit}",
            conns.made.get(),
            human_time(queued_max),
            human_time(max),
            human_time(p99)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_depends_on_the_stream_and_the_offset() {
        assert_eq!(pattern(3, 10, 5), pattern(3, 0, 15)[10..]);
        assert_ne!(pattern(3, 0, 64), pattern(4, 0, 64));
    }
}
