//! The echo server on tokio's current-thread runtime, written as tokio's own echo example is:
//! a task per connection (`tokio::spawn`; everything here is `Send`, so no `LocalSet` is
//! needed), each reading into a 16 KiB buffer and `write_all`-ing what it got.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::runtime::Builder;

/// Serve echo on `addr` until killed.
///
/// # Errors
/// Those of building the runtime, binding `addr` and accepting.
pub fn serve(addr: SocketAddr) -> io::Result<()> {
    let runtime = Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        loop {
            let (mut stream, _peer) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
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
            });
        }
    })
}
