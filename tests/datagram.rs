//! Datagrams on every backend: `UnixDatagram` (a pair, bound sockets with `send_to` /
//! `recv_from`, an unbound sender, `connect`, the `try_` methods and their `WouldBlock`, a
//! datagram cut to the buffer, a dropped socket's file left behind), and the loop's
//! `sock_recvfrom` / `sock_sendto` on std UDP sockets; `create_datagram_endpoint` with a
//! `DatagramProtocol` (an echo round trip, an empty datagram, a connected endpoint's rules,
//! `error_received` for an ICMP refusal, `close` and `abort` ending in `connection_lost`, bad
//! options), and
//! `create_unix_datagram_endpoint` (a round trip by path, an unnamed sender, a connected
//! endpoint whose peer is gone, a receiver that does not read filling the kernel so that
//! datagrams are buffered, then drained; `close` and `abort` with datagrams pending, every fd
//! released when the loop closes).

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::path::PathBuf;

use std::cell::RefCell;
use std::os::unix::net::SocketAddr as UnixSocketAddr;
use std::path::Path;
use std::rc::Rc;
use tulip::net::{Endpoint, UnixDatagram};
use tulip::selectors::Backend;

use tulip::{
    get_running_loop, spawn, DatagramAddress, DatagramOptions, DatagramProtocol, DatagramTransport,
    UnixDatagramOptions,
};

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

/// Run `test` on a new loop of backend `b`, with a fresh socket path for each of `names`,
/// removed afterwards.
fn with_paths<const N: usize, F>(b: Backend, names: [&str; N], test: impl FnOnce([PathBuf; N]) -> F)
where
    F: std::future::Future<Output = io::Result<()>> + 'static,
{
    let lp = new_loop(b);
    let paths = names.map(|name| socket_path(name, b));
    run_test(&lp, test(paths.clone()));
    for path in paths {
        let _ = std::fs::remove_file(path);
    }
}

/// A datagram protocol that records everything, and echoes if told to: for UDP, or with
/// `A` = `UnixSocketAddr` for Unix sockets.
struct Recorder<A: DatagramAddress = SocketAddr> {
    transport: Option<DatagramTransport<A>>,
    echo: bool,
    received: Vec<(Vec<u8>, A)>,
    errors: Vec<ErrorKind>,
    lost: Vec<Option<ErrorKind>>,
}

impl<A: DatagramAddress> Default for Recorder<A> {
    fn default() -> Self {
        Recorder {
            transport: None,
            echo: false,
            received: Vec::new(),
            errors: Vec::new(),
            lost: Vec::new(),
        }
    }
}

impl<A: DatagramAddress> DatagramProtocol<A> for Recorder<A> {
    fn connection_made(&mut self, transport: DatagramTransport<A>) {
        self.transport = Some(transport);
    }

