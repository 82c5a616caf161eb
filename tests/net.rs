//! TCP on the loop, on every backend, over loopback: payloads up to 4 MiB echoed through split
//! streams, a thousand concurrent connections, half-close, resets, `SIGPIPE`, running out of
//! fds, flow control against a client that does not read, fairness against one that floods,
//! and what dropping, converting and moving a stream does to its registration.
//!
//! The server is tulip's own (`support/echo.rs`), the clients tulip streams on the same loop,
//! except where a test needs a peer the loop does not drive (the flooding threads). Nothing
//! asserts a duration: [`TIMEOUT`] only turns a hang into a failure. A scenario that must be
//! able to kill the process (`SIGPIPE`) or that lowers its fd limit runs in a child process
//! (`support/child.rs`).

use std::cell::Cell;
use std::fs::File;
use std::future::Future;
use std::io::{self, ErrorKind};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use tulip::net::{ListenOptions, TcpListener, TcpStream, ACCEPT_RETRY_DELAY};
use tulip::selectors::{fd, net as sys_net, signal, Backend, FD_SETSIZE};
use tulip::LoopError;

#[macro_use]
#[path = "support/per_backend.rs"]
mod per_backend;

#[path = "support/echo.rs"]
mod echo;
use echo::*;

#[path = "support/child.rs"]
mod child;
use child::*;

#[path = "support/loop_test.rs"]
mod loop_test;
use loop_test::*;

// ---------------------------------------------------------------------------------------------
// Running a test on a loop.

fn local_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    let addr = listener.local_addr().expect("its address");
    (listener, addr)
}

/// Poll `future` once, outside any loop, with a waker that does nothing.
fn poll_once<F: Future>(future: F) -> Poll<F::Output> {
    struct Nobody;
    impl Wake for Nobody {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Nobody));
    pin!(future).poll(&mut Context::from_waker(&waker))
}

/// Wait until `progress` has stayed the same for a while (ten looks, 10 ms apart), and return
/// it. A pause of the whole process could pass for a stall: the tests check after it only what
/// holds whether or not the stall is real, and a stall that never comes fails by [`TIMEOUT`].
async fn until_stalled<T: PartialEq>(mut progress: impl FnMut() -> T) -> io::Result<T> {
    let mut last = progress();
    let mut unchanged = 0;
    while unchanged < 10 {
        tulip::sleep(Duration::from_millis(10)).await?;
        let now = progress();
        unchanged = if now == last { unchanged + 1 } else { 0 };
        last = now;
    }
    Ok(last)
}

// ---------------------------------------------------------------------------------------------
// Fds.

/// How many fds this process has open (the directory listing's own included, every time).
#[cfg(target_os = "linux")]
fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd lists this process's fds")
        .count()
}

/// The lowest fd number free now (the kernel hands out the lowest).
fn lowest_free_fd() -> RawFd {
    File::open("/dev/null")
        .expect("/dev/null opens")
        .as_raw_fd()
}

/// Take every fd number below `limit` that is free: the files holding them.
fn take_fds_below(limit: RawFd) -> Vec<File> {
    let mut taken = Vec::new();
    loop {
        let file = File::open("/dev/null").expect("/dev/null opens");
        if file.as_raw_fd() >= limit {
            return taken;
        }
        taken.push(file);
    }
}

/// A socket pair one end of which has fd number `number` (free, or about to be: the kernel
/// hands out the lowest free number, so it comes once the free ones below it are taken).
fn socketpair_numbered(number: RawFd) -> (OwnedFd, OwnedFd) {
    let mut below = Vec::new();
    for _ in 0..64 {
        let (a, b) = fd::socketpair().expect("a socket pair");
        if a.as_raw_fd() == number {
            return (a, b);
        }
        if b.as_raw_fd() == number {
            return (b, a);
        }
        below.push((a, b));
    }
    panic!("fd {number} is still taken: its old owner did not close it");
}

// ---------------------------------------------------------------------------------------------
// Scenarios run in a child process.

/// With `SIGPIPE` back at its default action (the Rust runtime ignores it, which would hide a
/// write that raises it), write to a connection and to a pipe whose peers are gone: each
/// write fails, and the process lives on to exit 0.
fn sigpipe_scenario(b: Backend) {
    signal::restore_default(libc::SIGPIPE).expect("SIGPIPE's default action back");
    let lp = new_loop(b);
    let (listener, addr) = local_listener();
    run_test(&lp, async move {
        let client = TcpStream::connect(addr).await?;
        let (server, _) = listener.accept().await?;
        drop(client);
        // The first write after the peer closed may still be taken (the peer answers it with
        // a reset); one after that fails.
        let gone = loop {
            match server.write(b"to nobody").await {
                Ok(_) => tulip::sleep(Duration::from_millis(1)).await?,
                Err(e) => break e,
            }
        };
        assert!(
            matches!(
                gone.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
            ),
            "a write to a closed connection: {gone}"
        );
        let (_reader, writer) = server.into_split();
        let again = writer.write_all(b"still nobody").await.unwrap_err();
        assert!(
            matches!(
                again.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
            ),
            "and through the writing half: {again}"
        );
        let (reader, writer) = tulip::net::pipe()?;
        drop(reader);
        let broken = writer.write_all(b"down the drain").await.unwrap_err();
        assert_eq!(broken.kind(), ErrorKind::BrokenPipe, "{broken}");
        Ok(())
    });
}

