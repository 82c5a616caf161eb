//! Subprocesses (asyncio's `asyncio.subprocess`): [`create_subprocess_exec`] spawns a program
//! ([`create_subprocess_shell`] a shell command, `/bin/sh -c cmd`) with its stdin, stdout and
//! stderr each piped, inherited or sent to `/dev/null`, and returns
//! a [`Process`]: its pipes as streams ([`StreamWriter`], [`StreamReader`]), [`Process::wait`]
//! for its exit, [`Process::communicate`] to feed its input and collect its output at once,
//! and signals.
//!
//! ```
//! use tulip::process::{create_subprocess_exec, Redirect, SubprocessOptions};
//!
//! let lp = tulip::EventLoop::new()?;
//! lp.run_until_complete(async {
//!     let options = SubprocessOptions::new().stdin(Redirect::Pipe).stdout(Redirect::Pipe);
//!     let mut cat = create_subprocess_exec("cat", ["-"], options).await?;
//!     let (out, _err) = cat.communicate(Some(b"meow")).await?;
//!     assert_eq!(out, b"meow");
//!     assert_eq!(cat.returncode(), Some(0));
//!     Ok::<(), std::io::Error>(())
//! })??;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The exit is observed without blocking and without reaping anyone else's children, by one
//! of two [`ChildWatcher`]s: a pidfd per child where Linux has it, else a SIGCHLD handler that
//! polls this loop's own children by pid (never `waitpid(-1)`). See `watcher.rs`.
//!
//! A `Process` dropped before its child exited leaves the child running (the pipes it still
//! held are closed); the loop still reaps it when it exits, while the loop runs (asyncio warns then; tulip does not). A child still
//! running when the loop closes is not reaped by tulip (its pidfd is closed).

mod watcher;

use std::ffi::OsStr;
use std::fmt;
use std::future::{poll_fn, Future as StdFuture};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::pin;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::task::Poll;

pub use watcher::{ChildWatcher, CHILD_WATCHER_ENV};

use watcher::ChildState;
pub(crate) use watcher::ChildTable;

use crate::streams::{pipe_reader, pipe_writer, StreamOptions, StreamReader, StreamWriter};
use crate::{get_running_loop, EventLoop};

/// Where one of a child's standard streams goes: asyncio's `PIPE`, `None`, `DEVNULL` and
/// `STDOUT`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Redirect {
    /// A pipe to this process: [`Process::stdin`], [`Process::stdout`], [`Process::stderr`].
    Pipe,
    /// This process's own (asyncio's `None`, the default).
    #[default]
    Inherit,
    /// `/dev/null` (asyncio's `DEVNULL`).
    Null,
    /// For stderr only: wherever stdout goes (asyncio's `STDOUT`); if stdout is piped, both
    /// go to [`Process::stdout`].
    Stdout,
}

/// How a subprocess is started: its stdio, its pipes' buffer limit and its [`ChildWatcher`].
#[derive(Clone, Debug, Default)]
pub struct SubprocessOptions {
    stdin: Redirect,
    stdout: Redirect,
    stderr: Redirect,
    limit: Option<usize>,
    watcher: Option<ChildWatcher>,
}

impl SubprocessOptions {
    /// Everything inherited, the watcher from [`ChildWatcher::from_env`].
    pub fn new() -> SubprocessOptions {
        SubprocessOptions::default()
    }

    /// Where stdin comes from ([`Redirect::Stdout`] is refused at spawn).
    pub fn stdin(mut self, redirect: Redirect) -> SubprocessOptions {
        self.stdin = redirect;
        self
    }

    /// Where stdout goes ([`Redirect::Stdout`] is refused at spawn).
    pub fn stdout(mut self, redirect: Redirect) -> SubprocessOptions {
        self.stdout = redirect;
        self
    }

    /// Where stderr goes.
    pub fn stderr(mut self, redirect: Redirect) -> SubprocessOptions {
        self.stderr = redirect;
        self
    }

    /// The buffer limit of the [`StreamReader`]s of stdout and stderr, in bytes (asyncio's
    /// `limit=`; [`DEFAULT_LIMIT`](crate::streams::DEFAULT_LIMIT), 64 KiB, unless set). 0 is
    /// refused with `InvalidInput` at spawn.
    pub fn limit(mut self, limit: usize) -> SubprocessOptions {
        self.limit = Some(limit);
        self
    }

    /// The child watcher; by default [`ChildWatcher::from_env`] (`TULIP_CHILD_WATCHER`).
    pub fn watcher(mut self, watcher: ChildWatcher) -> SubprocessOptions {
        self.watcher = Some(watcher);
        self
    }
}

