//! Name resolution and how connections are made, on every backend, over loopback:
//! `getaddrinfo` on the blocking pool (the loop runs on meanwhile; a literal address never
//! goes there), connecting by host name (`TcpStream::connect`, `create_connection`,
//! `open_connection`), each address tried in turn and the errors when none connects, happy
//! eyeballs past a blackholed address (the loser closed), `local_addr`, the `Server`'s life
//! (`serve_forever`, `wait_closed`, `is_serving`), servers on several addresses, and
//! `connect_accepted_socket`.
//!
//! Host names other than `localhost` go to a resolver installed on the loop
//! (`EventLoop::set_resolver`), so that a name resolves to exactly the addresses a test needs.
//! Nothing asserts a duration: [`TIMEOUT`] only turns a hang into a failure.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tulip::net::{ConnectOptions, Family, ListenOptions, TcpListener, TcpStream};
use tulip::selectors::Backend;
use tulip::{get_running_loop, EventLoop, Protocol, Transport};

#[macro_use]
#[path = "support/per_backend.rs"]
mod per_backend;

#[path = "support/loop_test.rs"]
mod loop_test;
use loop_test::*;

/// A port nothing listens on (a listener's, closed): connecting there is refused.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    listener.local_addr().expect("its address")
}

/// Install a resolver that answers `name` with `addrs` (and fails for any other name),
/// counting its calls.
fn resolve_to(lp: &EventLoop, name: &'static str, addrs: Vec<SocketAddr>) -> Arc<AtomicUsize> {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    lp.set_resolver(move |host, _port| {
        counted.fetch_add(1, Ordering::SeqCst);
        if host == name {
            Ok(addrs.clone())
        } else {
            Err(io::Error::new(
                ErrorKind::NotFound,
                "not in the test's table",
            ))
        }
    });
    calls
}

/// A protocol that echoes what it receives.
struct Echo(Option<Transport>);

impl Protocol for Echo {
    fn connection_made(&mut self, transport: Transport) {
        self.0 = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        if let Some(transport) = &self.0 {
            let _ = transport.write(data);
        }
    }
}

/// A protocol that records what it receives and whether its connection ended.
#[derive(Debug, Default)]
struct Recorder {
    transport: Option<Transport>,
    received: Vec<u8>,
    lost: bool,
}

impl Protocol for Recorder {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        self.received.extend_from_slice(data);
    }

    fn connection_lost(&mut self, _error: Option<io::Error>) {
        self.lost = true;
    }
}

/// Write `message` on `stream` and read it back (from an echo server).
async fn round_trip(stream: &TcpStream, message: &[u8]) -> io::Result<()> {
    stream.write_all(message).await?;
    let mut back = vec![0; message.len()];
    stream.read_exact(&mut back).await?;
    assert_eq!(back, message);
    Ok(())
}

/// Whether this host has IPv6 loopback.
fn has_ipv6_loopback() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

/// How many fds this process has open.
#[cfg(target_os = "linux")]
fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd lists this process's fds")
        .count()
}

