//! `BufferedProtocol` (asyncio's), run through `Buffered`, on every backend over loopback TCP:
//! 10 MiB read into a 4 KiB buffer byte for byte with the size hint passed, the end of stream
//! (closing, or kept open for a reply), an empty buffer aborting the connection with an error,
//! and a panic in `get_buffer` reported and closing that connection. The peer is a std socket
//! on a thread of its own; nothing asserts a duration.

use std::cell::RefCell;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::rc::Rc;
use std::thread::JoinHandle;

use tulip::selectors::Backend;
use tulip::{get_running_loop, Buffered, BufferedProtocol, EventLoop, Transport};

#[macro_use]
#[path = "support/per_backend.rs"]
mod per_backend;

#[path = "support/loop_test.rs"]
mod loop_test;
use loop_test::*;

/// What the protocol saw.
#[derive(Default)]
struct Seen {
    got: Vec<u8>,
    hints: Vec<usize>,
    largest_update: usize,
    eofs: usize,
    lost: Option<Option<io::Error>>,
}

/// A BufferedProtocol with a buffer of `buf.len()` bytes (empty: the error case).
struct Sink {
    buf: Vec<u8>,
    seen: Rc<RefCell<Seen>>,
    keep_open: bool,
    panic_in_get_buffer: bool,
    transport: Option<Transport>,
}

impl BufferedProtocol for Sink {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }

    fn get_buffer(&mut self, sizehint: usize) -> &mut [u8] {
        assert!(!self.panic_in_get_buffer, "a panic in get_buffer");
        self.seen.borrow_mut().hints.push(sizehint);
        &mut self.buf
    }

    fn buffer_updated(&mut self, nbytes: usize) {
        let mut seen = self.seen.borrow_mut();
        seen.got.extend_from_slice(&self.buf[..nbytes]);
        seen.largest_update = seen.largest_update.max(nbytes);
    }

    fn eof_received(&mut self) -> bool {
        self.seen.borrow_mut().eofs += 1;
        if self.keep_open {
            let transport = self.transport.as_ref().unwrap();
            let n = self.seen.borrow().got.len();
            transport.write(format!("got {n}").as_bytes()).unwrap();
            transport.close();
        }
        self.keep_open
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.seen.borrow_mut().lost = Some(error);
    }
}

/// A server running `Buffered(Sink)` with a buffer of `size`; a std client connects and runs
/// `peer` on a thread. Returns, once `connection_lost` was called, what the protocol saw and
/// the peer's result.
fn serve<T: Send + 'static>(
    b: Backend,
    size: usize,
    keep_open: bool,
    panic_in_get_buffer: bool,
    peer: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (Seen, T) {
    let lp = new_loop(b);
    lp.set_exception_handler(|_, _| {});
    let (seen, peer): (Seen, JoinHandle<T>) = run_test(&lp, async move {
        let lp: EventLoop = get_running_loop()?;
        let seen = Rc::new(RefCell::new(Seen::default()));
        let theirs = seen.clone();
        let server = lp.create_server(
            move || {
                Buffered(Sink {
                    buf: vec![0; size],
                    seen: theirs.clone(),
                    keep_open,
                    panic_in_get_buffer,
                    transport: None,
                })
            },
            "127.0.0.1:0",
        )?;
        let addr = server.local_addr()?;
        let peer = std::thread::spawn(move || peer(TcpStream::connect(addr).unwrap()));
        eventually(|| seen.borrow().lost.is_some()).await?;
        server.close();
        let seen = seen.take();
        Ok((seen, peer))
    });
    (seen, peer.join().unwrap())
}

/// `len` bytes of a pattern that repeats only every 251 * 256 bytes.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ (i >> 8) as u8).collect()
}

per_backend! {
    /// 10 MiB into a 4 KiB buffer: byte for byte, never more than the buffer per update, the
    /// transport's read size as the hint, one end of stream, a clean end.
    fn buffered_protocol_receives_ten_mib_into_a_small_buffer(b: Backend) {
        let data = pattern(10 << 20);
        let sent = data.clone();
        let (seen, ()) = serve(b, 4096, false, false, move |mut sock| {
            sock.write_all(&sent).unwrap();
        });
        assert!(seen.got == data, "the bytes differ ({} received)", seen.got.len());
        assert!(seen.largest_update <= 4096 && seen.largest_update > 0);
        assert!(seen.hints.iter().all(|&h| h == 64 * 1024), "{:?}", &seen.hints[..4]);
        assert!(seen.hints.len() >= (10 << 20) / 4096);
        assert_eq!(seen.eofs, 1);
        assert!(matches!(seen.lost, Some(None)), "{:?}", seen.lost);
    }

    /// eof_received keeping the connection open: the protocol still writes its reply.
    fn buffered_protocol_eof_kept_open_still_writes(b: Backend) {
        let (seen, reply) = serve(b, 100, true, false, |mut sock| {
            sock.write_all(&[7; 1000]).unwrap();
            sock.shutdown(Shutdown::Write).unwrap();
            let mut reply = String::new();
            sock.read_to_string(&mut reply).unwrap();
            reply
        });
        assert_eq!(reply, "got 1000");
        assert_eq!(seen.got, vec![7; 1000]);
        assert_eq!(seen.eofs, 1);
        assert!(matches!(seen.lost, Some(None)), "{:?}", seen.lost);
    }

    /// An empty buffer from get_buffer aborts the connection with an error.
    fn buffered_protocol_empty_buffer_aborts(b: Backend) {
        let (seen, read) = serve(b, 0, false, false, |mut sock| {
            sock.write_all(b"hello").unwrap();
            let mut rest = Vec::new();
            sock.read_to_end(&mut rest).map(|_| rest.len())
        });
        let err = seen.lost.unwrap().expect("an error for the empty buffer");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(seen.got.is_empty());
        assert_eq!(seen.eofs, 0);
        assert!(matches!(read, Ok(0) | Err(_)));
    }

    /// A panic in get_buffer is reported and ends that connection with an error.
    fn buffered_protocol_panic_in_get_buffer_closes(b: Backend) {
        let (seen, _) = serve(b, 4096, false, true, |mut sock| {
            sock.write_all(b"hello").unwrap();
            let mut rest = Vec::new();
            sock.read_to_end(&mut rest)
        });
        let err = seen.lost.unwrap().expect("an error for the panic");
        assert_eq!(err.kind(), ErrorKind::Other, "{err}");
        assert!(err.to_string().contains("get_buffer"), "{err}");
    }
}
