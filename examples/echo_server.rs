//! An echo server in the coroutine style: one task per connection, awaiting reads and writes.
//!
//! ```text
//! cargo run --release --example echo_server -- [ADDR] [BACKEND]
//! ```
//! ADDR defaults to 127.0.0.1:8888; BACKEND (select, poll, epoll, kqueue, uring) to
//! `TULIP_BACKEND`, else the best one of this OS. Try it with `cargo run --example echo_client`.

use std::io;

use tulip::net::{TcpListener, TcpStream};
use tulip::EventLoop;

async fn echo(stream: TcpStream) -> io::Result<()> {
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(()); // the client closed its end
        }
        // Waits while the client does not read: the server never buffers more than `buf`.
        stream.write_all(&buf[..n]).await?;
    }
}

async fn serve(addr: String) -> io::Result<()> {
    let listener = TcpListener::bind(addr.as_str())?;
    println!("echo server on {}", listener.local_addr()?);
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                stream.set_nodelay(true)?;
                tulip::spawn(async move {
                    // A reset or a broken pipe ends this connection only.
                    if let Err(e) = echo(stream).await {
                        eprintln!("connection ended: {e}");
                    }
                })?;
            }
            // Out of fds: `accept` rests a moment before trying again, so neither spin nor stop.
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8888".into());
    let lp = match args.next() {
        Some(backend) => EventLoop::with_backend(backend.parse()?)?,
        None => EventLoop::new()?,
    };
    println!("backend: {}", lp.backend());
    lp.run_until_complete(serve(addr))?
}
