//! An existing protocol crate over tulip: the HTTP/1.1 server of `examples/hyper_server.rs`
//! (hyper, through an adapter from futures-io's traits, which tulip's streams implement)
//! answering the real `curl`, on every backend. curl runs as a child of the same loop
//! (`create_subprocess_exec`), so the server and the client's output are served by one thread.
//!
//! `curl` must be installed: without it each test fails and says so (CI installs it).
//!
//! Nothing asserts a duration: [`TIMEOUT`] only turns a hang into a failure.

use std::io;

use tulip::process::{create_subprocess_exec, Redirect, SubprocessOptions};
use tulip::selectors::Backend;

#[macro_use]
#[path = "support/per_backend.rs"]
mod per_backend;

#[path = "support/loop_test.rs"]
mod loop_test;
use loop_test::*;

/// The example itself, not a copy: its `main` is left unused here.
#[allow(dead_code)]
#[path = "../examples/hyper_server.rs"]
mod hyper_server;
use hyper_server::{start, GREETING};

/// Run `curl` with `args` (after options that keep it from reading `~/.curlrc`, going through
/// a proxy, or outliving a failed test), `input` on its stdin: its stdout, or an error
/// carrying its stderr if it fails. A missing `curl` fails the test with a message.
async fn curl(args: &[&str], input: Option<&[u8]>) -> io::Result<Vec<u8>> {
    let limit = TIMEOUT.as_secs().to_string();
    let mut all = vec![
        "-q",
        "--silent",
        "--show-error",
        "--noproxy",
        "*",
        "--http1.1",
    ];
    all.extend(["--max-time", &limit]);
    all.extend(args);
    let stdin = if input.is_some() {
        Redirect::Pipe
    } else {
        Redirect::Null
    };
    let options = SubprocessOptions::new()
        .stdin(stdin)
        .stdout(Redirect::Pipe)
        .stderr(Redirect::Pipe);
    let mut child = match create_subprocess_exec("curl", all, options).await {
        Err(e) if e.kind() == io::ErrorKind::NotFound => panic!(
            "these tests run the `curl` program, which is not installed here: \
             install it (e.g. `apt-get install curl`) and run them again"
        ),
        spawned => spawned?,
    };
    let (out, err) = child.communicate(input).await?;
    match child.returncode() {
        Some(0) => Ok(out),
        code => Err(io::Error::other(format!(
            "curl {args:?} exited with {code:?}: {}",
            String::from_utf8_lossy(&err)
        ))),
    }
}

/// `len` bytes that do not repeat with any short period, every byte value among them.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9E37_79B9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

per_backend! {
    /// `GET /` answers 200 and the greeting (headers checked); another path answers 404.
    fn get_answers_the_greeting(b: Backend) {
        let lp = new_loop(b);
        run_test(&lp, async {
            let (server, accepted) = start("127.0.0.1:0").await?;
            let base = format!("http://{}", server.local_addr()?);

            let out = curl(&["--include", &format!("{base}/")], None).await?;
            let out = String::from_utf8(out).expect("a text response");
            assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out:?}");
            let length = format!("\r\ncontent-length: {}\r\n", GREETING.len());
            assert!(out.to_ascii_lowercase().contains(&length), "{out:?}");
            assert!(out.ends_with(&format!("\r\n\r\n{GREETING}")), "{out:?}");

            let missing = format!("{base}/nowhere");
            let out = curl(&["--write-out", "%{http_code}", "--output", "/dev/null", &missing], None)
                .await?;
            assert_eq!(out, b"404");
            assert_eq!(accepted.get(), 2);
            server.close();
            Ok(())
        });
    }

    /// `POST /echo` with 4 MiB sends the same 4 MiB back, byte for byte: hyper reads the
    /// request through `AsyncBufRead` (after answering curl's `Expect: 100-continue`), writes
    /// the response through `AsyncWrite` and flushes it with `poll_flush`, which is `drain`:
    /// pending while what the kernel did not take keeps the transport above its high-water
    /// mark (on this machine's loopback it is, a few times per run; not asserted).
    fn post_echoes_four_mib(b: Backend) {
        let lp = new_loop(b);
        run_test(&lp, async {
            let (server, accepted) = start("127.0.0.1:0").await?;
            let url = format!("http://{}/echo", server.local_addr()?);
            let body = pattern(4 << 20);
            let args = [
                "--fail",
                "--data-binary",
                "@-",
                "--header",
                "Content-Type: application/octet-stream",
                &url,
            ];
            let out = curl(&args, Some(&body)).await?;
            assert_eq!(out.len(), body.len());
            let first_difference = out.iter().zip(&body).position(|(a, b)| a != b);
            assert_eq!(first_difference, None, "the echo differs from the body sent");
            assert_eq!(accepted.get(), 1);
            server.close();
            Ok(())
        });
    }

    /// `curl URL URL` sends its second request on the first one's connection: curl counts
    /// one connect, then none, and the server accepted one connection.
    fn keep_alive_serves_two_requests_on_one_connection(b: Backend) {
        let lp = new_loop(b);
        run_test(&lp, async {
            let (server, accepted) = start("127.0.0.1:0").await?;
            let url = format!("http://{}/", server.local_addr()?);
            let out = curl(&["--write-out", "[%{num_connects}]", &url, &url], None).await?;
            let expected = format!("{GREETING}[1]{GREETING}[0]");
            assert_eq!(String::from_utf8_lossy(&out), expected);
            assert_eq!(accepted.get(), 1);
            server.close();
            Ok(())
        });
    }
}