/// What the scenario guards against, to show that it can fail: a plain `write(2)` to a pipe
/// whose reader is gone, with `SIGPIPE` at its default action, kills the process.
fn sigpipe_control() {
    signal::restore_default(libc::SIGPIPE).expect("SIGPIPE's default action back");
    let (reader, writer) = fd::pipe().expect("a pipe");
    drop(reader);
    let _ = fd::write(writer.as_fd(), b"x");
    // Reached only if no SIGPIPE killed the process: the parent sees an exit, and fails.
}

/// Connections wait in the listener's backlog while the process has no fd left: `accept`
/// fails with `EMFILE`, rests instead of spinning, and serves them once fds are freed.
fn emfile_scenario(b: Backend) {
    const CLIENTS: usize = 3;
    let lp = new_loop(b);
    let (listener, addr) = local_listener();
    // Blocking connects, completed by the kernel in the backlog whether or not accept can take
    // them; made before the fds run out, as a client elsewhere would have its own.
    let clients: Vec<std::net::TcpStream> = (0..CLIENTS)
        .map(|_| std::net::TcpStream::connect(addr).expect("a connection in the backlog"))
        .collect();
    // A soft limit a little above the fds in use (this is a child: it stays lowered), then
    // every fd left taken.
    let (_, hard) = fd::nofile_limit().expect("RLIMIT_NOFILE");
    fd::set_nofile_limit(lowest_free_fd() as u64 + 16, hard).expect("a lower soft limit");
    let mut hoard = Vec::new();
    let exhausted = loop {
        match File::open("/dev/null") {
            Ok(file) => hoard.push(file),
            Err(e) => break e,
        }
    };
    assert_eq!(exhausted.raw_os_error(), Some(libc::EMFILE), "{exhausted}");

    run_test(&lp, async move {
        let echo = spawn_echo(listener)?;
        let lp = tulip::get_running_loop()?;
        let before = lp.stats();
        let start = Instant::now();
        // Look every half retry delay until accept has failed three times: each look costs a
        // select or two of its own, counted below.
        let mut looks = 0;
        while echo.accept_errors.borrow().len() < 3 {
            tulip::sleep(ACCEPT_RETRY_DELAY / 2).await?;
            looks += 1;
        }
        let selects = lp.stats().selects - before.selects;
        let elapsed = start.elapsed();
        let errors = echo.accept_errors.borrow().len() as u64;
        for e in echo.accept_errors.borrow().iter() {
            assert_eq!(
                e.raw_os_error(),
                Some(libc::EMFILE),
                "accept out of fds: {e}"
            );
        }
        assert_eq!(echo.accepted.get(), 0);
        // Not spinning: accept tries again at most once per ACCEPT_RETRY_DELAY (a spinning
        // server fails thousands of times in that time) ...
        let most = elapsed.as_nanos() / ACCEPT_RETRY_DELAY.as_nanos() + 2;
        assert!(
            u128::from(errors) <= most,
            "{errors} EMFILEs in {elapsed:?}: accept retried sooner than every {ACCEPT_RETRY_DELAY:?}"
        );
        // ... and the loop sleeps meanwhile: a select or two per retry and per look, not one
        // per turn of a busy loop, although the listener is readable all along (its
        // connections wait in the backlog).
        assert!(
            selects <= 4 * (errors + looks) + 8,
            "{selects} selects for {errors} retries and {looks} looks: the loop spins"
        );

        drop(hoard);
        eventually(|| echo.accepted.get() == CLIENTS).await?;
        for (i, client) in clients.into_iter().enumerate() {
            let client = TcpStream::from_std(client)?;
            round_trip(
                &client,
                format!("client {i}, served after EMFILE").as_bytes(),
            )
            .await?;
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// The tests.

/// `send(2)` with `flags` (`MSG_OOB`), which std does not offer; the whole of `data` or a
/// panic.
fn send_with_flags(fd: RawFd, data: &[u8], flags: i32) -> io::Result<()> {
    // SAFETY: `data` is valid for reads of `data.len()` bytes for the call; `fd` is a socket
    // the caller keeps open across it.
    let n = unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), flags) };
    match usize::try_from(n) {
        Ok(n) if n == data.len() => Ok(()),
        Ok(n) => panic!("send took {n} of {} bytes", data.len()),
        Err(_) => Err(io::Error::last_os_error()),
    }
}

per_backend! {
    /// TCP urgent data stops a read at the urgent mark with more queued behind it: a short
    /// read that has not drained the socket. The reader, parked before any of it arrives,
    /// must still get what follows the mark (an edge-triggered registration is told of the
    /// urgent data, and stops taking short reads for "drained" until a read would block).
    fn a_read_stopped_at_the_tcp_urgent_mark_does_not_stall_the_next(b: Backend) {
        let lp = new_loop(b);
        let (listener, addr) = local_listener();
        let (first, second) = run_test(&lp, async move {
            let client = TcpStream::connect(addr).await?;
            let (server, _) = listener.accept().await?;
            let reader = tulip::spawn(async move {
                let mut buf = [0u8; 64];
                let n = server.read(&mut buf).await?;
                let first = buf[..n].to_vec();
                let n = server.read(&mut buf).await?;
                Ok::<_, io::Error>((first, buf[..n].to_vec()))
            })?;
            tulip::sleep(Duration::from_millis(20)).await?;
            // "ab" with 'b' the urgent byte (out of band, not in the stream), then "cd".
            send_with_flags(client.as_raw_fd(), b"ab", libc::MSG_OOB)?;
            send_with_flags(client.as_raw_fd(), b"cd", 0)?;
            reader.await?
        });
        assert_eq!(first, b"a", "the read stops at the urgent mark");
        assert_eq!(second, b"cd", "and the next one gets what follows");
    }

    /// 1 B to 4 MiB, each on its own connection, written and read back at once through the
    /// halves of `split()`: the bytes come back intact, in order, and the server sees each
    /// connection end cleanly.
    fn payloads_from_one_byte_to_four_mib_echo_intact_through_a_split_stream(b: Backend) {
        const SIZES: [usize; 5] = [1, 1024, 64 * 1024, 1024 * 1024, 4 * 1024 * 1024];
        let lp = new_loop(b);
        let (listener, addr) = local_listener();
        run_test(&lp, async move {
            let echo = spawn_echo(listener)?;
            for len in SIZES {
                let payload = pattern(0, len);
                let stream = TcpStream::connect(addr).await?;
                let echoed = echo_through_split(&stream, &payload).await?;
                assert_eq!(echoed.len(), len, "the whole payload of {len} bytes comes back");
                assert_pattern(0, &echoed);
            }
            eventually(|| echo.ended.borrow().len() == SIZES.len()).await?;
            assert!(echo.ended.borrow().iter().all(Result::is_ok));
            Ok(())
        });
    }

    /// A thousand connections open at once on one loop, then all of them making round trips
    /// at once, each with its own messages.
    ///
    /// select cannot watch an fd at or above FD_SETSIZE (1024), and each connection takes two
    /// (the client's and the server's end): on select the test runs as many connections as
    /// fit below FD_SETSIZE (about 490), which still tests what select can do; the refusal past
    /// it is the next test's. Exclusive: fd numbers are process-wide, so a thousand connections
    /// would push other tests' select fds past FD_SETSIZE.
    exclusive fn a_thousand_concurrent_connections_each_make_round_trips_on_one_loop(b: Backend) {
        const WANTED: usize = 1000;
        let limit = fd::raise_nofile_limit(4096).expect("RLIMIT_NOFILE raised");
        let lp = new_loop(b);
        let (listener, addr) = local_listener();
        let count = if b == Backend::Select {
            let fit = (FD_SETSIZE - lowest_free_fd() as usize - 32) / 2;
            assert!(fit >= 400, "only {fit} connections fit below FD_SETSIZE");
            fit
        } else {
            let needed = (2 * WANTED + 64) as u64;
            assert!(limit >= needed, "RLIMIT_NOFILE {limit}, {needed} fds needed");
            WANTED
        };
        run_test(&lp, async move {
            let echo = spawn_echo(listener)?;
            // Connected in batches smaller than the listener's backlog (128), so that no SYN
            // is dropped and retried a second later; all of them stay open.
            let mut clients = Vec::with_capacity(count);
            while clients.len() < count {
                let batch = (count - clients.len()).min(100);
                clients.extend(tulip::gather((0..batch).map(|_| TcpStream::connect(addr))).await?);
            }
            let talks = clients
                .into_iter()
                .enumerate()
                .map(|(id, client)| tulip::spawn(talk(id, client)))
                .collect::<io::Result<Vec<_>>>()?;
            for outcome in tulip::gather(talks).await? {
                outcome?;
            }
            eventually(|| echo.ended.borrow().len() == count).await?;
            assert!(echo.ended.borrow().iter().all(Result::is_ok));
            assert_eq!(echo.accepted.get(), count);
            assert!(echo.accept_errors.borrow().is_empty());
            Ok(())
        });
    }

    /// Sockets numbered past FD_SETSIZE: poll and epoll serve them like any other; select
    /// refuses them with `InvalidInput` naming the limit (instead of writing past its fd_set),
    /// and the loop and the server go on serving sockets it can watch. Exclusive: it takes
    /// every fd number below FD_SETSIZE.
    exclusive fn a_socket_past_fd_setsize_is_served_or_refused_clearly_by_select(b: Backend) {
        fd::raise_nofile_limit(2 * FD_SETSIZE as u64).expect("RLIMIT_NOFILE raised");
        let lp = new_loop(b);
        let (listener, addr) = local_listener();
        let below = take_fds_below(FD_SETSIZE as RawFd);
        run_test(&lp, async move {
            let echo = spawn_echo(listener)?;
            let high = async {
                let client = TcpStream::connect(addr).await?;
                assert!(client.as_raw_fd() >= FD_SETSIZE as RawFd);
                round_trip(&client, b"past FD_SETSIZE").await
            }
            .await;
            if b == Backend::Select {
                let refused = high.expect_err("select cannot watch an fd past FD_SETSIZE");
                assert_eq!(refused.kind(), ErrorKind::InvalidInput, "{refused}");
                assert!(refused.to_string().contains("FD_SETSIZE"), "says why: {refused}");
            } else {
                high?;
            }
            drop(below);
            let low = TcpStream::connect(addr).await?;
            round_trip(&low, b"below FD_SETSIZE").await?;
            assert!(echo.accept_errors.borrow().is_empty());
            Ok(())
        });
    }

    /// `shutdown(Write)` ends the client's stream, not the connection: the server reads the
    /// request to its end (a read of 0), then still writes its reply, which the client reads
    /// before its own end of stream. The client cannot write any more (`BrokenPipe`).
    fn after_the_client_shuts_down_writing_the_server_reads_eof_and_still_replies(b: Backend) {
        let lp = new_loop(b);
        let (listener, addr) = local_listener();
        run_test(&lp, async move {
            let client = TcpStream::connect(addr).await?;
            let (server, _) = listener.accept().await?;
            let server = tulip::spawn(async move {
                let request = read_to_end(&server).await?;
                let mut reply = b"answer to ".to_vec();
                reply.extend_from_slice(&request);
                server.write_all(&reply).await?;
                Ok::<_, io::Error>(request)
            })?;
            client.write_all(b"question").await?;
            client.shutdown(Shutdown::Write)?;
            let late = client.write(b"more").await.expect_err("no write after shutdown(Write)");
            assert_eq!(late.kind(), ErrorKind::BrokenPipe, "{late}");
            assert_eq!(read_to_end(&client).await?, b"answer to question");
            assert_eq!(client.read(&mut [0; 8]).await?, 0, "the end of stream, again");
            assert_eq!(server.await??, b"question");
            Ok(())
        });
    }

    /// A client that closes with its echo unread makes the kernel reset the connection
    /// (RFC 2525, 2.17) instead of ending it: the server's read of it fails with
    /// `ConnectionReset`, and that ends its task only. A connection open since before goes on,
    /// and new ones are accepted: the loop and the server run on.
    fn a_reset_connection_fails_only_its_own_task_and_the_server_goes_on(b: Backend) {
        let lp = new_loop(b);
        let (listener, addr) = local_listener();
        run_test(&lp, async move {
            let echo = spawn_echo(listener)?;
            let steady = TcpStream::connect(addr).await?;
            round_trip(&steady, b"before").await?;

            let rude = TcpStream::connect(addr).await?;
            rude.write_all(b"ping").await?;
            // Until the echo is in its receive buffer (peeked, not read), then closed.
            let rude = rude.into_std();
            eventually(|| matches!(rude.peek(&mut [0; 4]), Ok(4))).await?;
            drop(rude);
            eventually(|| !echo.ended.borrow().is_empty()).await?;
            match &echo.ended.borrow()[0] {
                Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
                Ok(()) => panic!("the server saw an orderly end, not a reset"),
            }

            round_trip(&steady, b"after").await?;
            let newcomer = TcpStream::connect(addr).await?;
            round_trip(&newcomer, b"new").await?;
            assert_eq!(echo.ended.borrow().len(), 1);
            Ok(())
        });
    }

    /// Writes to a connection and to a pipe whose peers are gone fail (`BrokenPipe`, or
    /// `ConnectionReset` for a connection the peer reset) and never raise `SIGPIPE`. The Rust
    /// runtime ignores `SIGPIPE` in every process, which would hide a raised one, so the writes
    /// run in a child process that first restores its default action: killed by it, the child
    /// would not exit 0. A control child shows that a plain `write(2)` there does die of it.
    fn writing_to_a_peer_that_is_gone_fails_without_killing_the_process(b: Backend) {
        match child_role().as_deref() {
            Some("sigpipe") => return sigpipe_scenario(b),
            Some("sigpipe-control") => return sigpipe_control(),
            _ => {}
        }
        let name = test_name(module_path!(), b);
        let control = run_in_child(&name, "sigpipe-control");
        assert_eq!(control.status.signal(), Some(libc::SIGPIPE), "{}", describe(&control));
        assert_child_passed(&run_in_child(&name, "sigpipe"));
    }

    /// Out of fds, `accept` returns `EMFILE` and the server, which logs it and accepts again,
    /// neither spins nor stops: each retry waits ACCEPT_RETRY_DELAY, the loop sleeps
    /// meanwhile (counted in selects, not timed), and once fds are freed the connections that
    /// waited in the backlog are accepted and served. In a child process, whose fd limit
    /// can be lowered for good.
    fn accept_out_of_fds_rests_instead_of_spinning_and_recovers(b: Backend) {
        if child_role().as_deref() == Some("emfile") {
            return emfile_scenario(b);
        }
        assert_child_passed(&run_in_child(&test_name(module_path!(), b), "emfile"));
    }

    /// A client that writes without ever reading stalls its own connection and nothing else:
    /// the server's write to it waits (its write_all does not complete nor buffer more), so
    /// the server holds at most its one buffer of that client's bytes and stops reading, the
    /// kernel's buffers fill and the client's writes wait too. Meanwhile another client is
    /// served as usual. Once the slow client stops writing and reads, every byte comes back in
    /// order. A server that buffered what it cannot send would never stall (the test would
    /// time out).
    fn a_client_that_does_not_read_stalls_only_its_own_connection(b: Backend) {
        let lp = new_loop(b);
        let (listener, addr) = local_listener();
        run_test(&lp, async move {
            let echo = spawn_echo(listener)?;
            let (slow_reader, slow_writer) = TcpStream::connect(addr).await?.into_split();
            let sent = Rc::new(Cell::new(0));
            let flood = tulip::spawn(write_pattern_forever(slow_writer, Rc::clone(&sent)))?;

            let progress = || (sent.get(), echo.bytes_read.get(), echo.bytes_written.get());
            let (stalled_at, read, written) = until_stalled(progress).await?;
            assert!(!flood.done(), "the client's writes wait: {stalled_at} bytes sent");
            assert!(
                echo.held() <= ECHO_BUFFER as u64,
                "the server holds at most its buffer: {read} bytes read, {written} written"
            );

            let other = TcpStream::connect(addr).await?;
            for trip in 0..20 {
                round_trip(&other, format!("round trip {trip} beside a stall").as_bytes()).await?;
            }
            drop(other);
            assert!(!flood.done(), "the slow client is still stalled");
            assert!(echo.held() <= ECHO_BUFFER as u64, "and the server holds no more");

            // Dropping the writing half (with the cancelled task) ends the client's stream.
            flood.cancel();
            let cancelled = flood.await.expect_err("cancelled");
            assert_eq!(LoopError::of(&cancelled), Some(LoopError::Cancelled));
            assert_eq!(read_pattern_to_end(&slow_reader).await?, sent.get());
            eventually(|| echo.ended.borrow().len() == 2).await?;
            assert!(echo.ended.borrow().iter().all(Result::is_ok));
            Ok(())
        });
    }

    /// A peer that floods the server (another thread, writing faster than the server reads
    /// and reading the echo as fast as it comes) keeps the server's task for it always ready,
    /// so that it seldom waits: the per-step I/O budget makes that task yield all the same, so
    /// another connection's round trips go through while the flood goes on, and the flood's
    /// task moves a bounded amount per loop iteration meanwhile (a count, not a time). Every
    /// flooded byte comes back.
    fn a_client_flooding_the_server_does_not_starve_another_connection(b: Backend) {
        const FLOOD_UNDER_WAY: u64 = 4 * 1024 * 1024;
        // Small reads keep the server slower than the flooding thread, so its reads always
        // find data (with ECHO_BUFFER they sometimes drain it, and wait).
        const SERVER_BUFFER: usize = 1024;
        const MAX_ECHOED_PER_ITERATION: u64 = 4 * 64 * SERVER_BUFFER as u64;
        let lp = new_loop(b);
        let (listener, addr) = local_listener();
        let flood = Flood::start(addr).expect("the flood connects");
        let (stop, received) = (Arc::clone(&flood.stop), Arc::clone(&flood.received));
        run_test(&lp, async move {
            let echo = spawn_echo_with_buffer(listener, SERVER_BUFFER)?;
            eventually(|| echo.bytes_written.get() >= FLOOD_UNDER_WAY).await?;
            let lp = tulip::get_running_loop()?;
            let (iterations, echoed) = (lp.stats().iterations, echo.bytes_written.get());
            let other = TcpStream::connect(addr).await?;
            for trip in 0..50 {
                round_trip(&other, format!("round trip {trip} beside a flood").as_bytes()).await?;
            }
            drop(other);
            // What the flood's task moved per loop iteration meanwhile: bounded by the budget
            // (128 operations per step: 64 reads and 64 writes of SERVER_BUFFER), where a
            // task let run until its socket would block moves megabytes at a time.
            let iterations = lp.stats().iterations - iterations;
            let echoed = echo.bytes_written.get() - echoed;
            assert!(
                echoed <= iterations * MAX_ECHOED_PER_ITERATION,
                "{echoed} bytes echoed in {iterations} iterations: a task ran without yielding"
            );
            // The flood was still on (it stops only when told to), and goes on.
            let echoed = received.load(Ordering::Relaxed);
            eventually(|| received.load(Ordering::Relaxed) >= echoed + FLOOD_UNDER_WAY).await?;
            stop.store(true, Ordering::Relaxed);
            eventually(|| echo.ended.borrow().len() == 2).await?;
            assert!(echo.ended.borrow().iter().all(Result::is_ok));
            Ok(())
        });
        let (sent, received) = flood.join();
        assert_eq!(sent, received, "every flooded byte came back");
        assert!(sent >= FLOOD_UNDER_WAY);
    }

    /// Two tasks waiting for one stream to be readable are both woken by the data (the second
    /// waiter is kept next to the first, not in its place), and both can wait again after.
    fn two_tasks_waiting_for_one_stream_to_be_readable_are_both_woken(b: Backend) {
        let lp = new_loop(b);
        let (listener, addr) = local_listener();
        run_test(&lp, async move {
            let client = Rc::new(TcpStream::connect(addr).await?);
            let (server, _) = listener.accept().await?;
            for round in 0..2u8 {
                // Drained: readable() now waits for the next data.
                let nothing = client.try_read(&mut [0; 4]).expect_err("nothing to read yet");
                assert_eq!(nothing.kind(), ErrorKind::WouldBlock);
                let woken = Rc::new(Cell::new(0));
                let waiters = [0, 1].map(|_| {
                    let (client, woken) = (Rc::clone(&client), Rc::clone(&woken));
                    tulip::spawn(async move {
                        client.readable().await?;
                        woken.set(woken.get() + 1);
                        io::Result::Ok(())
                    })
                });
                for _ in 0..3 {
                    tulip::yield_now().await;
                }
                assert_eq!(woken.get(), 0, "round {round}: readable() with nothing to read");
                server.write_all(&[round]).await?;
                for waiter in waiters {
                    waiter?.await??;
                }
                assert_eq!(woken.get(), 2, "round {round}");
                let mut buf = [0; 4];
                assert_eq!(client.read(&mut buf).await?, 1);
                assert_eq!(buf[0], round);
            }
            Ok(())
        });
    }

    /// After `try_read` finds nothing (`WouldBlock`), `readable()` waits for data instead of
    /// returning at once, so the usual `readable` + `try_read` loop sleeps rather than spins;
    /// likewise `writable()` after `try_write` finds the socket full. Counted in wake-ups.
    fn readable_and_writable_wait_after_try_read_and_try_write_would_block(b: Backend) {
        let lp = new_loop(b);
        let (listener, addr) = local_listener();
        run_test(&lp, async move {
            let client = Rc::new(TcpStream::connect(addr).await?);
            let (server, _) = listener.accept().await?;
            let server = Rc::new(server);

            let mut buf = [0; 16];
            let nothing = client.try_read(&mut buf).expect_err("nothing to read yet");
            assert_eq!(nothing.kind(), ErrorKind::WouldBlock);
            let wakeups = Rc::new(Cell::new(0));
            let reader = tulip::spawn({
                let (client, wakeups) = (Rc::clone(&client), Rc::clone(&wakeups));
                async move {
                    loop {
                        client.readable().await?;
                        wakeups.set(wakeups.get() + 1);
                        match client.try_read(&mut buf) {
                            Ok(n) => return Ok(buf[..n].to_vec()),
                            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                            Err(e) => return Err(e),
                        }
                    }
                }
            })?;
            for _ in 0..3 {
                tulip::yield_now().await;
            }
            assert_eq!(wakeups.get(), 0, "readable() returned with nothing to read");
            server.write_all(b"hello").await?;
            assert_eq!(reader.await??, b"hello");
            assert_eq!(wakeups.get(), 1);

            // Full: the kernel takes no more.
            let chunk = pattern_chunk(0, ECHO_BUFFER / 2);
            let mut filled = 0;
            loop {
                match client.try_write(chunk) {
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            wakeups.set(0);
            let writer = tulip::spawn({
                let (client, wakeups) = (Rc::clone(&client), Rc::clone(&wakeups));
                async move {
                    loop {
                        client.writable().await?;
                        wakeups.set(wakeups.get() + 1);
                        match client.try_write(chunk) {
                            Ok(n) => return Ok(n),
                            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                            Err(e) => return Err(e),
                        }
                    }
                }
            })?;
            for _ in 0..3 {
                tulip::yield_now().await;
            }
            assert_eq!(wakeups.get(), 0, "writable() returned with no room");
            // Drained, the socket takes the writer's chunk.
            let mut drained = 0;
            let mut buf = vec![0; ECHO_BUFFER];
            while !writer.done() {
                drained += server.read(&mut buf).await?;
            }
            let last = writer.await??;
            assert!(wakeups.get() >= 1);
            while drained < filled + last {
                drained += server.read(&mut buf).await?;
            }
            Ok(())
        });
    }

    /// Dropping a stream while a task waits on it (the task is cancelled, and its coroutine
    /// with the stream dropped) unregisters it before closing it: the client sees the end of
    /// the connection, a new socket given the same fd number can have a reader callback on the
    /// loop, and no fd is left open. Exclusive: it waits for its fd number to be reused.
    exclusive fn dropping_a_stream_a_cancelled_task_waits_on_unregisters_and_closes_it(
        b: Backend
    ) {
        #[cfg(target_os = "linux")]
        let fds_before = open_fd_count();
        let lp = new_loop(b);
        let (listener, addr) = local_listener();
        run_test(&lp, async move {
            let client = TcpStream::connect(addr).await?;
            let (server, _) = listener.accept().await?;
            let number = server.as_raw_fd();
            let waiting = tulip::spawn(async move { server.read(&mut [0; 8]).await })?;
            tulip::yield_now().await;
            assert!(!waiting.done(), "the read waits: the loop watches the socket");
            waiting.cancel();
            let cancelled = waiting.await.expect_err("cancelled");
            assert_eq!(LoopError::of(&cancelled), Some(LoopError::Cancelled));
            assert_eq!(client.read(&mut [0; 8]).await?, 0, "the server's socket is closed");

            let (reused, peer) = socketpair_numbered(number);
            let lp = tulip::get_running_loop()?;
            let fired = Rc::new(Cell::new(false));
            let flag = Rc::clone(&fired);
            lp.add_reader(reused.as_raw_fd(), move |_| flag.set(true))?;
            fd::write(peer.as_fd(), b"x")?;
            eventually(|| fired.get()).await?;
            assert!(lp.remove_reader(reused.as_raw_fd()));
            Ok(())
        });
        drop(lp);
        #[cfg(target_os = "linux")]
        assert_eq!(open_fd_count(), fds_before, "every fd the test opened is closed");
    }

    /// `into_std` and `OwnedFd::from` give the socket back unregistered (the loop lets a
    /// reader callback have its fd), open, connected and still non-blocking; adopted again,
    /// it talks on. `into_raw_fd` too.
    fn into_std_and_into_raw_fd_give_back_an_open_unregistered_socket(b: Backend) {
        let lp = new_loop(b);
        let (listener, addr) = local_listener();
        run_test(&lp, async move {
            let _echo = spawn_echo(listener)?;
            let lp = tulip::get_running_loop()?;
            let unregistered = |fd: RawFd| -> io::Result<()> {
                lp.add_reader(fd, |_| {})?;
                assert!(lp.remove_reader(fd));
                Ok(())
            };
            let stream = TcpStream::connect(addr).await?;
            // Waiting for the echo leaves the socket watched.
            round_trip(&stream, b"one").await?;
            let std_stream = stream.into_std();
            assert!(sys_net::is_nonblocking(std_stream.as_fd())?, "still non-blocking");
            unregistered(std_stream.as_raw_fd())?;
            let stream = TcpStream::from_std(std_stream)?;
            round_trip(&stream, b"two").await?;

            let owned = OwnedFd::from(stream);
            unregistered(owned.as_raw_fd())?;
            let stream = TcpStream::from(owned);
            round_trip(&stream, b"three").await?;

            // Safe code cannot take a raw fd back into ownership: this one stays open (and
            // connected) until the process exits.
            let raw = stream.into_raw_fd();
            fd::check_open(raw)?;
            unregistered(raw)?;
            Ok(())
        });
    }

    /// A user's own socket, made by std (blocking), adopted with `From<OwnedFd>`: made
    /// non-blocking, and it works like any tulip stream, for a 1 MiB echo too.
    fn a_users_blocking_std_socket_adopted_from_an_owned_fd_works(b: Backend) {
        let lp = new_loop(b);
        let (listener, addr) = local_listener();
        run_test(&lp, async move {
            let _echo = spawn_echo(listener)?;
            // A blocking connect inside the loop, which is fine on loopback: the kernel
            // completes it in the listener's backlog.
            let mine = std::net::TcpStream::connect(addr)?;
            assert!(!sys_net::is_nonblocking(mine.as_fd())?);
            let stream = TcpStream::from(OwnedFd::from(mine));
            assert!(sys_net::is_nonblocking(stream.as_fd())?);
            round_trip(&stream, b"adopted").await?;
            let payload = pattern(0, 1024 * 1024);
            assert_pattern(0, &echo_through_split(&stream, &payload).await?);
            Ok(())
        });
    }

    /// Outside a running loop, an operation that can complete at once does, and one that
    /// would have to wait fails at once with `LoopError::NoRunningLoop` instead of hanging.
    fn a_stream_that_would_wait_outside_a_running_loop_fails_with_no_running_loop(b: Backend) {
        let lp = new_loop(b);
        let (listener, addr) = local_listener();
        let (client, server, listener) = run_test(&lp, async move {
            let client = TcpStream::connect(addr).await?;
            let (server, _) = listener.accept().await?;
            Ok((client, server, listener))
        });
        let no_running_loop = |what: &str, outcome: Poll<io::Result<()>>| match outcome {
            Poll::Ready(Err(e)) => assert_eq!(LoopError::of(&e), Some(LoopError::NoRunningLoop), "{what}: {e}"),
            Poll::Ready(Ok(())) => panic!("{what} would have had to wait, yet succeeded"),
            Poll::Pending => panic!("{what} waits for a loop that does not run: a hang"),
        };
        let mut buf = [0; 8];
        assert!(matches!(poll_once(server.write(b"hi")), Poll::Ready(Ok(2))));
        assert!(matches!(poll_once(client.read(&mut buf)), Poll::Ready(Ok(2))));
        no_running_loop("a read", poll_once(async { client.read(&mut buf).await.map(drop) }));
        no_running_loop("accept", poll_once(async { listener.accept().await.map(drop) }));
        // Connecting on loopback may complete at once (Done, no wait); else it must wait.
        match poll_once(TcpStream::connect(addr)) {
            Poll::Ready(Ok(_)) => {}
            outcome => no_running_loop("connect", outcome.map(|r| r.map(drop))),
        }
    }

    /// Connecting to a port nobody listens on fails with `ConnectionRefused`.
    fn connecting_to_a_closed_port_is_refused(b: Backend) {
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
            listener.local_addr().expect("its address")
        };
        let lp = new_loop(b);
        run_test(&lp, async move {
            let refused = TcpStream::connect(closed).await.expect_err("nobody listens there");
            assert_eq!(refused.kind(), ErrorKind::ConnectionRefused, "{refused}");
            Ok(())
        });
    }

    /// A stream last watched by one loop works on a second once the first has finished (it
    /// re-registers there, and the first forgets it: a reader callback may have its fd
    /// there), and on a third after the second was closed.
    fn a_stream_moves_to_another_loop_once_the_first_has_finished(b: Backend) {
        let first = new_loop(b);
        let (listener, addr) = local_listener();
        let (client, server) = run_test(&first, async move {
            let client = Rc::new(TcpStream::connect(addr).await?);
            let server = Rc::new(listener.accept().await?.0);
            // A read that waits, so that the first loop watches the socket, then cancelled:
            // the loop goes on watching it until an event finds nobody waiting.
            let waiting = tulip::spawn({
                let server = Rc::clone(&server);
                async move { server.read(&mut [0; 8]).await }
            })?;
            tulip::yield_now().await;
            assert!(!waiting.done());
            waiting.cancel();
            assert!(waiting.await.is_err());
            Ok((client, server))
        });
        let server_fd = server.as_raw_fd();

        let second = new_loop(b);
        let (client, server) = run_test(&second, ping_pong(client, server));
        first.add_reader(server_fd, |_| {}).expect("the first loop forgot the socket");
        assert!(first.remove_reader(server_fd));

        second.close().expect("the second loop closes");
        drop(second);
        let third = new_loop(b);
        run_test(&third, ping_pong(client, server));
    }
}

/// The server waits for a message before the client sends it (so its read waits on the
/// running loop), then echoes it: both streams, for the next loop.
async fn ping_pong(
    client: Rc<TcpStream>,
    server: Rc<TcpStream>,
) -> io::Result<(Rc<TcpStream>, Rc<TcpStream>)> {
    let listening = tulip::spawn({
        let server = Rc::clone(&server);
        async move {
            let mut buf = [0; 4];
            server.read_exact(&mut buf).await?;
            server.write_all(&buf).await
        }
    })?;
    tulip::yield_now().await;
    client.write_all(b"ping").await?;
    let mut buf = [0; 4];
    client.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"ping");
    listening.await??;
    Ok((client, server))
}

/// `reuse_port` lets a second listener bind a port a first one holds; without it the second
/// gets `AddrInUse`. Options reach the kernel whatever the loop's backend: no loop here.
#[test]
fn reuse_port_lets_two_listeners_share_a_port_and_without_it_the_second_is_addr_in_use() {
    let shared = ListenOptions {
        reuse_port: true,
        ..ListenOptions::default()
    };
    let first = TcpListener::bind_with("127.0.0.1:0", shared).unwrap();
    let addr = first.local_addr().unwrap();
    let second = TcpListener::bind_with(addr, shared).expect("SO_REUSEPORT on both");
    assert_eq!(second.local_addr().unwrap(), addr);
    let err = TcpListener::bind_with(addr, ListenOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
}
