//! An HTTP/1.1 "Hello, world!" server with keep-alive, in the coroutine style: enough HTTP to
//! answer `wrk` and `curl` (GET requests without a body, pipelined or not).
//!
//! ```text
//! cargo run --release --example http_hello -- [ADDR] [BACKEND]
//! wrk -c 50 -d 5 http://127.0.0.1:8080/
//! ```
//! ADDR defaults to 127.0.0.1:8080; BACKEND (select, poll, epoll, kqueue, uring) to
//! `TULIP_BACKEND`, else the best one of this OS.

use std::io;

use tulip::net::{TcpListener, TcpStream};
use tulip::EventLoop;

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: text/plain\r\n\
Content-Length: 13\r\n\
\r\n\
Hello, world!";

/// Requests bigger than this are refused: the connection is closed.
const MAX_REQUEST: usize = 16 * 1024;

/// Where the head of the first complete request in `buf` ends (after its blank line).
fn request_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Whether the request head asks to close the connection after the response.
fn wants_close(head: &[u8]) -> bool {
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    let http10 = head.contains(" http/1.0\r\n");
    head.contains("\r\nconnection: close") || http10 && !head.contains("\r\nconnection: keep-alive")
}

async fn serve_connection(stream: TcpStream) -> io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut out = Vec::new();
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        // Answer every complete request in the buffer (pipelining) with one write.
        let mut close = false;
        while let Some(end) = request_end(&buf) {
            close |= wants_close(&buf[..end]);
            out.extend_from_slice(RESPONSE);
            buf.drain(..end);
        }
        stream.write_all(&out).await?;
        out.clear();
        if close || buf.len() > MAX_REQUEST {
            return Ok(());
        }
    }
}

async fn serve(addr: String) -> io::Result<()> {
    let listener = TcpListener::bind(addr.as_str())?;
    println!("http://{}/", listener.local_addr()?);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                stream.set_nodelay(true)?;
                tulip::spawn(async move {
                    let _ = serve_connection(stream).await;
                })?;
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let lp = match args.next() {
        Some(backend) => EventLoop::with_backend(backend.parse()?)?,
        None => EventLoop::new()?,
    };
    println!("backend: {}", lp.backend());
    lp.run_until_complete(serve(addr))?
}