/// Spawn `program` with `args` on the running loop (asyncio's `create_subprocess_exec`): see
/// [`EventLoop::spawn_subprocess`].
///
/// # Errors
/// As [`EventLoop::spawn_subprocess`];
/// [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop) outside a running loop.
pub async fn create_subprocess_exec<I, S>(
    program: impl AsRef<OsStr>,
    args: I,
    options: SubprocessOptions,
) -> io::Result<Process>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    get_running_loop()?
        .create_subprocess_exec(program, args, options)
        .await
}

/// Run `cmd` with the shell, `/bin/sh -c cmd`, on the running loop (asyncio's
/// `create_subprocess_shell`): see [`EventLoop::create_subprocess_shell`].
///
/// # Errors
/// As [`EventLoop::create_subprocess_shell`];
/// [`LoopError::NoRunningLoop`](crate::LoopError::NoRunningLoop) outside a running loop.
pub async fn create_subprocess_shell(
    cmd: impl AsRef<OsStr>,
    options: SubprocessOptions,
) -> io::Result<Process> {
    get_running_loop()?
        .create_subprocess_shell(cmd, options)
        .await
}

/// The shell of [`create_subprocess_shell`], as Python's `subprocess` picks it.
#[cfg(not(target_os = "android"))]
const SHELL: &str = "/bin/sh";
#[cfg(target_os = "android")]
const SHELL: &str = "/system/bin/sh";

impl EventLoop {
    /// Run `cmd` with the shell, `/bin/sh -c cmd`, on this loop (asyncio's
    /// `loop.subprocess_shell`, with the streams of `asyncio.create_subprocess_shell`): as
    /// [`create_subprocess_exec`](Self::create_subprocess_exec) of `/bin/sh` with the
    /// arguments `-c` and `cmd`. The return code is the shell's, which is the last command's
    /// (or 127 for a command the shell did not find). An empty `cmd` runs the shell with
    /// nothing to do (return code 0), as asyncio's does. Quoting what goes into `cmd` is the
    /// caller's task.
    ///
    /// # Errors
    /// As [`spawn_subprocess`](Self::spawn_subprocess); `InvalidInput` for a `cmd` with a
    /// NUL byte (Python's `ValueError: embedded null byte`).
    pub async fn create_subprocess_shell(
        &self,
        cmd: impl AsRef<OsStr>,
        options: SubprocessOptions,
    ) -> io::Result<Process> {
        let mut command = Command::new(SHELL);
        command.arg("-c").arg(cmd);
        self.spawn_subprocess(command, options)
    }

