//! Datagrams on every backend: `UnixDatagram` (a pair, bound sockets with `send_to` /
//! `recv_from`, an unbound sender, `connect`, the `try_` methods and their `WouldBlock`, a
//! datagram cut to the buffer, a dropped socket's file left behind), and the loop's
//! `sock_recvfrom` / `sock_sendto` on std UDP sockets; `create_datagram_endpoint` with a
//! `DatagramProtocol` (an echo round trip, a connected endpoint's rules, `error_received` for
//! an ICMP refusal, `close` and `abort` ending in `connection_lost`, bad options).

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::path::PathBuf;

use tulip::net::{Endpoint, UnixDatagram};
use tulip::selectors::Backend;
use tulip::{get_running_loop, spawn, DatagramOptions, DatagramProtocol, DatagramTransport};

#[macro_use]
#[path = "support/per_backend.rs"]
mod per_backend;

#[path = "support/loop_test.rs"]
mod loop_test;
use loop_test::*;

/// A fresh socket path for `what` on backend `b`, in a directory of this process.
fn socket_path(what: &str, b: Backend) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tulip-dgram-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let path = dir.join(format!("{what}-{b:?}.sock"));
    let _ = std::fs::remove_file(&path);
    path
}

/// A datagram protocol that records everything, and echoes if told to.
#[derive(Default)]
struct Recorder {
    transport: Option<DatagramTransport>,
    echo: bool,
    received: Vec<(Vec<u8>, SocketAddr)>,
    errors: Vec<ErrorKind>,
    lost: Vec<Option<ErrorKind>>,
}

impl DatagramProtocol for Recorder {
    fn connection_made(&mut self, transport: DatagramTransport) {
        self.transport = Some(transport);
    }

    fn datagram_received(&mut self, data: &[u8], addr: SocketAddr) {
        if self.echo {
            let transport = self.transport.as_ref().expect("connection_made came first");
            transport
                .sendto(data, Some(addr))
                .expect("an open endpoint sends");
        }
        self.received.push((data.to_vec(), addr));
    }

    fn error_received(&mut self, error: io::Error) {
        self.errors.push(error.kind());
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.lost.push(error.map(|e| e.kind()));
    }
}

fn local(addr: &str) -> DatagramOptions {
    DatagramOptions {
        local_addr: Some(addr.parse().unwrap()),
        ..DatagramOptions::default()
    }
}

