//! Subprocesses (`tulip::process`) and pipe transports (`connect_read_pipe`,
//! `connect_write_pipe`), on every backend and, for subprocesses, with both child watchers
//! (pidfd where the kernel has it, SIGCHLD everywhere): `communicate` with 10 MiB each way,
//! 100 concurrent children all reaped, a child of someone else's left alone, signals and the
//! return codes they give, a missing program, a child that exits before its pipes close and
//! pipes that close before it exits, a dropped `Process` still reaped; pipe transports on a
//! child's stdin and stdout, and a reader that closes early (`BrokenPipe`).
//!
//! Nothing asserts a duration: [`TIMEOUT`] only turns a hang into a failure.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io::{self, ErrorKind};
use std::os::fd::OwnedFd;
use std::pin::pin;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::task::Poll;

use tulip::process::{
    create_subprocess_exec, create_subprocess_shell, ChildWatcher, Process, Redirect,
    SubprocessOptions,
};
use tulip::selectors::process::is_zombie_child;
use tulip::selectors::Backend;
use tulip::streams::{LimitOverrunError, DEFAULT_LIMIT};
use tulip::{gather, EventLoop, Protocol, Transport};

#[macro_use]
#[path = "support/per_backend.rs"]
mod per_backend;

#[path = "support/child.rs"]
mod child;

#[path = "support/loop_test.rs"]
mod loop_test;
use loop_test::*;

/// The watchers this kernel has: SIGCHLD always, pidfd on Linux 5.3+.
fn watchers() -> Vec<ChildWatcher> {
    [ChildWatcher::Pidfd, ChildWatcher::Sigchld]
        .into_iter()
        .filter(|w| w.is_available())
        .collect()
}

fn piped(watcher: ChildWatcher) -> SubprocessOptions {
    SubprocessOptions::new()
        .stdin(Redirect::Pipe)
        .stdout(Redirect::Pipe)
        .stderr(Redirect::Pipe)
        .watcher(watcher)
}

async fn sh(script: &str, options: SubprocessOptions) -> io::Result<Process> {
    create_subprocess_exec("sh", ["-c", script], options).await
}

/// `pid` was reaped (by the loop): it is no child of ours any more.
fn assert_reaped(pid: u32) {
    match is_zombie_child(pid) {
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {}
        other => panic!("child {pid} is not reaped: {other:?}"),
    }
}

/// Bytes that no shift or truncation maps onto themselves.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x2545_f491;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

