//! The echo servers on tulip's `EventLoop`. Coroutine style ([`serve`]): a task per
//! connection (`tulip::spawn`, detached by dropping its handle), each reading into a 16 KiB
//! buffer and `write_all`-ing what it got, as tokio's server does. Protocol style
//! ([`serve_protocol`]): `create_server` with the echo `Protocol` of
//! `examples/echo_protocol.rs`.

use std::io;
use std::net::SocketAddr;

use tulip::net::{TcpListener, TcpStream};
use tulip::selectors::Backend;
use tulip::EventLoop;

/// Serve echo on `addr` with a loop on `backend` until killed.
///
/// # Errors
/// Those of the loop, of binding `addr` and of accepting.
pub fn serve(addr: SocketAddr, backend: Backend) -> io::Result<()> {
    let lp = EventLoop::with_backend(backend)?;
    lp.run_until_complete(accept_forever(addr))?
}

/// Serve echo on `addr` in the protocol style with a loop on `backend` until killed.
///
/// # Errors
/// Those of the loop and of binding `addr`.
pub fn serve_protocol(addr: SocketAddr, backend: Backend) -> io::Result<()> {
    let lp = EventLoop::with_backend(backend)?;
    let _server = lp.create_server(crate::memory::Echo::default, addr)?;
    lp.run_forever()
}

async fn accept_forever(addr: SocketAddr) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    loop {
        let (stream, _peer) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tulip::spawn(echo(stream))?;
    }
}

/// Echo until the peer closes or an error; either ends only this connection.
async fn echo(stream: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}