    fn datagram_received(&mut self, data: &[u8], addr: A) {
        if self.echo {
            let transport = self.transport.as_ref().expect("connection_made came first");
            transport
                .sendto(data, Some(addr.clone()))
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

    /// An empty `sendto` sends an empty datagram, as asyncio's does (UDP carries them): the
    /// receiver's `datagram_received` gets `b""`, between the datagrams around it, connected
    /// or not.
    fn an_empty_datagram_is_sent_and_received(b: Backend) {
        let lp = new_loop(b);
        run_test(&lp, async {
            let lp = get_running_loop()?;
            let (server, served) = lp.create_datagram_endpoint(Recorder::default, local("127.0.0.1:0")).await?;
            let server_addr = server.local_addr().expect("bound");
            let (sender, _) = lp.create_datagram_endpoint(Recorder::default, local("127.0.0.1:0")).await?;
            let sender_addr = sender.local_addr().expect("bound");
            let options = DatagramOptions { remote_addr: Some(server_addr.into()), ..local("127.0.0.1:0") };
            let (connected, _) = lp.create_datagram_endpoint(Recorder::default, options).await?;
            let connected_addr = connected.local_addr().expect("bound");

            sender.sendto(b"a", Some(server_addr))?;
            sender.sendto(b"", Some(server_addr))?;
            sender.sendto(b"b", Some(server_addr))?;
            eventually(|| served.borrow().received.len() == 3).await?;
            connected.sendto(b"", None)?;
            eventually(|| served.borrow().received.len() == 4).await?;
            let got = served.borrow().received.clone();
            let expected = [
                (b"a".to_vec(), sender_addr),
                (Vec::new(), sender_addr),
                (b"b".to_vec(), sender_addr),
                (Vec::new(), connected_addr),
            ];
            assert_eq!(got, expected);
            assert!(served.borrow().errors.is_empty());
            for endpoint in [server, sender, connected] {
                endpoint.close();
            }
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
        with_paths(b, ["server", "client"], |[server_path, client_path]| async move {
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

// ---------------------------------------------------------------------------------------------
// Unix datagram endpoints.

/// Unix endpoint options: bound to `local`, connected to `remote`.
fn unix(local: Option<&Path>, remote: Option<&Path>) -> UnixDatagramOptions {
    UnixDatagramOptions {
        local_path: local.map(Path::to_path_buf),
        remote_path: remote.map(Path::to_path_buf),
    }
}

type UnixRecorder = Recorder<UnixSocketAddr>;

/// A Unix endpoint set up by `options`, on the running loop, with a [`Recorder`].
async fn recording(
    options: UnixDatagramOptions,
) -> io::Result<(DatagramTransport<UnixSocketAddr>, Rc<RefCell<UnixRecorder>>)> {
    let lp = get_running_loop()?;
    lp.create_unix_datagram_endpoint(UnixRecorder::default, options)
        .await
}

/// The path of a Unix socket address, for comparisons (std's has no `Eq`).
fn path_of(addr: &UnixSocketAddr) -> Option<&Path> {
    addr.as_pathname()
}

/// The datagram `i` of a sequence, 100 bytes that say their index.
fn numbered(i: usize) -> Vec<u8> {
    let mut data = format!("{i:08}").into_bytes();
    data.resize(100, b'.');
    data
}

/// Send numbered datagrams from `sender` (to its peer, or else to `to`) until the kernel has
/// no room and one is buffered, then `extra` more: how many were sent, and how many of them the
/// kernel took (those before the first buffered one: after it, all are buffered, in order).
fn fill(
    sender: &DatagramTransport<UnixSocketAddr>,
    to: Option<&Path>,
    extra: usize,
) -> io::Result<(usize, usize)> {
    let send = |i: usize| match to {
        Some(path) => sender.sendto_path(&numbered(i), path),
        None => sender.sendto(&numbered(i), None),
    };
    let mut i = 0;
    while sender.get_write_buffer_size() == 0 {
        assert!(
            i < 100_000,
            "the kernel took 100,000 datagrams nobody reads"
        );
        send(i)?;
        i += 1;
    }
    let taken = i - 1;
    for _ in 0..extra {
        send(i)?;
        i += 1;
    }
    assert_eq!(sender.get_write_buffer_size(), (i - taken) * 100);
    Ok((i, taken))
}

/// Receive `count` datagrams on `receiver`, checking they are numbered `from`, `from + 1`, ...
async fn drain(receiver: &UnixDatagram, from: usize, count: usize) -> io::Result<()> {
    let mut buf = [0; 200];
    for i in from..from + count {
        let n = receiver.recv(&mut buf).await?;
        assert_eq!(&buf[..n], numbered(i).as_slice(), "datagram {i}, in order");
    }
    Ok(())
}

/// Assert that no datagram waits on `receiver`.
fn assert_nothing_more(receiver: &UnixDatagram) {
    let e = receiver.try_recv(&mut [0; 200]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "no datagram more: {e}");
}

per_backend! {
    /// Two endpoints by path: one echoes, the other is connected to it; each sees the other's
    /// path. A connected endpoint's `sendto` takes its peer's address (or none) and refuses
    /// another; an unconnected one needs an address. `close` ends both; the bound files are
    /// left behind.
    fn unix_datagram_endpoint_round_trip(b: Backend) {
        with_paths(b, ["ep-server", "ep-client"], |[server_path, client_path]| async move {
            let echo = || UnixRecorder { echo: true, ..Recorder::default() };
            let lp = get_running_loop()?;
            let (server, served) =
                lp.create_unix_datagram_endpoint(echo, unix(Some(&server_path), None)).await?;
            assert_eq!(server.local_addr().as_ref().and_then(path_of), Some(server_path.as_path()));
            assert!(server.peer_addr().is_none());
            let options = unix(Some(&client_path), Some(&server_path));
            let (client, seen) = recording(options).await?;
            assert_eq!(client.peer_addr().as_ref().and_then(path_of), Some(server_path.as_path()));
            client.sendto(b"ping", None)?;
            client.sendto_path(b"pong", &server_path)?;
            let e = client.sendto_path(b"x", &client_path).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            let e = server.sendto(b"x", None).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            eventually(|| seen.borrow().received.len() == 2).await?;
            for (got, want) in seen.borrow().received.iter().zip([&b"ping"[..], b"pong"]) {
                assert_eq!((got.0.as_slice(), path_of(&got.1)), (want, Some(server_path.as_path())));
            }
            assert_eq!(path_of(&served.borrow().received[0].1), Some(client_path.as_path()));
            client.close();
            server.close();
            assert_eq!(client.sendto(b"late", None).unwrap_err().kind(), ErrorKind::BrokenPipe);
            eventually(|| seen.borrow().lost.len() == 1 && served.borrow().lost.len() == 1).await?;
            assert_eq!(seen.borrow().lost, vec![None]);
            assert!(seen.borrow().errors.is_empty() && served.borrow().errors.is_empty());
            assert!(client.local_addr().is_none(), "the endpoint is gone");
            assert!(server_path.exists(), "the bound file is left behind");
            Ok(())
        });
    }

    /// An endpoint bound to no path sends to one: the receiver sees an unnamed sender, and its
    /// answer to that address fails into `error_received` (an unnamed socket cannot be sent
    /// to), the endpoint going on. A plain unbound socket's datagram is seen as unnamed too.
    fn unix_datagram_endpoint_unnamed_sender(b: Backend) {
        with_paths(b, ["ep-unnamed"], |[path]| async move {
            let (server, served) =
                recording(unix(Some(&path), None)).await?;
            let (anonymous, _) =
                recording(UnixDatagramOptions::default()).await?;
            assert!(anonymous.local_addr().expect("open").is_unnamed());
            anonymous.sendto_path(b"who am I", &path)?;
            let plain = UnixDatagram::unbound()?;
            plain.send_to(b"and I", &path).await?;
            eventually(|| served.borrow().received.len() == 2).await?;
            let from = served.borrow().received[0].1.clone();
            assert!(from.is_unnamed() && served.borrow().received[1].1.is_unnamed());
            assert_eq!(served.borrow().received[0].0, b"who am I");
            server.sendto(b"answer", Some(from))?;
            eventually(|| !served.borrow().errors.is_empty()).await?;
            #[cfg(target_os = "linux")]
            assert_eq!(served.borrow().errors, vec![ErrorKind::InvalidInput]);
            assert!(!server.is_closing(), "the endpoint goes on");
            anonymous.sendto_path(b"still there", &path)?;
            eventually(|| served.borrow().received.len() == 3).await?;
            server.close();
            anonymous.close();
            eventually(|| served.borrow().lost.len() == 1).await?;
            Ok(())
        });
    }

    /// A connected endpoint whose peer closed: its send is refused, `error_received` gets the
    /// error (`ConnectionRefused` on Linux, as asyncio sees it), and the endpoint goes on
    /// until aborted.
    fn unix_datagram_endpoint_peer_gone(b: Backend) {
        with_paths(b, ["ep-gone"], |[path]| async move {
            let peer = UnixDatagram::bind(&path)?;
            let (client, seen) = recording(unix(None, Some(&path))).await?;
            client.sendto(b"hello", None)?;
            let mut buf = [0; 16];
            assert_eq!(peer.recv(&mut buf).await?, 5);
            drop(peer);
            client.sendto(b"anyone?", None)?;
            eventually(|| !seen.borrow().errors.is_empty()).await?;
            #[cfg(target_os = "linux")]
            assert_eq!(seen.borrow().errors, vec![ErrorKind::ConnectionRefused]);
            assert!(!client.is_closing(), "the endpoint goes on");
            assert!(seen.borrow().lost.is_empty());
            client.abort();
            eventually(|| seen.borrow().lost.len() == 1).await?;
            assert_eq!(seen.borrow().lost, vec![None]);
            Ok(())
        });
    }

    /// A receiver that does not read: the kernel stops taking datagrams and the endpoint
    /// buffers them (`get_write_buffer_size`), without errors; once the receiver reads, every
    /// one arrives, in order, and the buffer empties. Connected (the socket turning writable
    /// says when) and sending to a path (tried again every millisecond).
    fn unix_datagram_endpoint_buffers_when_the_receiver_is_full(b: Backend) {
        with_paths(b, ["ep-full"], |[path]| async move {
            let receiver = UnixDatagram::bind(&path)?;
            for connected in [true, false] {
                let options = unix(None, connected.then_some(path.as_path()));
                let (sender, seen) =
                    recording(options).await?;
                let to = (!connected).then_some(path.as_path());
                let (sent, _) = fill(&sender, to, 20)?;
                drain(&receiver, 0, sent).await?;
                eventually(|| sender.get_write_buffer_size() == 0).await?;
                assert_nothing_more(&receiver);
                assert!(seen.borrow().errors.is_empty(), "{:?}", seen.borrow().errors);
                sender.close();
                eventually(|| seen.borrow().lost.len() == 1).await?;
            }
            Ok(())
        });
    }

    /// `close` with datagrams buffered waits for them all to be sent before
    /// `connection_lost(None)` (refusing new ones meanwhile); `abort` drops them at once.
    fn unix_datagram_endpoint_close_and_abort_with_datagrams_pending(b: Backend) {
        with_paths(b, ["ep-pending"], |[path]| async move {
            let receiver = UnixDatagram::bind(&path)?;
            let options = unix(None, Some(&path));
            let (sender, seen) = recording(options).await?;
            let (sent, _) = fill(&sender, None, 10)?;
            sender.close();
            assert_eq!(sender.sendto(b"late", None).unwrap_err().kind(), ErrorKind::BrokenPipe);
            for _ in 0..10 {
                tulip::sleep(std::time::Duration::from_millis(1)).await?;
            }
            assert!(seen.borrow().lost.is_empty(), "closing, not closed, while datagrams wait");
            assert!(sender.get_write_buffer_size() > 0);
            drain(&receiver, 0, sent).await?;
            eventually(|| seen.borrow().lost.len() == 1).await?;
            assert_eq!(seen.borrow().lost, vec![None]);
            assert_nothing_more(&receiver);

            let options = unix(None, Some(&path));
            let (sender, seen) = recording(options).await?;
            let (_, taken) = fill(&sender, None, 10)?;
            sender.abort();
            eventually(|| seen.borrow().lost.len() == 1).await?;
            assert_eq!(seen.borrow().lost, vec![None]);
            assert_eq!(sender.get_write_buffer_size(), 0);
            drain(&receiver, 0, taken).await?;
            assert_nothing_more(&receiver); // the buffered ones were dropped
            Ok(())
        });
    }

    /// Bad setups: the local path exists (`AddrInUse`: not removed, even if a stale socket);
    /// nothing at the remote path (`NotFound`); a remote path that is no socket
    /// (`ConnectionRefused`, and the local path bound meanwhile is removed again).
    fn unix_datagram_endpoint_bad_options(b: Backend) {
        with_paths(b, ["ep-stale", "ep-fresh", "ep-plain-file"], |[stale, fresh, plain_file]| async move {
            drop(std::os::unix::net::UnixDatagram::bind(&stale)?);
            let result = recording(unix(Some(&stale), None)).await;
            assert_eq!(result.err().map(|e| e.kind()), Some(ErrorKind::AddrInUse));
            assert!(stale.exists(), "left alone");
            let result = recording(unix(None, Some(&fresh))).await;
            assert_eq!(result.err().map(|e| e.kind()), Some(ErrorKind::NotFound));
            std::fs::write(&plain_file, b"not a socket")?;
            let options = unix(Some(&fresh), Some(&plain_file));
            let result = recording(options).await;
            assert_eq!(result.err().map(|e| e.kind()), Some(ErrorKind::ConnectionRefused));
            assert!(!fresh.exists(), "the path bound by the failed call is removed");
            Ok(())
        });
    }

    /// Every fd an endpoint opens is closed when the loop closes, endpoints open and
    /// datagrams buffered, or after `close`.
    exclusive fn unix_datagram_endpoints_release_their_fds(b: Backend) {
        let (server_path, full_path) = (socket_path("ep-fds", b), socket_path("ep-fds-full", b));
        #[cfg(target_os = "linux")]
        let fds_before = open_fd_count();
        let lp = new_loop(b);
        let paths = (server_path.clone(), full_path.clone());
        let kept: Rc<RefCell<Vec<Rc<RefCell<UnixRecorder>>>>> = Rc::default();
        let keep = kept.clone();
        run_test(&lp, async move {
            let (server_path, full_path) = paths;
            let (server, served) =
                recording(unix(Some(&server_path), None)).await?;
            let (client, seen) =
                recording(unix(None, Some(&server_path))).await?;
            client.sendto(b"x", None)?;
            eventually(|| served.borrow().received.len() == 1).await?;
            client.close();
            eventually(|| seen.borrow().lost.len() == 1).await?;
            // Left open, with datagrams buffered, when the loop closes.
            let receiver = std::os::unix::net::UnixDatagram::bind(&full_path)?;
            let (sender, pending) =
                recording(unix(None, Some(&full_path))).await?;
            fill(&sender, None, 5)?;
            drop(receiver);
            keep.borrow_mut().extend([served, pending]);
            assert!(!server.is_closing());
            Ok(())
        });
        lp.close().unwrap();
        drop(lp);
        for protocol in kept.borrow().iter() {
            assert!(protocol.borrow().lost.is_empty(), "no connection_lost once the loop is closed");
        }
        drop(kept);
        #[cfg(target_os = "linux")]
        assert_eq!(open_fd_count(), fds_before, "every fd released");
        let _ = std::fs::remove_file(server_path);
        let _ = std::fs::remove_file(full_path);
    }
}

/// How many fds this process has open (the directory listing's own included, every time).
#[cfg(target_os = "linux")]
fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd lists this process's fds")
        .count()
}