    /// Spawn `program` with `args` on this loop (asyncio's `loop.subprocess_exec`, with the
    /// streams of `asyncio.create_subprocess_exec`): see [`spawn_subprocess`](Self::spawn_subprocess).
    ///
    /// # Errors
    /// As [`spawn_subprocess`](Self::spawn_subprocess).
    pub async fn create_subprocess_exec<I, S>(
        &self,
        program: impl AsRef<OsStr>,
        args: I,
        options: SubprocessOptions,
    ) -> io::Result<Process>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(program);
        command.args(args);
        self.spawn_subprocess(command, options)
    }

    /// Spawn `command` (its program, arguments, environment and directory as set; its stdio
    /// replaced by `options`'), with its pipes and its exit watched on this loop.
    ///
    /// # Errors
    /// - `NotFound` for a program that does not exist (asyncio raises `FileNotFoundError`),
    ///   `PermissionDenied`, and the kernel's other errors, as `Command::spawn` gives them;
    /// - `InvalidInput` for [`Redirect::Stdout`] as stdin or stdout, a limit of 0, or a bad
    ///   `TULIP_CHILD_WATCHER`; `Unsupported` for the pidfd watcher where there is none;
    /// - [`LoopError::Closed`](crate::LoopError::Closed).
    ///
    /// If the pipes or the watch cannot be set up once the child runs, it is killed and
    /// reaped before the error returns.
    pub fn spawn_subprocess(
        &self,
        mut command: Command,
        options: SubprocessOptions,
    ) -> io::Result<Process> {
        self.check_open()?;
        let limit = options.limit.unwrap_or(crate::streams::DEFAULT_LIMIT);
        StreamOptions::new().limit(limit).check()?;
        let watcher = match options.watcher {
            Some(watcher) => watcher,
            None => ChildWatcher::from_env()?,
        };
        if !watcher.is_available() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the {watcher:?} child watcher is not available here"),
            ));
        }
        let invalid = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("Redirect::Stdout is for stderr only, not {what}"),
            )
        };
        command.stdin(stdio(options.stdin).ok_or_else(|| invalid("stdin"))?);
        // stderr to a piped stdout: one pipe, made here, its write end given as both.
        let mut merged = None;
        match (options.stdout, options.stderr) {
            (Redirect::Stdout, _) => return Err(invalid("stdout")),
            (Redirect::Pipe, Redirect::Stdout) => {
                let (read, write) = tulip_sys::fd::pipe()?;
                // The child's end: blocking, as programs expect (dup2 clears close-on-exec).
                tulip_sys::fd::set_nonblocking(std::os::fd::AsRawFd::as_raw_fd(&write), false)?;
                command.stdout(Stdio::from(write.try_clone()?));
                command.stderr(Stdio::from(write));
                merged = Some(read);
            }
            (stdout, Redirect::Stdout) => {
                command.stdout(stdio(stdout).expect("not Stdout"));
                let err = match stdout {
                    Redirect::Inherit => Stdio::from(io::stdout().as_fd().try_clone_to_owned()?),
                    _ => Stdio::null(),
                };
                command.stderr(err);
            }
            (stdout, stderr) => {
                command.stdout(stdio(stdout).expect("not Stdout"));
                command.stderr(stdio(stderr).expect("not Stdout"));
            }
        }
        let mut child = command.spawn()?;
        // The parent's copies of the child's ends, held by the command, close now: else the
        // pipes would never see their end.
        drop(command);
        let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let state = ChildState::new(child);
        let made = (|| {
            let stdin = pipes
                .0
                .map(|p| pipe_writer(self, OwnedFd::from(p)))
                .transpose()?;
            let stdout = match merged {
                Some(read) => Some(pipe_reader(self, read, limit)?),
                None => pipes
                    .1
                    .map(|p| pipe_reader(self, OwnedFd::from(p), limit))
                    .transpose()?,
            };
            let stderr = pipes
                .2
                .map(|p| pipe_reader(self, OwnedFd::from(p), limit))
                .transpose()?;
            watcher::watch(self, &state, watcher)?;
            Ok(Process {
                stdin,
                stdout,
                stderr,
                child: Rc::clone(&state),
            })
        })();
        if made.is_err() {
            // Never leave a zombie behind: the child is ours alone until now.
            state.kill_and_reap();
        }
        made
    }
}

/// std's `Stdio` for `redirect`, `None` for [`Redirect::Stdout`].
fn stdio(redirect: Redirect) -> Option<Stdio> {
    match redirect {
        Redirect::Pipe => Some(Stdio::piped()),
        Redirect::Inherit => Some(Stdio::inherit()),
        Redirect::Null => Some(Stdio::null()),
        Redirect::Stdout => None,
    }
}

/// A child process spawned on a loop (asyncio's `asyncio.subprocess.Process`).
///
/// Its pipes (those asked for with [`Redirect::Pipe`]) are public, to use or take: `stdin` a
/// [`StreamWriter`] (close it, or drop it, to end the child's input), `stdout` and `stderr`
/// [`StreamReader`]s. Dropping the `Process` closes the pipes it still holds, but does not
/// kill the child (see the [module doc](self)).
pub struct Process {
    /// The child's stdin, if piped.
    pub stdin: Option<StreamWriter>,
    /// The child's stdout (and stderr too, with [`Redirect::Stdout`]), if piped.
    pub stdout: Option<StreamReader>,
    /// The child's stderr, if piped.
    pub stderr: Option<StreamReader>,
    child: Rc<ChildState>,
}

impl Process {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// The child's return code once the loop has seen it exit (and reaped it): its exit
    /// code, or minus the number of the signal that killed it (asyncio's `returncode`).
    /// `None` while it runs. 255 if some other code reaped it first (its status is lost).
    pub fn returncode(&self) -> Option<i32> {
        self.child.returncode()
    }

    /// Wait for the child to exit: its [`returncode`](Self::returncode).
    ///
    /// Resolves as soon as the child exits, whether or not its pipes are closed (a
    /// grandchild may hold them open); asyncio 3.12+ also waits for the pipes to close. It
    /// does not read the pipes: a child blocked on a full stdout pipe never exits (as in
    /// asyncio; [`communicate`](Self::communicate) reads them).
    ///
    /// # Errors
    /// The child watcher's, if it could not watch (the selector refused the pidfd).
    pub async fn wait(&self) -> io::Result<i32> {
        poll_fn(|cx| self.child.poll_wait(cx)).await
    }