per_backend! {
    /// 10 MiB through `cat` with `communicate`, stdin fed while stdout is read; and 10 MiB
    /// from a child's stdout and stderr at once, with nothing fed.
    fn communicate_moves_10_mib_each_way(b: Backend) {
        for watcher in watchers() {
            let lp = new_loop(b);
            run_test(&lp, async move {
                let data = pattern(10 << 20);
                let mut cat = create_subprocess_exec("cat", ["-"], piped(watcher)).await?;
                assert_eq!(cat.returncode(), None);
                let (out, err) = cat.communicate(Some(&data)).await?;
                assert!(out == data, "{watcher:?}: {} bytes back, not the same", out.len());
                assert!(err.is_empty());
                assert_eq!(cat.returncode(), Some(0));
                assert_eq!(cat.wait().await?, 0);
                assert_reaped(cat.pid());

                let script = "head -c 10485760 /dev/zero; head -c 10485760 /dev/zero >&2; exit 3";
                let mut both = sh(script, piped(watcher)).await?;
                let (out, err) = both.communicate(None).await?;
                assert_eq!((out.len(), err.len()), (10 << 20, 10 << 20));
                assert!(out.iter().chain(&err).all(|&b| b == 0));
                assert_eq!(both.returncode(), Some(3));
                Ok(())
            });
        }
    }

    /// 100 children at once, each exiting with its own status: every status is seen, and
    /// every child reaped (no zombie left).
    fn hundred_children_are_all_reaped(b: Backend) {
        for watcher in watchers() {
            let lp = new_loop(b);
            run_test(&lp, async move {
                let mut children = Vec::new();
                for i in 0..100u32 {
                    let options = SubprocessOptions::new().watcher(watcher);
                    let child = match i % 10 {
                        0 => create_subprocess_exec("true", [""; 0], options).await?,
                        _ => sh(&format!("exit {i}"), options).await?,
                    };
                    children.push((i, child));
                }
                let pids: Vec<u32> = children.iter().map(|(_, c)| c.pid()).collect();
                let codes = gather(children.into_iter().map(|(i, child)| async move {
                    let code = child.wait().await?;
                    Ok((i, code, child.returncode()))
                }))
                .await?;
                for (i, code, returncode) in codes {
                    let expected = if i % 10 == 0 { 0 } else { i as i32 };
                    assert_eq!((code, returncode), (expected, Some(expected)), "child {i}");
                }
                pids.into_iter().for_each(assert_reaped);
                Ok(())
            });
        }
    }

    /// A child this loop did not spawn exits while the loop watches its own: the loop leaves
    /// it unreaped, and its spawner gets its status.
    fn someone_elses_child_is_left_alone(b: Backend) {
        for watcher in watchers() {
            let lp = new_loop(b);
            run_test(&lp, async move {
                let options = SubprocessOptions::new().stdin(Redirect::Pipe).watcher(watcher);
                let mut own = create_subprocess_exec("cat", [""; 0], options).await?;
                let mut foreign = Command::new("sh").args(["-c", "exit 7"]).spawn()?;
                let pid = foreign.id();
                // Its SIGCHLD reaches the loop meanwhile (the SIGCHLD watcher looks then).
                eventually(|| is_zombie_child(pid).expect("our child")).await?;
                own.stdin.take();
                assert_eq!(own.wait().await?, 0);
                for _ in 0..10 {
                    tulip::yield_now().await;
                }
                assert!(is_zombie_child(pid)?, "{watcher:?}: still there for its spawner");
                assert_eq!(foreign.wait()?.code(), Some(7));
                Ok(())
            });
        }
    }

    /// `kill` and `terminate` give minus the signal as the return code; signalling a reaped
    /// child does nothing; signal 0 only says it exists; an unknown signal is `InvalidInput`.
    fn signals_give_negative_return_codes(b: Backend) {
        for watcher in watchers() {
            let lp = new_loop(b);
            run_test(&lp, async move {
                let options = SubprocessOptions::new().watcher(watcher);
                let sleeper = create_subprocess_exec("sleep", ["1000"], options.clone()).await?;
                sleeper.kill()?;
                assert_eq!(sleeper.wait().await?, -libc::SIGKILL);
                assert_eq!(sleeper.returncode(), Some(-libc::SIGKILL));
                // Reaped: a no-op, whatever the pid is now.
                sleeper.kill()?;
                sleeper.terminate()?;
                assert_eq!(sleeper.returncode(), Some(-libc::SIGKILL));

                let sleeper = create_subprocess_exec("sleep", ["1000"], options.clone()).await?;
                // Signal 0 (Python's send_signal(0), kill(pid, 0)): it exists, nothing sent.
                sleeper.send_signal(0)?;
                assert_eq!(sleeper.returncode(), None);
                let e = sleeper.send_signal(123_456).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::InvalidInput);
                sleeper.terminate()?;
                assert_eq!(sleeper.wait().await?, -libc::SIGTERM);

                // SIGUSR1, not SIGINT: a shell starting a background job (a CI runner's, say)
                // leaves SIGINT ignored, the child inherits that, and SIGINT would not end it.
                let sleeper = create_subprocess_exec("sleep", ["1000"], options).await?;
                sleeper.send_signal(libc::SIGUSR1)?;
                assert_eq!(sleeper.wait().await?, -libc::SIGUSR1);
                Ok(())
            });
        }
    }

    /// A program that does not exist is `NotFound`, and bad options `InvalidInput`.
    fn missing_program_is_not_found(b: Backend) {
        let lp = new_loop(b);
        run_test(&lp, async move {
            let missing = "/nonexistent/tulip-no-such-program";
            let e = create_subprocess_exec(missing, [""; 0], SubprocessOptions::new())
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
            let e = create_subprocess_exec("true", [""; 0], piped(ChildWatcher::Sigchld).stdout(Redirect::Stdout))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            Ok(())
        });
    }

    /// A child that exits while a grandchild holds its stdout: `wait` resolves on the exit.
    fn wait_resolves_on_exit_with_pipes_still_open(b: Backend) {
        for watcher in watchers() {
            let lp = new_loop(b);
            run_test(&lp, async move {
                let mut child = sh("sleep 1000 & echo $!; exit 3", piped(watcher)).await?;
                let stdout = child.stdout.as_mut().expect("piped");
                let line = stdout.readline().await?;
                let grandchild: u32 = String::from_utf8_lossy(&line).trim().parse().expect("a pid");
                assert_eq!(child.wait().await?, 3);
                assert!(!child.stdout.as_ref().expect("piped").at_eof(), "the grandchild holds it");
                // Alive (it sleeps), so its pid is its own.
                tulip::selectors::process::kill(grandchild, libc::SIGKILL)?;
                let (out, _) = child.communicate(None).await?;
                assert!(out.is_empty());
                Ok(())
            });
        }
    }

    /// Pipes that close before the child exits: their end arrives first, `communicate` waits
    /// for the exit too.
    fn communicate_waits_for_the_exit_after_the_pipes_close(b: Backend) {
        for watcher in watchers() {
            let lp = new_loop(b);
            run_test(&lp, async move {
                let mut child = sh("echo bye; exec >&- 2>&-; read x; exit 4", piped(watcher)).await?;
                let out = child.stdout.as_mut().expect("piped").read_to_eof().await?;
                assert_eq!(out, b"bye\n");
                assert_eq!(child.returncode(), None, "it waits for its input");
                let (out, err) = child.communicate(Some(b"go\n")).await?;
                assert!(out.is_empty() && err.is_empty());
                assert_eq!(child.returncode(), Some(4));
                Ok(())
            });
        }
    }

    /// stderr to stdout (`Redirect::Stdout`) and to `/dev/null`.
    fn stderr_redirects(b: Backend) {
        let lp = new_loop(b);
        run_test(&lp, async move {
            let script = "echo out; echo err >&2";
            let merged = piped(ChildWatcher::Sigchld).stderr(Redirect::Stdout);
            let mut child = sh(script, merged).await?;
            assert!(child.stderr.is_none());
            let (out, err) = child.communicate(None).await?;
            assert_eq!((out.as_slice(), err.as_slice()), (&b"out\nerr\n"[..], &b""[..]));
            let nulled = piped(ChildWatcher::best()).stderr(Redirect::Null);
            let mut child = sh(script, nulled).await?;
            let (out, err) = child.communicate(None).await?;
            assert_eq!((out.as_slice(), err.as_slice()), (&b"out\n"[..], &b""[..]));
            Ok(())
        });
    }

    /// A `Process` dropped before its child exits: the loop still reaps the child.
    fn a_dropped_process_is_still_reaped(b: Backend) {
        for watcher in watchers() {
            let lp = new_loop(b);
            run_test(&lp, async move {
                let options = SubprocessOptions::new().stdin(Redirect::Pipe).watcher(watcher);
                let mut child = create_subprocess_exec("cat", [""; 0], options).await?;
                let pid = child.pid();
                let stdin = child.stdin.take();
                drop(child);
                assert!(!is_zombie_child(pid)?, "still running");
                drop(stdin); // cat exits
                eventually(|| is_zombie_child(pid).is_err()).await?;
                assert_reaped(pid);

                // One that writes for ever: dropping the `Process` closes its stdout, so it
                // ends (SIGPIPE) rather than block on a full pipe nobody reads.
                let options = SubprocessOptions::new().stdout(Redirect::Pipe).watcher(watcher);
                let mut yes = create_subprocess_exec("yes", [""; 0], options).await?;
                let pid = yes.pid();
                yes.stdout.as_mut().expect("piped").readline().await?;
                drop(yes);
                eventually(|| is_zombie_child(pid).is_err()).await?;
                assert_reaped(pid);
                Ok(())
            });
        }
    }
}

