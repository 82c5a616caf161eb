//! Tulip's callback style: protocols and transports, asyncio's `Protocol` and `Transport`.
//!
//! A [`Protocol`] is told what happens on a connection (`connection_made`, `data_received`,
//! `eof_received`, `connection_lost`, and `pause_writing` / `resume_writing` for flow
//! control); it acts through its [`Transport`] (`write`, `close`, `pause_reading`, ...).
//! [`create_server`](crate::EventLoop::create_server) accepts connections, each with a
//! protocol from a factory; [`create_connection`](crate::EventLoop::create_connection) makes
//! one. Unix stream sockets have the same pair (`create_unix_server`,
//! `create_unix_connection`); either end's [`Address`] is TCP's or the Unix socket's, as the
//! kernel reports it.
//!
//! Each connection is driven by a task of its own, which owns it; transports are weak
//! handles, so protocols keep them without forming cycles, and closing the loop frees every
//! connection. Reading goes through one 64 KiB buffer per thread, shared by every connection.
//!
//! An echo server and a client of it, in one run:
//!
//! ```
//! use std::io;
//! use tulip::{EventLoop, Protocol, Transport};
//!
//! /// Sends back what it receives.
//! struct Echo(Option<Transport>);
//!
//! impl Protocol for Echo {
//!     fn connection_made(&mut self, transport: Transport) {
//!         self.0 = Some(transport);
//!     }
//!
//!     fn data_received(&mut self, data: &[u8]) {
//!         if let Some(transport) = &self.0 {
//!             // Refused only after write_eof or close, which this protocol never calls.
//!             let _ = transport.write(data);
//!         }
//!     }
//! }
//!
//! /// Says hello, and closes once it has heard it back.
//! struct Client {
//!     transport: Option<Transport>,
//!     heard: Vec<u8>,
//!     done: tulip::Future<Vec<u8>>,
//! }
//!
//! impl Protocol for Client {
//!     fn connection_made(&mut self, transport: Transport) {
//!         transport.write(b"hello").expect("a transport just made takes writes");
//!         self.transport = Some(transport);
//!     }
//!
//!     fn data_received(&mut self, data: &[u8]) {
//!         self.heard.extend_from_slice(data);
//!         if self.heard.len() == 5 {
//!             self.transport.as_ref().map(Transport::close);
//!         }
//!     }
//!
//!     fn connection_lost(&mut self, _error: Option<io::Error>) {
//!         let _ = self.done.set_result(std::mem::take(&mut self.heard));
//!     }
//! }
//!
//! let lp = EventLoop::new()?;
//! let server = lp.create_server(|| Echo(None), "127.0.0.1:0")?;
//! let addr = server.local_addr()?;
//! let heard = lp.run_until_complete(async move {
//!     let lp = tulip::get_running_loop()?;
//!     let done = lp.create_future();
//!     let heard = done.clone();
//!     let client = || Client { transport: None, heard: Vec::new(), done };
//!     lp.create_connection(client, addr).await?;
//!     heard.await
//! })??;
//! assert_eq!(heard, b"hello");
//! server.close();
//! # Ok::<(), io::Error>(())
//! ```

mod address;
mod connect;
mod connection;
mod datagram;
mod driver;
mod pipe;
mod protocol;
mod sendfile;
mod server;
mod socket;

pub use address::Address;
pub use connect::AcceptedSocket;
pub use connection::Transport;
pub use datagram::{
    DatagramAddress, DatagramOptions, DatagramProtocol, DatagramTransport, UnixDatagramOptions,
};
pub use protocol::{Buffered, BufferedProtocol, Protocol};
pub use server::Server;
