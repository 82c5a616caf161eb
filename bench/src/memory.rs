//! Memory per pending timer, per idle task and per idle connection, measured with the counting
//! global allocator of this binary ([`tulip_sys::alloc_count`]): the bytes the measuring
//! thread holds after creating N of them, less those before, over N; and what malloc holds for
//! them (on glibc each allocation's chunk: its usable size and an 8-byte header, at least 32
//! bytes, in steps of 16), as `chunk_bytes`. Growth of the loop's own
//! tables (the timer heap, the fd table) is included, as it is part of what N of them cost.
//!
//! Connections: the server runs on this thread, a client thread connects N clients one after
//! the other and has each make one 1-byte round trip, so that every connection has been
//! accepted and has run once (its task started, its buffer allocated); then the server's
//! thread measures, with the N connections idle. Kernel memory (socket buffers) is not counted:
//! only what the process holds.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tulip::selectors::alloc_count::{allocations, live_bytes, live_chunk_bytes};
use tulip::selectors::Backend;
use tulip::{EventLoop, Protocol, Transport};

/// One measured footprint.
#[derive(Clone, Debug, PartialEq)]
pub struct Footprint {
    /// What one of the N is ("pending timer", "idle task", …).
    pub what: &'static str,
    /// Which runtime or style.
    pub who: &'static str,
    /// How many were created.
    pub n: usize,
    /// Live bytes per one (as asked of the allocator).
    pub bytes: f64,
    /// What malloc holds for them, per one (its chunks, on glibc).
    pub chunk_bytes: f64,
    /// Allocations made per one while creating them.
    pub allocations: f64,
}

/// Bytes and allocations per one of the `n` made by `make`, on this thread.
fn per_one<T>(
    what: &'static str,
    who: &'static str,
    n: usize,
    make: impl FnOnce() -> io::Result<T>,
) -> io::Result<(Footprint, T)> {
    tulip_sys::alloc_count::enable();
    let (bytes, chunks, count) = (live_bytes(), live_chunk_bytes(), allocations());
    let kept = make()?;
    let footprint = Footprint {
        what,
        who,
        n,
        bytes: (live_bytes() - bytes) as f64 / n.max(1) as f64,
        chunk_bytes: (live_chunk_bytes() - chunks) as f64 / n.max(1) as f64,
        allocations: (allocations() - count) as f64 / n.max(1) as f64,
    };
    Ok((footprint, kept))
}

/// `n` timers pending on a tulip loop (`call_later` an hour away, the handles kept).
///
/// # Errors
/// The loop's.
pub fn tulip_timers(n: usize) -> io::Result<Footprint> {
    let lp = EventLoop::with_backend(Backend::best())?;
    let mut handles = Vec::with_capacity(n);
    let (footprint, ()) = per_one("pending timer", "tulip", n, || {
        for i in 0..n {
            handles.push(lp.call_later(Duration::from_secs(3600 + i as u64), |_| {})?);
        }
        Ok(())
    })?;
    handles.iter().for_each(|h| {
        h.cancel();
    });
    Ok(footprint)
}

/// `n` tokio sleeps pending on a current-thread runtime (each a pinned `Sleep` in a task).
///
/// # Errors
/// Building the runtime.
pub fn tokio_timers(n: usize) -> io::Result<Footprint> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let mut sleeps = Vec::with_capacity(n);
    let (footprint, ()) = per_one("pending timer", "tokio", n, || {
        runtime.block_on(async {
            for i in 0..n {
                let mut sleep = Box::pin(tokio::time::sleep(Duration::from_secs(3600 + i as u64)));
                // Polled once, so that it is registered with the timer wheel.
                let _ = futures_poll_once(sleep.as_mut()).await;
                sleeps.push(sleep);
            }
        });
        Ok(())
    })?;
    Ok(footprint)
}

/// Poll `future` once and return whether it was ready.
async fn futures_poll_once<F: std::future::Future + ?Sized>(
    mut future: std::pin::Pin<&mut F>,
) -> bool {
    std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx).is_ready())).await
}

/// `n` tulip tasks spawned and parked forever (on a future that never completes).
///
/// # Errors
/// The loop's.
pub fn tulip_tasks(n: usize) -> io::Result<Footprint> {
    let lp = EventLoop::with_backend(Backend::best())?;
    lp.run_until_complete(async move {
        let mut tasks = Vec::with_capacity(n);
        let (footprint, ()) = per_one("idle task", "tulip", n, || {
            for _ in 0..n {
                tasks.push(tulip::spawn(std::future::pending::<()>())?);
            }
            Ok(())
        })?;
        // Let each run once and park, then measure again: what an idle task holds.
        let before_run = (live_bytes(), live_chunk_bytes());
        tulip::yield_now().await;
        let after_run = (
            live_bytes() - before_run.0,
            live_chunk_bytes() - before_run.1,
        );
        tasks.iter().for_each(|t| {
            t.cancel();
        });
        io::Result::Ok(Footprint {
            bytes: footprint.bytes + after_run.0 as f64 / n.max(1) as f64,
            chunk_bytes: footprint.chunk_bytes + after_run.1 as f64 / n.max(1) as f64,
            ..footprint
        })
    })?
}