#[cfg(target_os = "linux")]
fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd lists this process's fds")
        .count()
}

per_backend! {
    /// Closing the loop with a child still running releases its pidfd (or the SIGCHLD
    /// handler) and its pipes; the `Process` outlives the loop, and can still be signalled
    /// and reaped by hand (`kill` reaps first if it exited).
    exclusive fn closing_the_loop_releases_the_watch_and_the_pipes(b: Backend) {
        for watcher in watchers() {
            #[cfg(target_os = "linux")]
            let fds_before = open_fd_count();
            let lp = new_loop(b);
            let process = run_test(&lp, async move {
                let mut cat = create_subprocess_exec("cat", [""; 0], piped(watcher)).await?;
                cat.stdin.as_ref().expect("piped").write(b"ping\n")?;
                let line = cat.stdout.as_mut().expect("piped").readline().await?;
                assert_eq!(line, b"ping\n");
                Ok(cat)
            });
            lp.close().unwrap();
            drop(lp);
            assert_eq!(process.returncode(), None);
            // Its stdin is closed with the loop: cat ends by itself; kill in case.
            while process.returncode().is_none() {
                process.kill().unwrap();
                std::thread::yield_now();
            }
            let code = process.returncode().unwrap();
            assert!(code == 0 || code == -libc::SIGKILL, "{code}");
            assert_reaped(process.pid());
            drop(process);
            #[cfg(target_os = "linux")]
            assert_eq!(open_fd_count(), fds_before, "{watcher:?}: every fd released");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pipe transports.

/// Records what a pipe transport tells it.
#[derive(Default)]
struct Recorder {
    transport: Option<Transport>,
    data: Vec<u8>,
    eof: bool,
    lost: Option<Option<io::Error>>,
    paused: usize,
    /// Written on `connection_made`.
    greeting: Vec<u8>,
}

impl Protocol for Recorder {
    fn connection_made(&mut self, transport: Transport) {
        if !self.greeting.is_empty() {
            transport
                .write(&self.greeting)
                .expect("a new transport takes writes");
        }
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        self.data.extend_from_slice(data);
    }

    fn eof_received(&mut self) -> bool {
        self.eof = true;
        true // a read pipe closes anyway
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        assert!(self.lost.is_none(), "connection_lost once");
        self.lost = Some(error);
    }

    fn pause_writing(&mut self) {
        self.paused += 1;
    }
}

per_backend! {
    /// `connect_read_pipe` on a child's stdout: its bytes, `eof_received`, then
    /// `connection_lost(None)` even though `eof_received` returned true; writes refused.
    fn read_pipe_transport_reads_a_child(b: Backend) {
        let lp = new_loop(b);
        run_test(&lp, async move {
            let mut child = Command::new("sh")
                .args(["-c", "head -c 200000 /dev/zero; echo tail"])
                .stdout(Stdio::piped())
                .spawn()?;
            let stdout = OwnedFd::from(child.stdout.take().expect("piped"));
            let lp = tulip::get_running_loop()?;
            let (transport, protocol) = lp.connect_read_pipe(Recorder::default, stdout)?;
            let e = transport.write(b"x").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unsupported);
            assert!(!transport.can_write_eof());
            eventually(|| protocol.borrow().lost.is_some()).await?;
            let p = protocol.borrow();
            assert!(p.eof);
            assert!(matches!(p.lost, Some(None)), "{:?}", p.lost);
            assert_eq!(p.data.len(), 200_005);
            assert!(p.data.ends_with(b"\0tail\n"));
            assert!(transport.is_closing());
            assert!(child.wait()?.success());
            Ok(())
        });
    }

    /// `connect_write_pipe` to a child's stdin (`cat`, read back through a read pipe): 1 MiB
    /// buffered (pausing the protocol), `write_eof` closes the pipe once flushed.
    fn write_pipe_transport_feeds_a_child(b: Backend) {
        let lp = new_loop(b);
        run_test(&lp, async move {
            let mut child = Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()?;
            let stdin = OwnedFd::from(child.stdin.take().expect("piped"));
            let stdout = OwnedFd::from(child.stdout.take().expect("piped"));
            let lp = tulip::get_running_loop()?;
            let data = pattern(1 << 20);
            let (_reading, echoed) = lp.connect_read_pipe(Recorder::default, stdout)?;
            let greeting = data.clone();
            let (writing, written) = lp.connect_write_pipe(
                move || Recorder { greeting, ..Recorder::default() },
                stdin,
            )?;
            assert!(writing.can_write_eof());
            assert!(written.borrow().paused >= 1, "1 MiB is above the high-water mark");
            writing.write_eof();
            assert!(writing.is_closing());
            let e = writing.write(b"x").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BrokenPipe);
            eventually(|| echoed.borrow().lost.is_some()).await?;
            assert!(echoed.borrow().data == data, "the bytes came back in order");
            assert!(matches!(written.borrow().lost, Some(None)), "{:?}", written.borrow().lost);
            assert!(child.wait()?.success());
            Ok(())
        });
    }

    /// The reader of a write pipe goes away with bytes still buffered: `connection_lost`
    /// with `BrokenPipe` (and no SIGPIPE kills the test).
    fn write_pipe_reader_closing_is_broken_pipe(b: Backend) {
        let lp = new_loop(b);
        run_test(&lp, async move {
            let mut child = Command::new("head")
                .args(["-c", "1"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()?;
            let stdin = OwnedFd::from(child.stdin.take().expect("piped"));
            let lp = tulip::get_running_loop()?;
            let greeting = pattern(1 << 20);
            let (_t, written) = lp.connect_write_pipe(
                move || Recorder { greeting, ..Recorder::default() },
                stdin,
            )?;
            eventually(|| written.borrow().lost.is_some()).await?;
            let lost = written.borrow_mut().lost.take();
            match lost {
                Some(Some(e)) => assert_eq!(e.kind(), ErrorKind::BrokenPipe, "{e}"),
                other => panic!("expected BrokenPipe, got {other:?}"),
            }
            assert!(child.wait()?.success());
            Ok(())
        });
    }

    /// A regular file is no pipe: refused (asyncio's `ValueError`), and closed.
    fn a_regular_file_is_refused(b: Backend) {
        let lp = new_loop(b);
        run_test(&lp, async move {
            let lp = tulip::get_running_loop()?;
            let file = std::fs::File::open(std::env::current_exe()?)?;
            let Err(e) = lp.connect_read_pipe(Recorder::default, OwnedFd::from(file)) else {
                panic!("a regular file taken as a pipe");
            };
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            let file = std::fs::File::open(std::env::current_exe()?)?;
            let Err(e) = lp.connect_write_pipe(Recorder::default, OwnedFd::from(file)) else {
                panic!("a regular file taken as a pipe");
            };
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            Ok(())
        });
    }

    /// The reader of a write pipe goes away while nothing is buffered: the transport sees it
    /// by itself (watching the write end's readability), and ends cleanly.
    fn write_pipe_sees_its_reader_close_while_idle(b: Backend) {
        let lp = new_loop(b);
        run_test(&lp, async move {
            let (reader, writer) = tulip::selectors::fd::pipe()?;
            let lp = tulip::get_running_loop()?;
            let (transport, protocol) = lp.connect_write_pipe(Recorder::default, writer)?;
            transport.write(b"small")?;
            tulip::yield_now().await;
            assert!(protocol.borrow().lost.is_none());
            drop(reader);
            eventually(|| protocol.borrow().lost.is_some()).await?;
            assert!(matches!(protocol.borrow().lost, Some(None)), "{:?}", protocol.borrow().lost);
            Ok(())
        });
    }
}

/// The protocol and transport types are shared with the sockets: a pipe's protocol is any
/// `Protocol` (this keeps `Rc<RefCell<_>>` in view for the reader of these tests).
#[allow(dead_code)]
type Shared<P> = Rc<RefCell<P>>;

/// `TULIP_CHILD_WATCHER` picks the watcher when the options do not: checked in child
/// processes of this test binary, each with the variable set (the environment is shared by
/// the test threads).
#[test]
fn the_environment_picks_the_watcher() {
    const NAME: &str = "the_environment_picks_the_watcher";
    match child::child_role().as_deref() {
        None => {
            for value in ["sigchld", "pidfd", "", "bogus"] {
                let output = Command::new(std::env::current_exe().expect("the test binary"))
                    .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
                    .env(child::CHILD_ENV, format!("env={value}"))
                    .env(tulip::process::CHILD_WATCHER_ENV, value)
                    .output()
                    .expect("the test binary runs again");
                child::assert_child_passed(&output);
            }
        }
        Some(role) => {
            let value = role.strip_prefix("env=").expect("this test's role");
            let picked = ChildWatcher::from_env();
            let lp = EventLoop::new().unwrap();
            let spawned = run_test(&lp, async {
                let spawned =
                    create_subprocess_exec("true", [""; 0], SubprocessOptions::new()).await;
                Ok(match spawned {
                    Ok(child) => Ok(child.wait().await?),
                    Err(e) => Err(e),
                })
            });
            match value {
                "bogus" => {
                    assert_eq!(picked.unwrap_err().kind(), ErrorKind::InvalidInput);
                    assert_eq!(spawned.unwrap_err().kind(), ErrorKind::InvalidInput);
                }
                "" => {
                    assert_eq!(picked.unwrap(), ChildWatcher::best());
                    assert_eq!(spawned.unwrap(), 0);
                }
                "sigchld" => {
                    assert_eq!(picked.unwrap(), ChildWatcher::Sigchld);
                    assert_eq!(spawned.unwrap(), 0);
                }
                _ => {
                    assert_eq!(picked.unwrap(), ChildWatcher::Pidfd);
                    match ChildWatcher::Pidfd.is_available() {
                        true => assert_eq!(spawned.unwrap(), 0),
                        false => assert_eq!(spawned.unwrap_err().kind(), ErrorKind::Unsupported),
                    }
                }
            }
        }
    }
}

#[test]
fn watcher_from_options_and_best() {
    let best = ChildWatcher::best();
    assert!(best.is_available());
    if cfg!(target_os = "linux") && ChildWatcher::Pidfd.is_available() {
        assert_eq!(best, ChildWatcher::Pidfd);
    }
    let lp = EventLoop::new().unwrap();
    if !ChildWatcher::Pidfd.is_available() {
        let e = run_test(&lp, async {
            Ok(
                create_subprocess_exec("true", [""; 0], piped(ChildWatcher::Pidfd))
                    .await
                    .unwrap_err(),
            )
        });
        assert_eq!(e.kind(), ErrorKind::Unsupported);
    }
}

/// On select, a pidfd past `FD_SETSIZE` cannot be watched: the SIGCHLD watcher takes over, and
/// the child is still waited for and reaped.
#[cfg(target_os = "linux")]
#[test]
fn a_pidfd_select_cannot_watch_falls_back_to_sigchld() {
    if !ChildWatcher::Pidfd.is_available() {
        return;
    }
    let _fds = per_backend::exclusive_fd_table();
    let limit = tulip::selectors::FD_SETSIZE as u64 + 64;
    if tulip::selectors::fd::raise_nofile_limit(limit).is_ok_and(|got| got < limit) {
        return; // not allowed here
    }
    let lp = new_loop(Backend::Select);
    // The loop's signal pipe, made now, below FD_SETSIZE: the fallback needs it there.
    lp.add_signal_handler(libc::SIGUSR2, |_| {}).unwrap();
    // Fill the fd numbers below FD_SETSIZE, so that the pidfd lands above.
    let mut filler = Vec::new();
    loop {
        let file = std::fs::File::open("/dev/null").expect("an fd");
        let n = std::os::fd::AsRawFd::as_raw_fd(&file);
        filler.push(file);
        if n as usize >= tulip::selectors::FD_SETSIZE {
            break;
        }
    }
    filler.pop(); // the next fd, the pidfd's, is past FD_SETSIZE
    let options = SubprocessOptions::new().watcher(ChildWatcher::Pidfd);
    let (pid, code) = run_test(&lp, async move {
        let child = sh("exit 5", options).await?;
        Ok((child.pid(), child.wait().await?))
    });
    assert_eq!(code, 5);
    assert_reaped(pid);
    drop(filler);
}

// ---------------------------------------------------------------------------------------------
// The pipes' limit (`SubprocessOptions::limit`, asyncio's `limit=`).

per_backend! {
    /// The limit given reaches the readers of stdout and stderr: a line longer than it fails
    /// with the `LimitOverrunError` (and is dropped), the next line reads; 0 is `InvalidInput`.
    fn the_limit_given_reaches_the_pipes_readers(b: Backend) {
        let lp = new_loop(b);
        run_test(&lp, async move {
            let script = "echo 0123456789; echo short; echo 9876543210 >&2; echo fine >&2";
            let mut child = sh(script, piped(ChildWatcher::best()).limit(8)).await?;
            for (reader, second) in [
                (child.stdout.as_mut().expect("piped"), &b"short\n"[..]),
                (child.stderr.as_mut().expect("piped"), &b"fine\n"[..]),
            ] {
                assert_eq!(reader.limit(), 8);
                let error = reader.readline().await.unwrap_err();
                let overrun = LimitOverrunError::of(&error).expect("an overrun");
                assert!(overrun.consumed() > 8, "{overrun:?}");
                assert_eq!(reader.readline().await?, second);
            }
            assert_eq!(child.wait().await?, 0);

            let defaults = sh("true", piped(ChildWatcher::best())).await?;
            assert_eq!(defaults.stdout.as_ref().expect("piped").limit(), DEFAULT_LIMIT);
            drop(defaults);

            let e = sh("true", piped(ChildWatcher::best()).limit(0)).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            Ok(())
        });
    }
}

// ---------------------------------------------------------------------------------------------
// `create_subprocess_shell` (asyncio's): `/bin/sh -c cmd`.

per_backend! {
    /// A pipeline's output and the shell's exit status; stdin piped into the shell's
    /// commands; stderr; the shell's 127 for a command it cannot find; an empty command
    /// (exit 0, as asyncio runs it) and a NUL byte (`InvalidInput`, Python's `ValueError`).
    fn create_subprocess_shell_runs_sh_c(b: Backend) {
        for watcher in watchers() {
            let lp = new_loop(b);
            run_test(&lp, async move {
                let mut child = create_subprocess_shell(
                    "printf 'b\\na\\n' | sort; echo a; echo oops >&2; exit 3",
                    piped(watcher),
                )
                .await?;
                let (out, err) = child.communicate(None).await?;
                assert_eq!(out, b"a\nb\na\n");
                assert_eq!(err, b"oops\n");
                assert_eq!(child.returncode(), Some(3));

                let mut child = create_subprocess_shell("tr a-z A-Z; exit 5", piped(watcher)).await?;
                let (out, _) = child.communicate(Some(b"shell\n")).await?;
                assert_eq!(out, b"SHELL\n");
                assert_eq!(child.wait().await?, 5);

                // The loop's method, on a quoted argument.
                let lp = tulip::get_running_loop()?;
                let mut child = lp
                    .create_subprocess_shell("set -- 'one two'; echo $#", piped(watcher))
                    .await?;
                assert_eq!(child.communicate(None).await?.0, b"1\n");

                let mut child = create_subprocess_shell("tulip-no-such-command-here", piped(watcher)).await?;
                let (_, err) = child.communicate(None).await?;
                assert_eq!(child.returncode(), Some(127));
                assert!(!err.is_empty(), "the shell says why");

                let empty = create_subprocess_shell("", piped(watcher)).await?;
                assert_eq!(empty.wait().await?, 0);

                let e = create_subprocess_shell("echo a\0b", piped(watcher)).await.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
                Ok(())
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The cases of asyncio's test_subprocess.py.

per_backend! {
    /// stdin written, drained and closed by hand, stdout read to its end (asyncio's
    /// test_stdin_stdout); empty input (test_empty_input) and `/dev/null` input
    /// (test_devnull_input) read as nothing; stdout or stderr to `/dev/null`
    /// (test_devnull_output, test_devnull_error): no pipe, and `communicate` gives nothing
    /// for it; with no pipe at all, `communicate` only waits.
    fn pipes_by_hand_and_empty_or_null_streams(b: Backend) {
        for watcher in watchers() {
            let lp = new_loop(b);
            run_test(&lp, async move {
                let mut cat = create_subprocess_exec("cat", [""; 0], piped(watcher)).await?;
                let stdin = cat.stdin.take().expect("piped");
                stdin.write(b"some data")?;
                stdin.drain().await?;
                stdin.close();
                let out = cat.stdout.as_mut().expect("piped").read_to_eof().await?;
                assert_eq!(out, b"some data");
                assert_eq!(cat.wait().await?, 0);

                let count = "wc -c | tr -d ' '; echo err >&2";
                let mut empty = sh(count, piped(watcher)).await?;
                let (out, err) = empty.communicate(Some(b"")).await?;
                assert_eq!((out.as_slice(), err.as_slice()), (&b"0\n"[..], &b"err\n"[..]));
                assert_eq!(empty.returncode(), Some(0));

                let mut null_in = sh(count, piped(watcher).stdin(Redirect::Null)).await?;
                assert!(null_in.stdin.is_none());
                let (out, _) = null_in.communicate(Some(b"ignored")).await?;
                assert_eq!(out, b"0\n");

                let mut null_out = sh(count, piped(watcher).stdout(Redirect::Null)).await?;
                assert!(null_out.stdout.is_none());
                let (out, err) = null_out.communicate(Some(b"abc")).await?;
                assert_eq!((out.as_slice(), err.as_slice()), (&b""[..], &b"err\n"[..]));
                assert_eq!(null_out.returncode(), Some(0));

                let mut null_err = sh(count, piped(watcher).stderr(Redirect::Null)).await?;
                assert!(null_err.stderr.is_none());
                let (out, err) = null_err.communicate(Some(b"abc")).await?;
                assert_eq!((out.as_slice(), err.as_slice()), (&b"3\n"[..], &b""[..]));

                // No pipe at all: nothing to feed or read, `communicate` waits for the exit.
                let mut bare = sh("exit 6", SubprocessOptions::new().watcher(watcher)).await?;
                assert_eq!(bare.communicate(Some(b"ignored")).await?, (vec![], vec![]));
                assert_eq!(bare.returncode(), Some(6));
                Ok(())
            });
        }
    }

    /// A child that exits without reading its stdin: writing more than a pipe holds and
    /// draining fails with `BrokenPipe` or `ConnectionReset` (asyncio's
    /// test_stdin_broken_pipe), and `communicate` with that input does not fail
    /// (test_communicate_ignore_broken_pipe).
    fn stdin_of_a_child_that_exited_is_a_broken_pipe_communicate_ignores(b: Backend) {
        for watcher in watchers() {
            let lp = new_loop(b);
            run_test(&lp, async move {
                let large = vec![b'x'; 4 << 20];
                let options = SubprocessOptions::new().stdin(Redirect::Pipe).watcher(watcher);
                let child = create_subprocess_exec("true", [""; 0], options.clone()).await?;
                assert_eq!(child.wait().await?, 0);
                let stdin = child.stdin.as_ref().expect("piped");
                let wrote = match stdin.write(&large) {
                    Ok(()) => stdin.drain().await,
                    Err(e) => Err(e),
                };
                let error = wrote.expect_err("nobody reads the pipe");
                assert!(
                    matches!(error.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
                    "{watcher:?}: {error:?}"
                );

                let mut child = create_subprocess_exec("true", [""; 0], options).await?;
                let (out, err) = child.communicate(Some(&large)).await?;
                assert!(out.is_empty() && err.is_empty());
                assert_eq!(child.returncode(), Some(0));
                Ok(())
            });
        }
    }

    /// A `wait` dropped before the child exits (asyncio's test_cancel_process_wait) leaves
    /// the next one working: the child killed, it returns minus SIGKILL.
    fn a_dropped_wait_leaves_the_next_one_working(b: Backend) {
        for watcher in watchers() {
            let lp = new_loop(b);
            run_test(&lp, async move {
                let options = SubprocessOptions::new().watcher(watcher);
                let sleeper = create_subprocess_exec("sleep", ["1000"], options).await?;
                {
                    let mut waiting = pin!(sleeper.wait());
                    let polled = poll_fn(|cx| Poll::Ready(waiting.as_mut().poll(cx))).await;
                    assert!(polled.is_pending(), "{watcher:?}: the child sleeps");
                }
                sleeper.kill()?;
                assert_eq!(sleeper.wait().await?, -libc::SIGKILL);
                assert_reaped(sleeper.pid());
                Ok(())
            });
        }
    }

    /// stdout read in pieces after the child wrote more than a pipe holds and exited
    /// (asyncio's test_read_stdout_after_process_exit), and with a limit far below what it
    /// writes (test_pause_reading): every byte comes, then the end, then the status.
    fn stdout_read_in_pieces_after_the_exit_and_past_a_small_limit(b: Backend) {
        for watcher in watchers() {
            let lp = new_loop(b);
            run_test(&lp, async move {
                let script = "head -c 262144 /dev/zero; exit 1";
                let options = SubprocessOptions::new().stdout(Redirect::Pipe).watcher(watcher);
                let mut child = sh(script, options.clone()).await?;
                let stdout = child.stdout.as_mut().expect("piped");
                let mut total = 0;
                loop {
                    let data = stdout.read(65536).await?;
                    if data.is_empty() {
                        break;
                    }
                    total += data.len();
                    for _ in 0..5 {
                        tulip::yield_now().await;
                    }
                }
                assert_eq!(total, 262144);
                assert_eq!(child.wait().await?, 1);

                let mut child = sh(script, options.limit(10)).await?;
                let (out, _) = child.communicate(None).await?;
                assert_eq!(out.len(), 262144);
                assert_eq!(child.returncode(), Some(1));
                Ok(())
            });
        }
    }
}
