//! An HTTP/1.1 server written with hyper, run on tulip's loop: tulip accepts the connections
//! and runs a task for each, hyper speaks HTTP on them through futures-io's traits, which
//! tulip's streams implement (cargo feature `futures-io`). No other runtime is involved.
//!
//! ```text
//! cargo run --example hyper_server --features futures-io -- [ADDR] [BACKEND]
//! curl http://127.0.0.1:PORT/
//! curl --data-binary 'echo me' http://127.0.0.1:PORT/echo
//! ```
//! ADDR defaults to `TULIP_HYPER_ADDR`, else 127.0.0.1:0 (a free port; the address is printed
//! first thing); BACKEND (select, poll, epoll, kqueue, uring) to `TULIP_BACKEND`, else the
//! best one of this OS.
//!
//! `GET /` answers a greeting, `POST /echo` answers its request body (up to [`MAX_ECHO`]
//! bytes), anything else 404. Connections are kept alive between requests.
//!
//! hyper does not use futures-io's traits but its own (`hyper::rt::Read` / `Write`):
//! [`FuturesIo`] below is the adapter, generic over any futures-io reader and writer.
//! `tests/hyper_curl.rs` includes this file and runs [`start`] against `curl`.

use std::cell::Cell;
use std::convert::Infallible;
use std::io::{self, Write as _};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_io::{AsyncBufRead, AsyncWrite};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::rt::ReadBufCursor;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use tulip::streams::{start_server, StreamReader, StreamWriter};
use tulip::{EventLoop, Server};

/// hyper's I/O traits on top of futures-io's: a reader ([`AsyncBufRead`]) and a writer
/// ([`AsyncWrite`]), e.g. tulip's [`StreamReader`] and [`StreamWriter`] (a plain `AsyncRead`
/// gets `AsyncBufRead` from futures' `BufReader`). Reading from the buffered reader copies
/// once, straight into hyper's buffer, without `unsafe`.
pub struct FuturesIo<R, W> {
    reader: R,
    writer: W,
}

impl<R, W> FuturesIo<R, W> {
    pub fn new(reader: R, writer: W) -> FuturesIo<R, W> {
        FuturesIo { reader, writer }
    }
}

impl<R: AsyncBufRead + Unpin, W: Unpin> hyper::rt::Read for FuturesIo<R, W> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let mut reader = Pin::new(&mut self.get_mut().reader);
        // Nothing put in `buf` means the end of stream to hyper, as an empty fill does here.
        let available = ready!(reader.as_mut().poll_fill_buf(cx))?;
        let n = available.len().min(buf.remaining());
        buf.put_slice(&available[..n]);
        reader.consume(n);
        Poll::Ready(Ok(()))
    }
}

impl<R: Unpin, W: AsyncWrite + Unpin> hyper::rt::Write for FuturesIo<R, W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().writer).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_flush(cx)
    }

    /// futures-io's `poll_close`: the buffered bytes go out, then the end of stream.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_close(cx)
    }
}

/// What `GET /` answers.
pub const GREETING: &str = "Hello from hyper on tulip!\n";

/// The largest body `POST /echo` takes; a larger one is answered 413.
pub const MAX_ECHO: usize = 16 * 1024 * 1024;

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

/// The service: one request in, one response out.
async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match (request.method(), request.uri().path()) {
        (&Method::GET, "/") => text(StatusCode::OK, GREETING),
        (&Method::POST, "/echo") => {
            match Limited::new(request.into_body(), MAX_ECHO).collect().await {
                Ok(body) => Response::new(Full::new(body.to_bytes())),
                Err(_) => text(StatusCode::PAYLOAD_TOO_LARGE, "too large or cut short\n"),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    })
}

/// One connection, from its first request to its end: hyper's HTTP/1.1 state machine
/// (keep-alive included) over the tulip streams, in the connection's own tulip task.
async fn serve_connection(reader: StreamReader, writer: StreamWriter) -> Result<(), hyper::Error> {
    http1::Builder::new()
        .serve_connection(FuturesIo::new(reader, writer), service_fn(answer))
        .await
}

/// Listen on `addr` on the running loop, serving each connection in a task of its own; the
/// counter tells how many connections were accepted. A connection's failure (hyper's error)
/// goes to the loop's exception handler.
pub async fn start(addr: &str) -> io::Result<(Server, Rc<Cell<usize>>)> {
    let accepted = Rc::new(Cell::new(0));
    let counter = Rc::clone(&accepted);
    let server = start_server(
        move |reader, writer| {
            counter.set(counter.get() + 1);
            serve_connection(reader, writer)
        },
        addr,
    )
    .await?;
    Ok((server, accepted))
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .or_else(|| std::env::var("TULIP_HYPER_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let lp = match args.next() {
        Some(backend) => EventLoop::with_backend(backend.parse()?)?,
        None => EventLoop::new()?,
    };
    lp.run_until_complete(async move {
        let (server, _accepted) = start(&addr).await?;
        println!("http://{}/", server.local_addr()?);
        eprintln!("backend: {}", tulip::get_running_loop()?.backend());
        io::stdout().flush()?;
        server.serve_forever().await
    })?
}
