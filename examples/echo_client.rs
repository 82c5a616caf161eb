//! An echo client: checks an echo server with payloads from 1 B to 4 MiB, then runs 10
//! connections doing 64-byte round trips for a second and prints the rate.
//!
//! ```text
//! cargo run --release --example echo_server &
//! cargo run --release --example echo_client -- [ADDR] [BACKEND]
//! ```
//! ADDR defaults to 127.0.0.1:8888; BACKEND (select, poll, epoll, kqueue, uring) to
//! `TULIP_BACKEND`, else the best one of this OS. Works against `echo_protocol` too.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tulip::net::TcpStream;
use tulip::EventLoop;

/// Send `payload` on a new connection and read it back. The writing runs in a task of its
/// own while this one reads: a large payload would otherwise fill both ends' socket buffers
/// and wait forever.
async fn round_trip(addr: SocketAddr, payload: Vec<u8>) -> io::Result<()> {
    let (reader, writer) = TcpStream::connect(addr).await?.into_split();
    let expected = payload.clone();
    let sending = tulip::spawn(async move { writer.write_all(&payload).await })?;
    let mut echoed = vec![0; expected.len()];
    reader.read_exact(&mut echoed).await?;
    sending.await??;
    if echoed != expected {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the echo differs",
        ));
    }
    Ok(())
}

async fn check_sizes(addr: SocketAddr) -> io::Result<()> {
    for size in [1, 1024, 64 * 1024, 1024 * 1024, 4 * 1024 * 1024] {
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        round_trip(addr, payload).await?;
        println!("echoed {size} bytes");
    }
    Ok(())
}

async fn measure(addr: SocketAddr, connections: usize, duration: Duration) -> io::Result<u64> {
    let done = Rc::new(Cell::new(0u64));
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let done = Rc::clone(&done);
        tasks.push(tulip::spawn(async move {
            let message = [7u8; 64];
            let mut echoed = [0u8; 64];
            while Instant::now() < deadline {
                stream.write_all(&message).await?;
                stream.read_exact(&mut echoed).await?;
                done.set(done.get() + 1);
            }
            Ok::<(), io::Error>(())
        })?);
    }
    for task in tasks {
        task.await??;
    }
    Ok(done.get())
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8888".into());
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
    let lp = match args.next() {
        Some(backend) => EventLoop::with_backend(backend.parse()?)?,
        None => EventLoop::new()?,
    };
    lp.run_until_complete(async move {
        check_sizes(addr).await?;
        let second = Duration::from_secs(1);
        let trips = measure(addr, 10, second).await?;
        println!(
            "{trips} round trips/s over 10 connections ({} backend)",
            tulip::get_running_loop()?.backend()
        );
        Ok::<(), io::Error>(())
    })?
}
