//! UDP sockets, Unix stream sockets, pipes (a child's stdio among them) and the loop's
//! `sock_*` methods, on every backend. `SIGPIPE` is made fatal for this whole process (Rust
//! programs ignore it by default), so a write that raised one would kill the test run.

use std::cell::Cell;
use std::future::Future as StdFuture;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::net::{UnixListener as StdUnixListener, UnixStream as StdUnixStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

use tulip::net::{pipe, PipeReader, PipeWriter, UdpSocket, UnixListener, UnixStream};
use tulip::selectors::net::{self as sys, Domain, Type};
use tulip::selectors::{fd, Backend};
use tulip::{get_running_loop, sleep, spawn, wait_for, yield_now, EventLoop, LoopError};

#[macro_use]
#[path = "support/per_backend.rs"]
mod per_backend;

static SIGPIPE_IS_FATAL: Once = Once::new();

/// A loop on `b`, in a process where `SIGPIPE` kills.
fn new_loop(b: Backend) -> EventLoop {
    SIGPIPE_IS_FATAL.call_once(|| {
        tulip::selectors::signal::restore_default(libc::SIGPIPE).expect("SIGPIPE can be reset");
    });
    EventLoop::with_backend(b).unwrap()
}

/// Run `coroutine` as a task on a new loop of backend `b`; fail if it takes over 10 s.
fn run_on<T: 'static>(
    b: Backend,
    coroutine: impl StdFuture<Output = io::Result<T>> + 'static,
) -> T {
    let lp = new_loop(b);
    let outcome =
        lp.run_until_complete(async move { wait_for(coroutine, Duration::from_secs(10)).await? });
    outcome.unwrap().unwrap()
}

/// A socket path in the temp dir, unique to this process and call.
fn socket_path() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("tulip-net-io-{}-{n}.sock", std::process::id()))
}

/// `len` bytes that are not all alike, so that a reordering or a loss shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Read `reader` until the end of the stream.
async fn read_to_end(reader: &PipeReader) -> io::Result<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        match reader.read(&mut buf).await? {
            0 => return Ok(all),
            n => all.extend_from_slice(&buf[..n]),
        }
    }
}