per_backend! {
    /// `localhost` resolves to loopback addresses with the port asked for, on a pool thread; a
    /// family filter keeps only its family.
    fn getaddrinfo_localhost(b: Backend) {
        let lp = new_loop(b);
        run_test(&lp, async {
            let lp = get_running_loop()?;
            let addrs = lp.getaddrinfo("localhost", 8080).await?;
            assert!(!addrs.is_empty());
            assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 8080), "{addrs:?}");
            let v4 = lp.getaddrinfo_with("localhost", 8080, Family::Inet).await;
            if let Ok(v4) = v4 {
                assert!(v4.iter().all(|a| *a == "127.0.0.1:8080".parse().unwrap()), "{v4:?}");
            }
            Ok(())
        });
    }

    /// The resolver runs on a thread of the pool, and the loop runs other callbacks while it
    /// blocks: here it waits for a message that only the loop, running on, sends it.
    fn resolution_runs_off_the_loop(b: Backend) {
        let lp = new_loop(b);
        let (tx, rx) = mpsc::channel::<()>();
        let rx = Mutex::new(rx);
        let thread_name = Arc::new(Mutex::new(None));
        let seen_name = Arc::clone(&thread_name);
        lp.set_resolver(move |host, port| {
            *seen_name.lock().unwrap() = std::thread::current().name().map(str::to_owned);
            // On the loop's thread, this would wait for a message that can never come.
            match rx.lock().unwrap().recv_timeout(Duration::from_secs(60)) {
                Ok(()) => Ok(vec![SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)]),
                Err(_) => Err(io::Error::new(ErrorKind::TimedOut, format!("{host}: no go-ahead"))),
            }
        });
        run_test(&lp, async move {
            let lookup = tulip::spawn(async move {
                get_running_loop()?.getaddrinfo("blocked.test", 7).await
            })?;
            // The lookup's task has started and is waiting; the loop runs this one meanwhile.
            tulip::sleep(Duration::from_millis(1)).await?;
            assert!(!lookup.done());
            tx.send(()).expect("the resolver is waiting");
            let addrs = lookup.await??;
            assert_eq!(addrs, vec!["127.0.0.1:7".parse::<SocketAddr>().unwrap()]);
            Ok(())
        });
        let name = thread_name.lock().unwrap().clone().unwrap_or_default();
        assert!(name.starts_with("tulip-executor-"), "the resolver ran on {name:?}");
    }

    /// A literal address (of every form) never goes to the resolver.
    fn a_literal_address_is_not_resolved(b: Backend) {
        let lp = new_loop(b);
        let calls = resolve_to(&lp, "nothing.test", Vec::new());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        run_test(&lp, async move {
            let lp = get_running_loop()?;
            assert_eq!(lp.getaddrinfo("::1", 5).await?, vec!["[::1]:5".parse().unwrap()]);
            assert_eq!(lp.getaddrinfo("[::1]", 5).await?, vec!["[::1]:5".parse().unwrap()]);
            assert_eq!(lp.getaddrinfo("10.1.2.3", 5).await?, vec!["10.1.2.3:5".parse().unwrap()]);
            let _a = TcpStream::connect(format!("127.0.0.1:{port}")).await?;
            let _b = TcpStream::connect(("127.0.0.1", port)).await?;
            let _c = TcpStream::connect((IpAddr::from(Ipv4Addr::LOCALHOST), port)).await?;
            Ok(())
        });
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    /// Host names that do not resolve, and strings that are not `host:port`: errors of a clear
    /// kind, naming the host.
    fn bad_names(b: Backend) {
        let lp = new_loop(b);
        run_test(&lp, async {
            let lp = get_running_loop()?;
            let e = lp.getaddrinfo("no-such-host.invalid", 80).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
            assert!(e.to_string().contains("no-such-host.invalid"), "{e}");
            let e = TcpStream::connect("no-such-host.invalid:80").await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
            assert!(e.to_string().contains("no-such-host.invalid"), "{e}");
            for bad in ["localhost", "localhost:http", "::1:80", ":80"] {
                let e = TcpStream::connect(bad).await.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}: {e}");
            }
            let e = lp.getaddrinfo("", 80).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            let e = TcpStream::connect(Vec::<SocketAddr>::new()).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            let e = lp.getaddrinfo_with("127.0.0.1", 80, Family::Inet6).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
            Ok(())
        });
        // A resolver's own error keeps its kind, the host named.
        lp.set_resolver(|_, _| Err(io::Error::new(ErrorKind::PermissionDenied, "refused")));
        run_test(&lp, async {
            let e = get_running_loop()?.getaddrinfo("secret.test", 1).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
            assert!(e.to_string().contains("secret.test"), "{e}");
            Ok(())
        });
    }

    /// Connecting by host name: `localhost`, through the system's resolver, with each of the
    /// three ways of connecting.
    fn connecting_to_localhost(b: Backend) {
        let lp = new_loop(b);
        let server = lp.create_server(|| Echo(None), "127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        run_test(&lp, async move {
            let lp = get_running_loop()?;
            let stream = TcpStream::connect(format!("localhost:{port}")).await?;
            assert_eq!(stream.peer_addr()?, SocketAddr::from(([127, 0, 0, 1], port)));
            round_trip(&stream, b"by name").await?;
            let (transport, _) = lp.create_connection(Recorder::default, ("localhost", port)).await?;
            assert_eq!(transport.peer_addr(), Some(SocketAddr::from(([127, 0, 0, 1], port))));
            transport.close();
            let (mut reader, writer) = tulip::open_connection(("localhost", port)).await?;
            writer.write(b"streams\n")?;
            assert_eq!(reader.readline().await?, b"streams\n");
            Ok(())
        });
    }

    /// The addresses of a name are tried in turn: the first refuses, the second listens.
    fn each_address_in_turn(b: Backend) {
        let lp = new_loop(b);
        let server = lp.create_server(|| Echo(None), "127.0.0.1:0").unwrap();
        let good = server.local_addr().unwrap();
        let calls = resolve_to(&lp, "two.test", vec![closed_port(), good]);
        run_test(&lp, async move {
            let lp = get_running_loop()?;
            let stream = TcpStream::connect(("two.test", good.port())).await?;
            assert_eq!(stream.peer_addr()?, good);
            round_trip(&stream, b"second").await?;
            let (transport, _) = lp.create_connection(Recorder::default, "two.test:1").await?;
            assert_eq!(transport.peer_addr(), Some(good));
            transport.close();
            Ok(())
        });
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    /// No address connects: the last one's error if all failed alike (here
    /// `ConnectionRefused`, with its errno), else one naming each address and its error.
    fn when_no_address_connects(b: Backend) {
        let lp = new_loop(b);
        let (first, second) = (closed_port(), closed_port());
        resolve_to(&lp, "refusing.test", vec![first, second]);
        run_test(&lp, async move {
            let lp = get_running_loop()?;
            let e = TcpStream::connect("refusing.test:1").await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
            assert!(e.raw_os_error().is_some(), "the kernel's own error: {e:?}");
            let Err(e) = lp.create_connection(Recorder::default, vec![first, second]).await else {
                panic!("connected to nothing");
            };
            assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
            // Two different errors: an address of the other family than the local address,
            // then a refusal.
            let options = ConnectOptions {
                local_addr: Some("127.0.0.1:0".parse().unwrap()),
                ..ConnectOptions::default()
            };
            let v6: SocketAddr = "[::1]:1".parse().unwrap();
            let e = TcpStream::connect_with(vec![v6, first], &options).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
            let message = e.to_string();
            assert!(message.contains("[::1]:1") && message.contains(&first.to_string()), "{e}");
            Ok(())
        });
    }

    /// Happy eyeballs with a delay: with every address refused, the last error.
    fn happy_eyeballs_all_refused(b: Backend) {
        let lp = new_loop(b);
        resolve_to(&lp, "refusing.test", vec![closed_port(), closed_port(), closed_port()]);
        run_test(&lp, async move {
            let options = ConnectOptions {
                happy_eyeballs_delay: Some(Duration::from_millis(5)),
                ..ConnectOptions::default()
            };
            let e = TcpStream::connect_with("refusing.test:1", &options).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
            Ok(())
        });
    }

    /// `local_addr`: the connection comes from it (the peer sees its port); one of the other
    /// family than the address fails with `InvalidInput`.
    fn local_addr_is_bound(b: Backend) {
        let lp = new_loop(b);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = listener.local_addr().unwrap();
        let listener = Rc::new(listener);
        run_test(&lp, async move {
            let lp = get_running_loop()?;
            let local = closed_port();
            let options = ConnectOptions { local_addr: Some(local), ..ConnectOptions::default() };
            let (transport, _) =
                lp.create_connection_with(Recorder::default, target, &options).await?;
            let (_accepted, peer) = listener.accept().await?;
            assert_eq!(peer, local);
            assert_eq!(transport.local_addr(), Some(local));
            transport.close();
            let options = ConnectOptions {
                local_addr: Some("[::1]:0".parse().unwrap()),
                ..ConnectOptions::default()
            };
            let e = TcpStream::connect_with(target, &options).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            Ok(())
        });
    }

    /// `serve_forever` serves until `close`, then waits for the connections to end;
    /// `wait_closed` waits for the same (also when called before `close`); `is_serving` says
    /// which side of `close` the server is.
    fn server_life(b: Backend) {
        let lp = new_loop(b);
        let server = Rc::new(lp.create_server(|| Echo(None), "127.0.0.1:0").unwrap());
        let addr = server.local_addr().unwrap();
        run_test(&lp, async move {
            assert!(server.is_serving());
            let forever = {
                let server = Rc::clone(&server);
                tulip::spawn(async move { server.serve_forever().await })?
            };
            let waiting = {
                let server = Rc::clone(&server);
                tulip::spawn(async move { server.wait_closed().await })?
            };
            let client = TcpStream::connect(addr).await?;
            round_trip(&client, b"served").await?;
            // A second serve_forever is refused.
            let e = server.serve_forever().await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            server.close();
            assert!(!server.is_serving());
            assert!(TcpStream::connect(addr).await.is_err());
            // The connection is still up: neither is done.
            round_trip(&client, b"still").await?;
            assert!(!forever.done() && !waiting.done());
            drop(client);
            forever.await??;
            waiting.await?;
            server.wait_closed().await;
            let e = server.serve_forever().await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            Ok(())
        });
    }

    /// Cancelling `serve_forever` closes the server, as in asyncio.
    fn cancelling_serve_forever_closes_the_server(b: Backend) {
        let lp = new_loop(b);
        let server = Rc::new(lp.create_server(|| Echo(None), "127.0.0.1:0").unwrap());
        run_test(&lp, async move {
            let forever = {
                let server = Rc::clone(&server);
                tulip::spawn(async move { server.serve_forever().await })?
            };
            tulip::sleep(Duration::from_millis(1)).await?;
            assert!(server.is_serving());
            forever.cancel();
            assert!(forever.await.is_err());
            assert!(!server.is_serving());
            server.wait_closed().await;
            Ok(())
        });
    }

    /// An unstarted server listens (the kernel completes connections into its backlog) but
    /// accepts none until `start_serving`, or `serve_forever`; a closed one cannot start.
    fn unstarted_server(b: Backend) {
        let lp = new_loop(b);
        let made = Rc::new(std::cell::Cell::new(0));
        let counted = Rc::clone(&made);
        let factory = move || {
            counted.set(counted.get() + 1);
            Echo(None)
        };
        let options = ListenOptions::default();
        let server = Rc::new(lp.create_server_unstarted(factory, "127.0.0.1:0", options).unwrap());
        let addr = server.local_addr().unwrap();
        run_test(&lp, async move {
            assert!(!server.is_serving());
            let client = TcpStream::connect(addr).await?;
            for _ in 0..10 {
                tulip::sleep(Duration::from_millis(1)).await?;
            }
            assert_eq!(made.get(), 0, "accepted before start_serving");
            server.start_serving()?;
            assert!(server.is_serving());
            round_trip(&client, b"started").await?;
            assert_eq!(made.get(), 1);
            server.start_serving()?; // Already serving: nothing changes.
            let forever = {
                let server = Rc::clone(&server);
                tulip::spawn(async move { server.serve_forever().await })?
            };
            drop(client);
            tulip::sleep(Duration::from_millis(1)).await?;
            server.close();
            forever.await??;
            let e = server.start_serving().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            // serve_forever starts an unstarted server.
            let lp = get_running_loop()?;
            let second = Rc::new(lp.create_server_unstarted(|| Echo(None), "127.0.0.1:0", options)?);
            let forever = {
                let second = Rc::clone(&second);
                tulip::spawn(async move { second.serve_forever().await })?
            };
            let stream = TcpStream::connect(second.local_addr()?).await?;
            round_trip(&stream, b"forever").await?;
            assert!(second.is_serving());
            drop(stream);
            second.close();
            forever.await??;
            Ok(())
        });
    }

    /// A server on several addresses listens on each (IPv4 and IPv6 loopback, when this host
    /// has the latter); an address in use fails the whole server, naming it.
    fn server_on_several_addresses(b: Backend) {
        let lp = new_loop(b);
        let mut addrs: Vec<SocketAddr> = vec!["127.0.0.1:0".parse().unwrap()];
        if has_ipv6_loopback() {
            addrs.push("[::1]:0".parse().unwrap());
        } else {
            eprintln!("no IPv6 loopback here: one address only");
        }
        addrs.push("127.0.0.1:0".parse().unwrap()); // A duplicate, bound once.
        let server = lp.create_server(|| Echo(None), &addrs[..]).unwrap();
        let bound = server.local_addrs();
        assert_eq!(bound.len(), addrs.len() - 1, "{bound:?}");
        assert_eq!(server.socknames().len(), bound.len());
        run_test(&lp, async move {
            for addr in &bound {
                let stream = TcpStream::connect(*addr).await?;
                round_trip(&stream, addr.to_string().as_bytes()).await?;
            }
            server.close();
            for addr in &bound {
                assert!(TcpStream::connect(*addr).await.is_err());
            }
            Ok(())
        });
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = taken.local_addr().unwrap();
        let other = "127.0.0.1:0".parse().unwrap();
        let options = ListenOptions { reuse_address: false, ..ListenOptions::default() };
        let e = lp.create_server_with(|| Echo(None), &[other, taken][..], options).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
        assert!(e.to_string().contains(&taken.to_string()), "{e}");
    }

    /// `connect_accepted_socket`: a protocol on a TCP stream accepted elsewhere, and on a Unix
    /// socket of a pair.
    fn connect_accepted_socket(b: Backend) {
        let lp = new_loop(b);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let (transport, _) = lp.connect_accepted_socket(|| Echo(None), accepted).unwrap();
        assert_eq!(transport.peer_addr(), Some(client.local_addr().unwrap()));
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let (_unix, recorder) = lp.connect_accepted_socket(Recorder::default, ours).unwrap();
        let recorded = Rc::clone(&recorder);
        run_test(&lp, async move {
            // The peers are blocking std sockets: they run on the pool.
            let lp = get_running_loop()?;
            let echoed = lp.run_in_executor(move || {
                client.write_all(b"accepted")?;
                let mut back = [0; 8];
                client.read_exact(&mut back)?;
                Ok::<_, io::Error>(back)
            });
            assert_eq!(&echoed.await??, b"accepted");
            theirs.write_all(b"unix")?;
            drop(theirs);
            eventually(|| recorded.borrow().lost).await?;
            assert_eq!(recorded.borrow().received, b"unix");
            Ok(())
        });
    }
}

