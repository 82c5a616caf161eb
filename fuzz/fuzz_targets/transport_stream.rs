//! Fuzz target: a transport's byte stream. A TCP connection on loopback, both ends transports
//! on one loop (a backend the fuzzer picks): a writer whose bytes come from a fixed pattern and
//! a sink that keeps what it receives. The fuzzer's bytes choose how the stream is cut into
//! writes, when the sink pauses and resumes reading, when the writer ends its side
//! (`write_eof`, `close`), when either end aborts (a reset for the other), water marks, and how
//! many loop iterations run between. Then both ends close and the loop runs until both
//! connections are lost. What must hold: the sink received a prefix of what was written, each
//! byte once and in order; without an abort, all of it, and neither end reported an error; each
//! end's `connection_lost` ran exactly once.

#![no_main]

use std::cell::RefCell;
use std::io::ErrorKind;
use std::rc::Rc;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tulip::selectors::Backend;
use tulip::{EventLoop, Protocol, Transport};

const MAX_OPS: usize = 128;

#[derive(Arbitrary, Debug)]
enum Op {
    /// The writer writes the next `len` bytes of the pattern (up to 64 KiB).
    Write(u16),
    PauseReading,
    ResumeReading,
    WriteEof,
    CloseWriter,
    AbortWriter,
    AbortSink,
    /// The writer's water marks: high = n KiB, low = half of it.
    WriteLimits(u8),
    /// Run this many loop iterations that do not wait (1 to 8).
    Iterate(u8),
}

/// The n-th byte of the stream: 251 is prime, so a byte repeated or skipped shows.
fn pattern(n: usize) -> u8 {
    (n % 251) as u8
}

/// What one end saw.
#[derive(Default)]
struct End {
    transport: Option<Transport>,
    received: Vec<u8>,
    eof: bool,
    /// Each `connection_lost`, with the kind of its error.
    lost: Vec<Option<ErrorKind>>,
}

struct Recorder(Rc<RefCell<End>>);

impl Protocol for Recorder {
    fn connection_made(&mut self, transport: Transport) {
        self.0.borrow_mut().transport = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        self.0.borrow_mut().received.extend_from_slice(data);
    }
    fn eof_received(&mut self) -> bool {
        self.0.borrow_mut().eof = true;
        false
    }
    fn connection_lost(&mut self, error: Option<std::io::Error>) {
        self.0.borrow_mut().lost.push(error.map(|e| e.kind()));
    }
}

fn run(backend: Backend, ops: &[Op]) {
    let lp = EventLoop::with_backend(backend).expect("a loop");
    let sink = Rc::new(RefCell::new(End::default()));
    let sink_in = sink.clone();
    let server = lp
        .create_server(move || Recorder(sink_in.clone()), "127.0.0.1:0")
        .expect("a server on loopback");
    let addr = server.local_addr().expect("its address");
    let writer = Rc::new(RefCell::new(End::default()));
    let writer_in = writer.clone();
    let (out, _) = lp
        .run_until_complete(async move {
            let lp = tulip::get_running_loop()?;
            lp.create_connection(move || Recorder(writer_in), addr)
                .await
        })
        .expect("the loop ran")
        .expect("a connection on loopback");
    lp.run_until(|_| sink.borrow().transport.is_some())
        .expect("the server accepted");
    let into = sink.borrow().transport.clone().expect("accepted");
    server.close();

    let mut sent = 0usize;
    let mut aborted = false;
    for op in ops {
        match *op {
            Op::Write(len) => {
                let bytes: Vec<u8> = (sent..sent + usize::from(len)).map(pattern).collect();
                if out.write(&bytes).is_ok() {
                    sent += bytes.len();
                }
            }
            Op::PauseReading => into.pause_reading(),
            Op::ResumeReading => into.resume_reading(),
            Op::WriteEof => out.write_eof(),
            Op::CloseWriter => out.close(),
            Op::AbortWriter => {
                aborted = true;
                out.abort();
            }
            Op::AbortSink => {
                aborted = true;
                into.abort();
            }
            Op::WriteLimits(kib) => {
                let high = usize::from(kib) * 1024;
                out.set_write_buffer_limits(Some(high), Some(high / 2))
                    .expect("low is below high");
            }
            Op::Iterate(n) => {
                for _ in 0..=n % 8 {
                    lp.run_once(Some(Duration::ZERO)).expect("an iteration");
                }
            }
        }
    }
    into.resume_reading();
    out.close();
    lp.run_until(|_| !sink.borrow().lost.is_empty() && !writer.borrow().lost.is_empty())
        .expect("both ends end");
    // Late callbacks (a second `connection_lost`) would come in the next iterations.
    for _ in 0..4 {
        lp.run_once(Some(Duration::ZERO)).expect("an iteration");
    }

    let (sink, writer) = (sink.borrow(), writer.borrow());
    let received = &sink.received;
    assert!(
        received.len() <= sent,
        "{} bytes received, {sent} sent",
        received.len()
    );
    if let Some(at) = (0..received.len()).find(|&i| received[i] != pattern(i)) {
        panic!("byte {at} of {} received is wrong", received.len());
    }
    assert_eq!(sink.lost.len(), 1, "the sink's connection_lost calls");
    assert_eq!(writer.lost.len(), 1, "the writer's connection_lost calls");
    assert!(writer.received.is_empty(), "the sink wrote nothing");
    if !aborted {
        assert_eq!(received.len(), sent, "without an abort every byte arrives");
        assert!(sink.eof, "and then the end of the stream");
        assert_eq!(sink.lost[0], None, "the sink's end was clean");
        assert_eq!(writer.lost[0], None, "the writer's end was clean");
    }
    drop(server);
    lp.close().expect("the loop closes");
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let backends = Backend::available();
    let Ok(which) = u.choose_index(backends.len()) else {
        return;
    };
    let mut ops = Vec::new();
    while ops.len() < MAX_OPS {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    run(backends[which], &ops);
});
