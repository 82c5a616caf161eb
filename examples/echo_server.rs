//! An echo server in the coroutine style: one task per connection, awaiting reads and writes.
//!
//! ```text
//! cargo run --release --example echo_server -- [ADDR] [BACKEND]
//! ```
//! ADDR defaults to 127.0.0.1:8888; BACKEND (select, poll, epoll, kqueue, uring) to
//! `TULIP_BACKEND`, else the best one of this OS. Try it with `cargo run --example echo_client`.
//!
//! An idle connection holds no buffer: its task waits for readability first, then reads into
//! one buffer shared by every connection of the loop's thread and writes from it straight away
//! (no await in between, so no other task can be using it). Only what the kernel does not take
//! at once is copied into a buffer of the connection's own, held until it is written. A task
//! that kept a 64 KiB `vec!` across `read(..).await` held 64 KiB per idle connection instead;
//! see the README's "Memory" figures (`tulip-bench echo`).

use std::cell::RefCell;
use std::io;

use tulip::net::{TcpListener, TcpStream};
use tulip::EventLoop;

thread_local! {
    /// The read buffer of every connection on this thread's loop.
    static SHARED: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 * 1024]);
}

async fn echo(stream: TcpStream) -> io::Result<()> {
    loop {
        // Idle here, holding nothing but the stream.
        stream.readable().await?;
        let rest = SHARED.with_borrow_mut(|buf| -> io::Result<Option<Vec<u8>>> {
            let n = match stream.try_read(buf) {
                Ok(n) => n,
                // Readiness can be spurious: wait again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Some(Vec::new())),
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Ok(None); // the client closed its end
            }
            let written = match stream.try_write(&buf[..n]) {
                Ok(w) => w,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            };
            Ok(Some(buf[written..n].to_vec()))
        })?;
        match rest {
            None => return Ok(()),
            // Waits while the client does not read: the server never buffers more than one
            // read's worth per connection.
            Some(rest) if !rest.is_empty() => stream.write_all(&rest).await?,
            Some(_) => {}
        }
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