/// `n` tokio tasks spawned (`spawn_local`) and parked forever.
///
/// # Errors
/// Building the runtime.
pub fn tokio_tasks(n: usize) -> io::Result<Footprint> {
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let mut tasks = Vec::with_capacity(n);
        let (footprint, ()) = per_one("idle task", "tokio", n, || {
            for _ in 0..n {
                tasks.push(tokio::task::spawn_local(std::future::pending::<()>()));
            }
            Ok(())
        })?;
        let before_run = (live_bytes(), live_chunk_bytes());
        tokio::task::yield_now().await;
        let after_run = (
            live_bytes() - before_run.0,
            live_chunk_bytes() - before_run.1,
        );
        tasks.iter().for_each(tokio::task::JoinHandle::abort);
        io::Result::Ok(Footprint {
            bytes: footprint.bytes + after_run.0 as f64 / n.max(1) as f64,
            chunk_bytes: footprint.chunk_bytes + after_run.1 as f64 / n.max(1) as f64,
            ..footprint
        })
    })
}

/// The style of a tulip echo server whose idle connections are measured.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Style {
    /// A `Protocol` per connection.
    Protocol,
    /// A task per connection holding a 16 KiB buffer (as the `echo` bench's server and
    /// tokio's example).
    CoroutineBuffer,
    /// A task per connection that waits for readability holding nothing, then reads into the
    /// loop's shared buffer and writes from it (`examples/echo_server.rs`).
    CoroutineLean,
}

impl Style {
    /// The name in the report.
    pub const fn name(self) -> &'static str {
        match self {
            Style::Protocol => "tulip protocol",
            Style::CoroutineBuffer => "tulip coroutine, 16 KiB buffer",
            Style::CoroutineLean => "tulip coroutine, readable() + shared buffer",
        }
    }
}

/// Connect `n` clients to `addr` one by one, a 1-byte round trip each, once `start` is set;
/// set `done`, then keep them open until `release` is set.
fn clients(
    addr: SocketAddr,
    n: usize,
    start: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
) -> std::thread::JoinHandle<io::Result<()>> {
    std::thread::spawn(move || {
        while !start.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut streams = Vec::with_capacity(n);
        let result = (|| {
            for _ in 0..n {
                let mut s = StdStream::connect(addr)?;
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                s.write_all(b"x")?;
                let mut b = [0u8; 1];
                s.read_exact(&mut b)?;
                streams.push(s);
            }
            Ok(())
        })();
        done.store(true, Ordering::Release);
        while result.is_ok() && !release.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        result
    })
}

/// The flags shared with the client thread.
#[derive(Clone, Default)]
struct Flags {
    start: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
}

/// A free port on 127.0.0.1 (bound, then closed).
fn free_addr() -> io::Result<SocketAddr> {
    StdListener::bind("127.0.0.1:0")?.local_addr()
}

/// Bytes per idle connection of a tulip echo server in `style`, with `n` connections.
///
/// # Errors
/// The loop's and the sockets'.
pub fn tulip_connections(style: Style, n: usize) -> io::Result<Footprint> {
    let lp = EventLoop::with_backend(Backend::best())?;
    let addr = free_addr()?;
    let flags = Flags::default();
    let client = clients(
        addr,
        n,
        flags.start.clone(),
        flags.done.clone(),
        flags.release.clone(),
    );
    let _server = match style {
        Style::Protocol => Some(lp.create_server(Echo::default, addr)?),
        _ => None,
    };
    let f = flags.clone();
    let result = lp.run_until_complete(async move {
        if style != Style::Protocol {
            let listener = tulip::net::TcpListener::bind(addr)?;
            tulip::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    let _ = match style {
                        Style::CoroutineLean => tulip::spawn(echo_lean(stream)).map(drop),
                        _ => tulip::spawn(echo_buffered(stream)).map(drop),
                    };
                }
            })?;
        }
        tulip::yield_now().await;
        tulip_sys::alloc_count::enable();
        let before = (live_bytes(), allocations(), live_chunk_bytes());
        f.start.store(true, Ordering::Release);
        while !f.done.load(Ordering::Acquire) {
            tulip::sleep(Duration::from_millis(1)).await?;
        }
        // The last round trip's write may still be in the loop's hands for a moment.
        tulip::sleep(Duration::from_millis(5)).await?;
        let footprint = Footprint {
            what: "idle connection",
            who: style.name(),
            n,
            bytes: (live_bytes() - before.0) as f64 / n.max(1) as f64,
            chunk_bytes: (live_chunk_bytes() - before.2) as f64 / n.max(1) as f64,
            allocations: (allocations() - before.1) as f64 / n.max(1) as f64,
        };
        f.release.store(true, Ordering::Release);
        io::Result::Ok(footprint)
    });
    flags.start.store(true, Ordering::Release);
    flags.release.store(true, Ordering::Release);
    client
        .join()
        .map_err(|_| io::Error::other("the client thread panicked"))??;
    result?
}