per_backend! {
    /// An echo endpoint and a client endpoint connected to it (by name): a round trip, the
    /// addresses each sees; `sendto` rules of a connected endpoint; `close` ends both with
    /// `connection_lost(None)`, after which `sendto` is refused.
    fn datagram_endpoint_round_trip(b: Backend) {
        let lp = new_loop(b);
        run_test(&lp, async {
            let lp = get_running_loop()?;
            let echo = || Recorder { echo: true, ..Recorder::default() };
            let (server, served) = lp.create_datagram_endpoint(echo, local("127.0.0.1:0")).await?;
            let server_addr = server.local_addr().expect("bound");
            assert_eq!(server.peer_addr(), None);
            let options = DatagramOptions {
                remote_addr: Some(Endpoint::from(("localhost", server_addr.port()))),
                ..DatagramOptions::default()
            };
            let (client, seen) = lp.create_datagram_endpoint(Recorder::default, options).await?;
            assert_eq!(client.peer_addr(), Some(server_addr));
            let client_addr = client.local_addr().expect("bound");
            client.sendto(b"ping", None)?;
            client.sendto(b"pong", Some(server_addr))?;
            let e = client.sendto(b"x", Some("127.0.0.1:9".parse().unwrap())).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            let e = server.sendto(b"x", None).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            eventually(|| seen.borrow().received.len() == 2).await?;
            let got: Vec<_> = seen.borrow().received.clone();
            assert_eq!(got, vec![(b"ping".to_vec(), server_addr), (b"pong".to_vec(), server_addr)]);
            assert_eq!(served.borrow().received[0].1, client_addr);
            assert_eq!(client.get_write_buffer_size(), 0);
            client.close();
            server.close();
            assert!(client.is_closing());
            assert_eq!(client.sendto(b"late", None).unwrap_err().kind(), ErrorKind::BrokenPipe);
            eventually(|| seen.borrow().lost.len() == 1 && served.borrow().lost.len() == 1).await?;
            assert_eq!(seen.borrow().lost, vec![None]);
            assert!(seen.borrow().errors.is_empty());
            assert_eq!(client.local_addr(), None, "the endpoint is gone");
            Ok(())
        });
    }

    /// A datagram to a closed port comes back as an ICMP error: `error_received` gets
    /// `ConnectionRefused`, and the endpoint goes on; `abort` ends it.
    fn datagram_endpoint_error_received(b: Backend) {
        let lp = new_loop(b);
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        run_test(&lp, async move {
            let lp = get_running_loop()?;
            let options = DatagramOptions {
                remote_addr: Some(closed.into()),
                ..local("127.0.0.1:0")
            };
            let (client, seen) = lp.create_datagram_endpoint(Recorder::default, options).await?;
            client.sendto(b"anyone?", None)?;
            // The refusal comes back as the socket's error, which the endpoint's receive meets.
            eventually(|| !seen.borrow().errors.is_empty()).await?;
            assert_eq!(seen.borrow().errors, vec![ErrorKind::ConnectionRefused]);
            // A send meets no error now: it was taken by the receive.
            client.sendto(b"again", None)?;
            let transport = seen.borrow().transport.clone().expect("made");
            assert!(!transport.is_closing());
            transport.abort();
            eventually(|| seen.borrow().lost.len() == 1).await?;
            assert_eq!(seen.borrow().lost, vec![None]);
            Ok(())
        });
    }

    /// Neither address, or two of different families: `InvalidInput`.
    fn datagram_endpoint_bad_options(b: Backend) {
        let lp = new_loop(b);
        run_test(&lp, async {
            let lp = get_running_loop()?;
            let result = lp.create_datagram_endpoint(Recorder::default, DatagramOptions::default()).await;
            assert_eq!(result.err().map(|e| e.kind()), Some(ErrorKind::InvalidInput));
            let options = DatagramOptions {
                remote_addr: Some("[::1]:9".into()),
                ..local("127.0.0.1:0")
            };
            let result = lp.create_datagram_endpoint(Recorder::default, options).await;
            assert_eq!(result.err().map(|e| e.kind()), Some(ErrorKind::InvalidInput));
            Ok(())
        });
    }

    /// A pair: each end sends to the other; a receive waits for the datagram (sent by another
    /// task later); a datagram longer than the buffer is cut.
    fn unix_datagram_pair(b: Backend) {
        let lp = new_loop(b);
        run_test(&lp, async {
            let (a, c) = UnixDatagram::pair()?;
            let mut buf = [0; 16];
            assert_eq!(c.try_recv(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
            let sender = spawn(async move {
                a.send(b"first").await?;
                a.send(b"a datagram longer than sixteen bytes").await?;
                Ok::<_, io::Error>(a)
            })?;
            let n = c.recv(&mut buf).await?;
            assert_eq!(&buf[..n], b"first");
            let n = c.recv(&mut buf).await?;
            assert_eq!(&buf[..n], b"a datagram longe");
            let a = sender.await??;
            c.send(b"back").await?;
            let n = a.recv(&mut buf).await?;
            assert_eq!(&buf[..n], b"back");
            // Its peer gone, a send is refused.
            drop(c);
            assert!(a.send(b"nobody").await.is_err());
            Ok(())
        });
    }

    /// Bound sockets: `send_to` a path, `recv_from` names the sender (unnamed for an unbound
    /// one); `connect` sets the default peer; binding a path in use is `AddrInUse`.
    fn unix_datagram_bound(b: Backend) {
        let lp = new_loop(b);
        let (server_path, client_path) = (socket_path("server", b), socket_path("client", b));
        let paths = (server_path.clone(), client_path.clone());
        run_test(&lp, async move {
            let (server_path, client_path) = paths;
            let server = UnixDatagram::bind(&server_path)?;
            let client = UnixDatagram::bind(&client_path)?;
            assert_eq!(server.local_addr()?.as_pathname(), Some(server_path.as_path()));
            client.send_to(b"hello", &server_path).await?;
            let mut buf = [0; 16];
            let (n, from) = server.recv_from(&mut buf).await?;
            assert_eq!((&buf[..n], from.as_pathname()), (&b"hello"[..], Some(client_path.as_path())));
            server.send_to(b"hi", &client_path).await?;
            assert_eq!(client.try_recv_from(&mut buf)?.0, 2);
            let anonymous = UnixDatagram::unbound()?;
            anonymous.send_to(b"anon", &server_path).await?;
            let (n, from) = server.recv_from(&mut buf).await?;
            assert_eq!(&buf[..n], b"anon");
            assert!(from.is_unnamed());
            let connected = UnixDatagram::unbound()?;
            connected.connect(&server_path)?;
            assert_eq!(connected.peer_addr()?.as_pathname(), Some(server_path.as_path()));
            connected.send(b"via connect").await?;
            let n = server.recv(&mut buf).await?;
            assert_eq!(&buf[..n], b"via connect");
            let e = UnixDatagram::bind(&server_path).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::AddrInUse);
            let e = connected.send_to(b"x", server_path.with_extension("missing")).await;
            assert_eq!(e.unwrap_err().kind(), ErrorKind::NotFound);
            Ok(())
        });
        let _ = std::fs::remove_file(server_path);
        let _ = std::fs::remove_file(client_path);
    }

    /// The loop's `sock_sendto` / `sock_recvfrom` on std UDP sockets, the receive waiting for
    /// a datagram sent later; a blocking socket is refused.
    fn sock_sendto_recvfrom(b: Backend) {
        let lp = new_loop(b);
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver.set_nonblocking(true).unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.set_nonblocking(true).unwrap();
        let (to, from) = (receiver.local_addr().unwrap(), sender.local_addr().unwrap());
        run_test(&lp, async move {
            let lp = get_running_loop()?;
            let later = spawn(async move {
                let lp = get_running_loop()?;
                lp.sock_sendto(&sender, b"datagram", to).await?;
                Ok::<_, io::Error>(sender)
            })?;
            let (data, peer) = lp.sock_recvfrom(&receiver, 64).await?;
            assert_eq!((data.as_slice(), peer), (&b"datagram"[..], from));
            let sender = later.await??;
            lp.sock_sendto(&sender, b"0123456789", to).await?;
            let mut buf = [0; 4];
            assert_eq!(lp.sock_recvfrom_into(&receiver, &mut buf).await?, (4, from));
            assert_eq!(&buf, b"0123");
            let blocking = std::net::UdpSocket::bind("127.0.0.1:0")?;
            let e = lp.sock_recvfrom(&blocking, 4).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            Ok(())
        });
    }
}
