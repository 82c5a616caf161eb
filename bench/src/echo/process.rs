//! An echo server running as a child process of this binary
//! (`tulip-bench echo-server --impl NAME --addr ADDR`), pinned as [`Pinning`] says, and killed
//! when its [`ServerProcess`] is dropped, on error paths too.
//!
//! The child's stdin is a pipe from this process that is never written: the server exits when
//! it reads end-of-file from it, so that a bench killed outright leaves no server behind.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::pinning::Pinning;
use super::plan::Server;
use super::proc_stat::{self, ProcCpu};

/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running echo server process.
#[derive(Debug)]
pub struct ServerProcess {
    server: Server,
    addr: SocketAddr,
    child: Child,
}

impl ServerProcess {
    /// Start `server` as `exe echo-server` on a free port of 127.0.0.1. Its stderr is this
    /// process's, so its own error messages are seen.
    ///
    /// # Errors
    /// Those of binding the probe socket and of spawning (`taskset` or `exe` missing).
    pub fn start(server: Server, pinning: &Pinning, exe: &Path) -> io::Result<ServerProcess> {
        let addr = free_port()?;
        let child = pinning
            .server_command(exe)
            .args(["echo-server", "--impl", server.name(), "--addr"])
            .arg(addr.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("starting the {} echo server: {e}", server.name()),
                )
            })?;
        Ok(ServerProcess {
            server,
            addr,
            child,
        })
    }

    /// Which server this is.
    pub fn server(&self) -> Server {
        self.server
    }

    /// Connect to the server, retrying while it starts.
    ///
    /// # Errors
    /// If the server exited, or did not accept within [`START_TIMEOUT`].
    pub fn connect(&mut self) -> io::Result<TcpStream> {
        let began = Instant::now();
        loop {
            match TcpStream::connect(self.addr) {
                Ok(stream) => return Ok(stream),
                Err(e) if began.elapsed() > START_TIMEOUT => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the {} echo server did not accept on {} within {:?}: {e}",
                            self.server.name(),
                            self.addr,
                            START_TIMEOUT
                        ),
                    ))
                }
                Err(_) => {}
            }
            self.check_running()?;
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// An error if the server has exited.
    ///
    /// # Errors
    /// `BrokenPipe` naming the server and its exit status.
    pub fn check_running(&mut self) -> io::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("the {} echo server exited ({status})", self.server.name()),
            )),
        }
    }

    /// The server's CPU time so far, all its threads.
    ///
    /// # Errors
    /// Those of [`proc_stat::read`].
    pub fn cpu(&self) -> io::Result<ProcCpu> {
        proc_stat::read(self.child.id())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Already exited is fine; anything else cannot be helped in a destructor.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An address on 127.0.0.1 that was free a moment ago: the kernel's pick for a socket bound to
/// port 0, closed again for the server to bind.
fn free_port() -> io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}
