//! An echo server in Tulip's callback style: a `Protocol` per connection, fed by its
//! `Transport`, with flow control (a client that does not read pauses the reading of its own
//! connection, so the server's buffer for it stays under the high-water mark).
//!
//! ```text
//! cargo run --release --example echo_protocol -- [ADDR] [BACKEND]
//! ```
//! ADDR defaults to 127.0.0.1:8888; BACKEND (select, poll, epoll, kqueue, uring) to
//! `TULIP_BACKEND`, else the best one of this OS. Try it with `cargo run --example echo_client`.

use std::io;

use tulip::{EventLoop, Protocol, Transport};

#[derive(Default)]
struct Echo {
    transport: Option<Transport>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        if let Some(transport) = &self.transport {
            // Sends at once what the kernel takes, buffers the rest. Refused (`BrokenPipe`)
            // only after `write_eof` or `close`, which this protocol never calls.
            let _ = transport.write(data);
        }
    }

    // The write buffer passed the high-water mark: stop reading until it drains.
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

    fn connection_lost(&mut self, error: Option<io::Error>) {
        if let Some(e) = error {
            eprintln!("connection lost: {e}"); // a reset ends this connection only
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
    let server = lp.create_server(Echo::default, addr.as_str())?;
    println!(
        "echo server on {} ({} backend)",
        server.local_addr()?,
        lp.backend()
    );
    lp.run_forever()
}