/// Bytes per idle connection of tokio's echo server (a task per connection, 16 KiB buffer),
/// with `n` connections.
///
/// # Errors
/// The runtime's and the sockets'.
pub fn tokio_connections(n: usize) -> io::Result<Footprint> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let addr = free_addr()?;
    let flags = Flags::default();
    let client = clients(
        addr,
        n,
        flags.start.clone(),
        flags.done.clone(),
        flags.release.clone(),
    );
    let f = flags.clone();
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n @ 1..) = stream.read(&mut buf).await {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        tokio::task::yield_now().await;
        tulip_sys::alloc_count::enable();
        let before = (live_bytes(), allocations(), live_chunk_bytes());
        f.start.store(true, Ordering::Release);
        while !f.done.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let footprint = Footprint {
            what: "idle connection",
            who: "tokio, 16 KiB buffer",
            n,
            bytes: (live_bytes() - before.0) as f64 / n.max(1) as f64,
            chunk_bytes: (live_chunk_bytes() - before.2) as f64 / n.max(1) as f64,
            allocations: (allocations() - before.1) as f64 / n.max(1) as f64,
        };
        f.release.store(true, Ordering::Release);
        io::Result::Ok(footprint)
    });
    flags.start.store(true, Ordering::Release);
    flags.release.store(true, Ordering::Release);
    client
        .join()
        .map_err(|_| io::Error::other("the client thread panicked"))??;
    result
}

/// The coroutine echo of the `echo` bench: a 16 KiB buffer for the connection's life.
async fn echo_buffered(stream: tulip::net::TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n @ 1..) = stream.read(&mut buf).await {
        if stream.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

thread_local! {
    /// The loop thread's read buffer, shared by every connection: a connection only uses it
    /// between a readiness and the write that follows, with no await in between.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 16 * 1024]);
}

/// The lean coroutine echo (as `examples/echo_server.rs`): idle, it holds no buffer. It waits
/// for readability, reads into the shared buffer and writes from it at once; only what the
/// kernel does not take is copied into a buffer of its own, held until it is written.
pub async fn echo_lean(stream: tulip::net::TcpStream) -> io::Result<()> {
    loop {
        stream.readable().await?;
        let rest = SCRATCH.with_borrow_mut(|buf| -> io::Result<Option<Vec<u8>>> {
            let n = match stream.try_read(buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            };
            let written = match stream.try_write(&buf[..n]) {
                Ok(w) => w,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            };
            Ok((written < n).then(|| buf[written..n].to_vec()))
        });
        match rest {
            Ok(Some(rest)) => stream.write_all(&rest).await?,
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// The protocol-style echo (as `examples/echo_protocol.rs`).
#[derive(Default)]
pub struct Echo {
    transport: Option<Transport>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        if let Some(transport) = &self.transport {
            let _ = transport.write(data);
        }
    }

    fn pause_writing(&mut self) {
        if let Some(transport) = &self.transport {
            transport.pause_reading();
        }
    }

    fn resume_writing(&mut self) {
        if let Some(transport) = &self.transport {
            transport.resume_reading();
        }
    }
}

/// The Markdown table of `footprints`, with the target of each kind.
pub fn markdown(footprints: &[Footprint]) -> String {
    let mut out = String::from(
        "| per | runtime / style | N | bytes each | malloc chunks each | allocations each | target |\n|---|---|--:|--:|--:|--:|---|\n",
    );
    for f in footprints {
        let target = match f.what {
            "pending timer" if f.who == "tulip" => verdict(f.bytes, 64.0, "≤ 64 B"),
            "idle connection" if f.who.starts_with("tulip") => verdict(f.bytes, 1024.0, "≤ 1 KiB"),
            _ => "–".to_string(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.2} | {} |\n",
            f.what, f.who, f.n, f.bytes, f.chunk_bytes, f.allocations, target
        ));
    }
    out
}

fn verdict(value: f64, target: f64, says: &str) -> String {
    if value <= target {
        format!("{says}: met")
    } else {
        format!("{says}: not met ({:.2}×)", value / target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footprints_are_measured_and_small_for_small_n() {
        let t = tulip_timers(100).unwrap();
        assert!(t.bytes > 0.0 && t.bytes < 10_000.0, "{t:?}");
        // malloc holds at least what was asked of it (on glibc, more: its chunk headers).
        assert!(t.chunk_bytes >= t.bytes, "{t:?}");
        let c = tulip_connections(Style::CoroutineLean, 20).unwrap();
        assert!(c.bytes > 0.0, "{c:?}");
        assert!(markdown(&[t, c]).contains("pending timer"));
    }
}