    /// Send `input` to stdin (then close it), read stdout and stderr to their end, all at
    /// once, and wait for the child to exit: `(stdout, stderr)` (asyncio's `communicate`).
    ///
    /// Resolves once the child exited and both pipes reached their end. A stream not piped
    /// gives an empty vector (asyncio gives `None`); `input` is ignored if stdin is not piped
    /// (as in asyncio), and stdin is closed even if `input` is `None`. A child that stops
    /// reading its input early (`BrokenPipe`, `ConnectionReset`) is not an error, as in
    /// asyncio. The pipes are used up: `stdin` is taken and closed; the readers stay, at
    /// their end.
    ///
    /// # Errors
    /// A read error of stdout or stderr; another write error of stdin; [`wait`](Self::wait)'s.
    pub async fn communicate(&mut self, input: Option<&[u8]>) -> io::Result<(Vec<u8>, Vec<u8>)> {
        let stdin = self.stdin.take();
        let feed = pin!(async move {
            let Some(stdin) = stdin else {
                return Ok(());
            };
            let fed = async {
                if let Some(input) = input {
                    stdin.write(input)?;
                    stdin.drain().await?;
                }
                Ok::<(), io::Error>(())
            }
            .await;
            stdin.close();
            match fed {
                Err(e) if is_peer_gone(&e) => Ok(()),
                other => other,
            }
        });
        let (fed, out, err) = {
            let out = pin!(read_all(self.stdout.as_mut()));
            let err = pin!(read_all(self.stderr.as_mut()));
            join3(feed, out, err).await
        };
        fed?;
        let (out, err) = (out?, err?);
        self.wait().await?;
        Ok((out, err))
    }

    /// Send signal `signum` to the child (asyncio's `send_signal`).
    ///
    /// Once the child has been reaped this does nothing and returns `Ok` (as Python's
    /// `Popen.send_signal`): its pid may belong to another process by then, which must not be
    /// signalled. A child that exited but was not reaped yet is reaped first, and not
    /// signalled. With the pidfd watcher the signal goes through the pidfd. Signal 0 sends
    /// nothing and returns `Ok`, as `kill(pid, 0)` does for a process that exists.
    ///
    /// # Errors
    /// `InvalidInput` for a signal number this OS does not name (real-time signals
    /// included, for now); the kernel's.
    pub fn send_signal(&self, signum: i32) -> io::Result<()> {
        self.child.send_signal(signum)
    }

    /// `SIGTERM` (asyncio's `terminate`); as [`send_signal`](Self::send_signal).
    ///
    /// # Errors
    /// As [`send_signal`](Self::send_signal).
    pub fn terminate(&self) -> io::Result<()> {
        self.send_signal(tulip_sys::process::SIGTERM)
    }

    /// `SIGKILL` (asyncio's `kill`); as [`send_signal`](Self::send_signal).
    ///
    /// # Errors
    /// As [`send_signal`](Self::send_signal).
    pub fn kill(&self) -> io::Result<()> {
        self.send_signal(tulip_sys::process::SIGKILL)
    }
}

impl Drop for Process {
    /// Close the pipes still held here (not taken out of the `Process`), so that a child
    /// writing to them is not blocked for good on a pipe nobody reads: it gets `EPIPE` (or
    /// `SIGPIPE`) instead, as when asyncio's transport is closed. The child itself is left
    /// running, and reaped by the loop when it exits.
    fn drop(&mut self) {
        for reader in [&self.stdout, &self.stderr].into_iter().flatten() {
            reader.close_transport();
        }
        // `stdin`, a StreamWriter, closes its pipe as it is dropped.
    }
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.pid())
            .field("returncode", &self.returncode())
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .finish()
    }
}

/// The errors of writing to a child that stopped reading.
fn is_peer_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

async fn read_all(reader: Option<&mut StreamReader>) -> io::Result<Vec<u8>> {
    match reader {
        Some(reader) => reader.read_to_eof().await,
        None => Ok(Vec::new()),
    }
}

/// Await three futures at once.
async fn join3<A, B, C>(
    mut a: std::pin::Pin<&mut A>,
    mut b: std::pin::Pin<&mut B>,
    mut c: std::pin::Pin<&mut C>,
) -> (A::Output, B::Output, C::Output)
where
    A: StdFuture,
    B: StdFuture,
    C: StdFuture,
{
    let (mut ra, mut rb, mut rc) = (None, None, None);
    poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if rc.is_none() {
            if let Poll::Ready(v) = c.as_mut().poll(cx) {
                rc = Some(v);
            }
        }
        match (ra.take(), rb.take(), rc.take()) {
            (Some(x), Some(y), Some(z)) => Poll::Ready((x, y, z)),
            (x, y, z) => {
                (ra, rb, rc) = (x, y, z);
                Poll::Pending
            }
        }
    })
    .await
}