per_backend! {
    /// A datagram socket adopted as a stream stops each read at a message boundary: a short
    /// read that leaves the next message behind. The next read must still get it at once (on
    /// an edge-triggered registration it would wait for more data that never comes). The
    /// reader waits before both messages arrive, so the fd is watched when they do.
    fn a_short_read_that_leaves_data_behind_does_not_stall_the_next_read(b: Backend) {
        let (ours, theirs) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let stream = UnixStream::from(OwnedFd::from(ours));
        let got = run_on(b, async move {
            let reader = spawn(async move {
                let mut buf = [0u8; 64];
                let first = stream.read(&mut buf).await?;
                let one = buf[..first].to_vec();
                let second = stream.read(&mut buf).await?;
                Ok::<_, io::Error>((one, buf[..second].to_vec()))
            })?;
            sleep(Duration::from_millis(20)).await?;
            theirs.send(b"one")?;
            theirs.send(b"two")?;
            reader.await?
        });
        assert_eq!(got, (b"one".to_vec(), b"two".to_vec()));
    }

    /// An error event (ICMP "port unreachable" on a connected UDP socket, arriving while a
    /// receive waits) is reported once: the waiting receive gets the error, and the next one
    /// waits quietly instead of spinning the loop.
    fn an_error_event_does_not_make_the_next_wait_spin(b: Backend) {
        let closed = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        let nobody = closed.local_addr().unwrap();
        drop(closed);
        let lp = new_loop(b);
        let outcome = lp.run_until_complete(async move {
            let socket = Rc::new(UdpSocket::bind("127.0.0.1:0")?);
            socket.connect(nobody)?;
            let receiving = Rc::clone(&socket);
            let refused = spawn(async move { receiving.recv(&mut [0u8; 16]).await })?;
            sleep(Duration::from_millis(20)).await?;
            socket.send(b"anyone?").await?;
            let refused = refused.await?.unwrap_err();
            assert_eq!(refused.kind(), ErrorKind::ConnectionRefused, "{refused}");
            let before = get_running_loop()?.stats().iterations;
            let mut buf = [0u8; 16];
            let quiet = wait_for(socket.recv(&mut buf), Duration::from_millis(200)).await;
            assert_eq!(quiet.unwrap_err().kind(), ErrorKind::TimedOut);
            Ok::<_, io::Error>(get_running_loop()?.stats().iterations - before)
        });
        let iterations = outcome.unwrap().unwrap();
        // A wait is a handful of iterations (the timer, the wake); a spin is thousands.
        assert!(iterations < 50, "{iterations} loop iterations while waiting 200 ms");
    }

    // ---- UDP ----

    fn udp_datagrams_go_both_ways_with_send_to_and_recv_from(b: Backend) {
        run_on(b, async {
            let server = Rc::new(UdpSocket::bind("127.0.0.1:0")?);
            let client = UdpSocket::bind("127.0.0.1:0")?;
            let (server_addr, client_addr) = (server.local_addr()?, client.local_addr()?);

            // The server waits first: the datagram arrives while it is parked on the loop.
            let echo = spawn({
                let server = Rc::clone(&server);
                async move {
                    let mut buf = [0; 64];
                    let (n, from) = server.recv_from(&mut buf).await?;
                    server.send_to(&buf[..n], from).await?;
                    Ok::<_, io::Error>((buf[..n].to_vec(), from))
                }
            })?;
            yield_now().await;
            assert_eq!(client.send_to(b"datagram", server_addr).await?, 8);
            let (received, from) = echo.await??;
            assert_eq!((received.as_slice(), from), (&b"datagram"[..], client_addr));

            let mut buf = [0; 64];
            let (n, from) = client.recv_from(&mut buf).await?;
            assert_eq!((&buf[..n], from), (&b"datagram"[..], server_addr));
            let err = client.try_recv_from(&mut buf).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::WouldBlock, "one datagram, received once");
            Ok(())
        });
    }

    fn connected_udp_sockets_send_and_receive_without_addresses(b: Backend) {
        run_on(b, async {
            let a = UdpSocket::bind("127.0.0.1:0")?;
            let b = UdpSocket::bind("127.0.0.1:0")?;
            a.connect(b.local_addr()?)?;
            b.connect(a.local_addr()?)?;
            assert_eq!(a.peer_addr()?, b.local_addr()?);

            a.send(b"one").await?;
            a.send(b"two").await?;
            let mut buf = [0; 2];
            assert_eq!(b.recv(&mut buf).await?, 2, "a datagram is cut to the buffer");
            assert_eq!(&buf, b"on");
            let mut buf = [0; 16];
            let n = b.recv(&mut buf).await?;
            assert_eq!(&buf[..n], b"two", "the rest of the first datagram was discarded");
            b.send(b"back").await?;
            let n = a.recv(&mut buf).await?;
            assert_eq!(&buf[..n], b"back");
            Ok(())
        });
    }

    fn a_udp_datagram_larger_than_64_kib_is_refused_with_emsgsize(b: Backend) {
        run_on(b, async {
            let a = UdpSocket::bind("127.0.0.1:0")?;
            let target = a.local_addr()?;
            let err = a.send_to(&vec![0; 70_000], target).await.unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EMSGSIZE), "{err}");
            Ok(())
        });
    }

    // ---- Unix stream sockets ----

    fn unix_streams_echo_through_a_listener(b: Backend) {
        let path = socket_path();
        let listener = UnixListener::bind(&path).unwrap();
        assert_eq!(listener.local_addr().unwrap().as_pathname(), Some(path.as_path()));
        let connect_to = path.clone();
        run_on(b, async move {
            let server = spawn(async move {
                let (stream, peer) = listener.accept().await?;
                assert!(peer.is_unnamed(), "the client did not bind: {peer:?}");
                let mut buf = [0; 1024];
                loop {
                    match stream.read(&mut buf).await? {
                        0 => return Ok::<_, io::Error>(()),
                        n => stream.write_all(&buf[..n]).await?,
                    }
                }
            })?;
            let client = UnixStream::connect(&connect_to).await?;
            assert_eq!(
                client.peer_addr()?.as_pathname(),
                Some(connect_to.as_path())
            );
            let sent = pattern(300_000);
            let (reader, writer) = client.split();
            let mut echoed = vec![0; sent.len()];
            let (wrote, read) = futures_join(
                async {
                    writer.write_all(&sent).await?;
                    writer.shutdown()
                },
                reader.read_exact(&mut echoed),
            )
            .await;
            wrote?;
            read?;
            assert!(echoed == sent, "the echo differs");
            server.await??;
            Ok(())
        });
        std::fs::remove_file(path).unwrap();
    }

    fn unix_connect_to_a_missing_path_is_not_found_and_to_a_dead_listener_refused(b: Backend) {
        let missing = socket_path();
        let dead = socket_path();
        drop(StdUnixListener::bind(&dead).unwrap()); // leaves the socket file behind
        let (missing_err, dead_err) = run_on(b, {
            let (missing, dead) = (missing.clone(), dead.clone());
            async move {
                let missing_err = UnixStream::connect(&missing).await.unwrap_err();
                let dead_err = UnixStream::connect(&dead).await.unwrap_err();
                Ok((missing_err, dead_err))
            }
        });
        std::fs::remove_file(dead).unwrap();
        assert_eq!(missing_err.kind(), ErrorKind::NotFound, "{missing_err}");
        assert_eq!(dead_err.kind(), ErrorKind::ConnectionRefused, "{dead_err}");
    }

    fn unix_half_close_ends_the_peers_reads_while_the_other_direction_goes_on(b: Backend) {
        run_on(b, async {
            let (a, b) = UnixStream::pair()?;
            a.write_all(b"last words").await?;
            a.shutdown(std::net::Shutdown::Write)?;
            let mut buf = [0; 32];
            let n = b.read(&mut buf).await?;
            assert_eq!(&buf[..n], b"last words");
            assert_eq!(b.read(&mut buf).await?, 0, "end of stream after shutdown(Write)");
            b.write_all(b"reply").await?;
            let n = a.read(&mut buf).await?;
            assert_eq!(&buf[..n], b"reply");

            // The owned writing half shuts writing down when dropped; the reading half reads on.
            let (c, d) = UnixStream::pair()?;
            let (c_read, c_write) = c.into_split();
            drop(c_write);
            assert_eq!(d.read(&mut buf).await?, 0, "end of stream once the half is dropped");
            d.write_all(b"still open").await?;
            drop(d);
            let n = c_read.read(&mut buf).await?;
            assert_eq!(&buf[..n], b"still open");
            assert_eq!(c_read.read(&mut buf).await?, 0);
            assert!(c_read.as_ref().peer_addr()?.is_unnamed());
            Ok(())
        });
    }

    fn unix_pairs_carry_a_mebibyte_each_way_at_once(b: Backend) {
        run_on(b, async {
            let (a, b) = UnixStream::pair()?;
            let sent = Rc::new(pattern(1 << 20));
            let (a_read, a_write) = a.into_split();
            let writer = spawn({
                let sent = Rc::clone(&sent);
                async move { a_write.write_all(&sent).await }
            })?;
            let mut from_a = vec![0; sent.len()];
            let mut from_b = vec![0; sent.len()];
            let (b_read, b_write) = b.split();
            let (r1, (r2, r3)) = futures_join(
                b_read.read_exact(&mut from_a),
                futures_join(b_write.write_all(&sent), a_read.read_exact(&mut from_b)),
            )
            .await;
            r1?;
            r2?;
            r3?;
            writer.await??;
            assert!(from_a == *sent && from_b == *sent, "the bytes differ");
            Ok(())
        });
    }

    fn unix_connect_retries_while_the_listeners_backlog_is_full(b: Backend) {
        if !cfg!(any(target_os = "linux", target_os = "android")) {
            return; // Only Linux refuses with EAGAIN; others queue or refuse for good.
        }
        let path = socket_path();
        let listener = UnixListener::bind(&path).unwrap();
        // SAFETY: listen(2) on a socket we own, to shrink its backlog to one connection.
        assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
        let connect_to = path.clone();
        run_on(b, async move {
            let first = UnixStream::connect(&connect_to).await?;
            let second = spawn(async move { UnixStream::connect(&connect_to).await })?;
            sleep(Duration::from_millis(30)).await?;
            assert!(!second.done(), "the backlog is full: the second connect waits");
            let (_first_server, _) = listener.accept().await?;
            let second = second.await??;
            let (second_server, _) = listener.accept().await?;
            second.write_all(b"made it").await?;
            let mut buf = [0; 7];
            second_server.read_exact(&mut buf).await?;
            assert_eq!(&buf, b"made it");
            drop(first);
            Ok(())
        });
        std::fs::remove_file(path).unwrap();
    }

    fn readable_after_a_try_read_that_would_block_waits_for_new_data(b: Backend) {
        let spins = run_on(b, async {
            let (a, b) = UnixStream::pair()?;
            let udp = UdpSocket::bind("127.0.0.1:0")?;
            // Nothing there yet: a `WouldBlock` must make the next wait park, not spin.
            let waiting = async {
                let (mut spins, mut buf) = (0, [0; 8]);
                loop {
                    a.readable().await?;
                    match a.try_read(&mut buf) {
                        Err(e) if e.kind() == ErrorKind::WouldBlock => spins += 1,
                        other => return other.map(|_| spins),
                    }
                }
            };
            let udp_waiting = async {
                let (mut spins, mut buf) = (0, [0; 8]);
                loop {
                    udp.readable().await?;
                    match udp.try_recv_from(&mut buf) {
                        Err(e) if e.kind() == ErrorKind::WouldBlock => spins += 1,
                        other => return other.map(|_| spins),
                    }
                }
            };
            let later = async {
                sleep(Duration::from_millis(20)).await?;
                b.write_all(b"x").await?;
                UdpSocket::bind("127.0.0.1:0")?.send_to(b"x", udp.local_addr()?).await
            };
            let ((stream_spins, udp_spins), sent) =
                futures_join(futures_join(waiting, udp_waiting), later).await;
            sent?;
            Ok((stream_spins?, udp_spins?))
        });
        assert_eq!(spins, (1, 1), "one WouldBlock each, then a real wait");
    }

    // ---- Pipes ----

    fn a_pipe_is_read_until_end_of_file_once_the_writer_is_dropped(b: Backend) {
        run_on(b, async {
            let (reader, writer) = pipe()?;
            let sent = Rc::new(pattern(1 << 20)); // far more than a pipe buffer holds
            let writing = spawn({
                let sent = Rc::clone(&sent);
                async move { writer.write_all(&sent).await }
            })?;
            let received = read_to_end(&reader).await?;
            writing.await??;
            assert!(received == *sent, "the bytes differ");
            Ok(())
        });
    }

    fn writing_to_a_pipe_whose_reader_is_gone_is_broken_pipe_and_the_process_survives(b: Backend) {
        run_on(b, async {
            let (reader, writer) = pipe()?;
            drop(reader);
            let err = writer.write(b"anyone?").await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{err}");
            let err = writer.try_write(b"anyone?").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{err}");
            Ok(())
        });
    }

    fn a_childs_stdin_stdout_and_stderr_are_pipes_on_the_loop(b: Backend) {
        let mut child = Command::new("sh")
            .args(["-c", "cat; echo done >&2"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = PipeWriter::from(child.stdin.take().unwrap());
        let stdout = PipeReader::from(child.stdout.take().unwrap());
        let stderr = PipeReader::from(child.stderr.take().unwrap());
        let (echoed, errors) = run_on(b, async move {
            // More than the pipes hold: cat's output must be read while its input is written.
            let sent = pattern(512 * 1024);
            let writing = spawn(async move {
                stdin.write_all(&sent).await?;
                Ok::<_, io::Error>(sent)
            })?;
            let echoed = read_to_end(&stdout).await?;
            let errors = read_to_end(&stderr).await?;
            let sent = writing.await??;
            assert!(echoed == sent, "cat's output differs from its input");
            Ok((echoed.len(), errors))
        });
        assert_eq!(echoed, 512 * 1024);
        assert_eq!(errors, b"done\n");
        assert!(child.wait().unwrap().success());
    }

    // ---- The loop's sock_* methods ----

    fn sock_recv_and_sock_sendall_carry_four_mebibytes(b: Backend) {
        let (ours, theirs) = StdUnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        theirs.set_nonblocking(true).unwrap();
        run_on(b, async move {
            let lp = get_running_loop()?;
            let sent = Rc::new(pattern(4 << 20));
            let sending = spawn({
                let sent = Rc::clone(&sent);
                async move {
                    let lp = get_running_loop()?;
                    lp.sock_sendall(&theirs, &sent).await?;
                    Ok::<_, io::Error>(theirs)
                }
            })?;
            let mut received = Vec::with_capacity(sent.len());
            while received.len() < sent.len() / 2 {
                received.extend(lp.sock_recv(&ours, 100_000).await?);
            }
            let mut buf = vec![0; 100_000];
            while received.len() < sent.len() {
                let n = lp.sock_recv_into(&ours, &mut buf).await?;
                assert_ne!(n, 0, "end of stream before all was sent");
                received.extend_from_slice(&buf[..n]);
            }
            assert!(received == *sent, "the bytes differ");
            drop(sending.await??);
            assert_eq!(lp.sock_recv(&ours, 10).await?, b"", "end of stream");
            Ok(())
        });
    }

    fn sock_accept_and_sock_connect_set_up_a_tcp_connection(b: Backend) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        run_on(b, async move {
            let lp = get_running_loop()?;
            let accepting = spawn(async move {
                let lp = get_running_loop()?;
                lp.sock_accept(&listener).await
            })?;
            yield_now().await; // the accept waits on the loop
            let client = sys::socket(Domain::Ipv4, Type::Stream)?;
            lp.sock_connect(&client, addr).await?;
            let client = std::net::TcpStream::from(client);
            let (server, peer) = accepting.await??;
            assert_eq!(peer, client.local_addr()?);
            assert!(sys::is_nonblocking(server.as_fd())?, "returned non-blocking");
            lp.sock_sendall(&server, b"over tcp").await?;
            assert_eq!(lp.sock_recv(&client, 64).await?, b"over tcp");
            Ok(())
        });
    }

    fn sock_connect_to_a_closed_port_is_refused(b: Backend) {
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let err = run_on(b, async move {
            let lp = get_running_loop()?;
            let client = sys::socket(Domain::Ipv4, Type::Stream)?;
            Ok(lp.sock_connect(&client, addr).await.unwrap_err())
        });
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    }

    fn sock_methods_reject_a_blocking_socket_with_invalid_input(b: Backend) {
        let (blocking, _peer) = StdUnixStream::pair().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let errors = run_on(b, async move {
            let lp = get_running_loop()?;
            let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
            let mut buf = [0; 4];
            let client = std::net::TcpStream::connect(listener.local_addr()?)?;
            Ok(vec![
                lp.sock_recv(&blocking, 4).await.unwrap_err(),
                lp.sock_recv_into(&blocking, &mut buf).await.unwrap_err(),
                lp.sock_sendall(&blocking, b"x").await.unwrap_err(),
                lp.sock_accept(&listener).await.unwrap_err(),
                lp.sock_connect(&client, addr).await.unwrap_err(),
            ])
        });
        for err in errors {
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
            assert!(err.to_string().contains("must be non-blocking"), "{err}");
        }
    }

    fn a_dropped_sock_recv_removes_its_reader_and_the_fd_can_be_watched_again(b: Backend) {
        let (ours, mut theirs) = StdUnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let fd = ours.as_raw_fd();
        run_on(b, async move {
            let lp = get_running_loop()?;
            let ours = Rc::new(ours);
            let waiting = spawn({
                let ours = Rc::clone(&ours);
                async move { get_running_loop()?.sock_recv(&*ours, 10).await }
            })?;
            yield_now().await; // it tried, found nothing and added its reader
            assert!(waiting.cancel());
            yield_now().await; // the cancelled task drops its future
            assert!(waiting.cancelled());
            assert!(!lp.remove_reader(fd), "the dropped future removed its reader");

            let fired = Rc::new(Cell::new(false));
            let flag = Rc::clone(&fired);
            lp.add_reader(fd, move |lp| {
                flag.set(true);
                lp.remove_reader(fd);
            })?;
            theirs.write_all(b"x")?;
            while !fired.get() {
                yield_now().await;
            }
            let mut buf = [0; 1];
            (&*ours).read_exact(&mut buf)?;
            Ok(())
        });
    }

    fn sock_methods_of_a_closed_loop_fail_with_loop_error_closed(b: Backend) {
        let closed = new_loop(b);
        closed.close().unwrap();
        let (ours, _theirs) = StdUnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let err = run_on(b, async move {
            Ok(closed.sock_recv(&ours, 1).await.unwrap_err())
        });
        assert_eq!(LoopError::of(&err), Some(LoopError::Closed), "{err}");
    }

    // ---- Conversions ----

    fn into_raw_fd_leaves_the_fd_open_and_no_longer_watched_by_the_loop(b: Backend) {
        let (ours, mut theirs) = StdUnixStream::pair().unwrap();
        let (pipe_ours, pipe_theirs) = fd::pipe().unwrap();
        let udp_ours = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        let udp_theirs = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        run_on(b, async move {
            let lp = get_running_loop()?;
            // Each is first awaited (so registered with the loop), then given up.
            let stream = UnixStream::from(OwnedFd::from(ours));
            let reader = PipeReader::from(pipe_ours);
            let udp = UdpSocket::from(OwnedFd::from(udp_ours));
            let mut buf = [0; 8];
            let read_later = async {
                sleep(Duration::from_millis(5)).await?;
                theirs.write_all(b"s")?;
                fd::write(pipe_theirs.as_fd(), b"p")?;
                udp_theirs.send_to(b"u", udp.local_addr()?)?;
                Ok::<_, io::Error>(())
            };
            let (wrote, n) = futures_join(read_later, stream.read(&mut buf)).await;
            wrote?;
            assert_eq!(n?, 1);
            assert_eq!(reader.read(&mut buf).await?, 1);
            assert_eq!(udp.recv_from(&mut buf).await?.0, 1);

            for raw in [stream.into_raw_fd(), reader.into_raw_fd(), udp.into_raw_fd()] {
                fd::check_open(raw)?;
                // Not watched any more: a reader callback of our own may take the fd.
                lp.add_reader(raw, |_| {})?;
                assert!(lp.remove_reader(raw));
                // SAFETY: `into_raw_fd` gave this fd up to us; nothing else owns it.
                drop(unsafe { OwnedFd::from_raw_fd(raw) });
            }
            Ok(())
        });
    }
}

/// Poll two futures together until both are done (a join without a task per branch, for
/// futures that borrow locals).
async fn futures_join<A: StdFuture, B: StdFuture>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    let (mut out_a, mut out_b) = (None, None);
    std::future::poll_fn(move |cx| {
        if out_a.is_none() {
            if let std::task::Poll::Ready(v) = a.as_mut().poll(cx) {
                out_a = Some(v);
            }
        }
        if out_b.is_none() {
            if let std::task::Poll::Ready(v) = b.as_mut().poll(cx) {
                out_b = Some(v);
            }
        }
        if out_a.is_some() && out_b.is_some() {
            return std::task::Poll::Ready((out_a.take().unwrap(), out_b.take().unwrap()));
        }
        std::task::Poll::Pending
    })
    .await
}