per_backend! {
    /// Happy eyeballs past a blackholed first address: a listener whose backlog is full (the
    /// kernel drops the SYN, so the connect neither succeeds nor fails). With a delay, the
    /// second address is tried meanwhile and wins; the first attempt is closed (the process
    /// has one more fd, the winner's). Sequential, this would wait on the first address.
    exclusive fn happy_eyeballs_past_a_blackhole(b: Backend) {
        let _ = b;
        if !cfg!(target_os = "linux") {
            eprintln!("a full backlog drops SYNs on Linux only: skipped");
            return;
        }
        #[cfg(target_os = "linux")]
        {
            let lp = new_loop(b);
            let options = ListenOptions { backlog: 0, ..ListenOptions::default() };
            let blackhole = TcpListener::bind_with("127.0.0.1:0", options).unwrap();
            let black = blackhole.local_addr().unwrap();
            let good = TcpListener::bind("127.0.0.1:0").unwrap();
            let good_addr = good.local_addr().unwrap();
            resolve_to(&lp, "eyeballs.test", vec![black, good_addr]);
            run_test(&lp, async move {
                let lp = get_running_loop()?;
                // Fill the backlog (one connection, for a backlog of 0).
                let _filler = TcpStream::connect(black).await?;
                // Start the pool's thread before counting.
                lp.getaddrinfo("eyeballs.test", 1).await?;
                let before = open_fd_count();
                let options = ConnectOptions {
                    happy_eyeballs_delay: Some(Duration::from_millis(10)),
                    ..ConnectOptions::default()
                };
                let (transport, _) = lp
                    .create_connection_with(Recorder::default, ("eyeballs.test", 1), &options)
                    .await?;
                assert_eq!(transport.peer_addr(), Some(good_addr));
                assert_eq!(open_fd_count(), before + 1, "the losing attempt was closed");
                let (_accepted, peer) = good.accept().await?;
                assert_eq!(Some(peer), transport.local_addr());
                transport.close();
                drop(blackhole);
                Ok(())
            });
        }
    }
}
