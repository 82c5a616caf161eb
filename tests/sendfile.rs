//! `EventLoop::sock_sendfile` and `Transport::sendfile` (asyncio's `loop.sock_sendfile` and
//! `loop.sendfile`), on every backend, over loopback TCP: 10 MiB byte for byte, an offset and
//! a count, a count past the end, the read-and-send fallback (forced with a pipe, which
//! `sendfile(2)` cannot read), `fallback: false` refused with `Unsupported`, and a peer that
//! resets mid-transfer. The peer reads on a thread of its own; nothing asserts a duration.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, ErrorKind, Read, Seek, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::thread::JoinHandle;

use tulip::selectors::{fd, Backend};
use tulip::{get_running_loop, EventLoop, Protocol, Transport};

#[macro_use]
#[path = "support/per_backend.rs"]
mod per_backend;

#[path = "support/loop_test.rs"]
mod loop_test;
use loop_test::*;

const TEN_MIB: usize = 10 * 1024 * 1024;

/// `len` bytes of a pattern that repeats only every 251 * 256 bytes.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ (i >> 8) as u8).collect()
}

/// A regular file holding `data`, already unlinked.
fn temp_file(data: &[u8], name: &str) -> File {
    let path = std::env::temp_dir().join(format!("tulip-sendfile-{}-{name}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    file.write_all(data).unwrap();
    file.rewind().unwrap();
    file
}

/// A connected loopback pair: ours non-blocking, theirs blocking.
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let theirs = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (ours, _) = listener.accept().unwrap();
    ours.set_nonblocking(true).unwrap();
    (ours, theirs)
}

/// A pipe whose read end is a `File` (non-blocking) and whose write end a thread fills with
/// `data` and closes.
fn pipe_with(data: Vec<u8>) -> (File, JoinHandle<()>) {
    let (r, w) = fd::pipe().unwrap();
    fd::set_nonblocking(w.as_raw_fd(), false).unwrap();
    let writer = std::thread::spawn(move || {
        File::from(w).write_all(&data).unwrap();
    });
    (File::from(r), writer)
}

/// Keeps its transport where the test finds it, and what `connection_lost` said.
struct Holder {
    slot: Rc<RefCell<Option<Transport>>>,
    lost: Rc<RefCell<Option<Option<io::Error>>>>,
    received: Rc<RefCell<Vec<u8>>>,
}

impl Protocol for Holder {
    fn connection_made(&mut self, transport: Transport) {
        *self.slot.borrow_mut() = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        self.received.borrow_mut().extend_from_slice(data);
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        *self.lost.borrow_mut() = Some(error);
    }
}

/// What a transport test sees: the transport's slot, `connection_lost`'s argument, the bytes
/// the protocol received.
type Seen = (
    Rc<RefCell<Option<Transport>>>,
    Rc<RefCell<Option<Option<io::Error>>>>,
    Rc<RefCell<Vec<u8>>>,
);

/// A server on `lp` whose one connection is accepted from a blocking std client; the client
/// is handed to `peer` on a thread. The transport, once made, and the protocol's records.
async fn transport_with_peer<T: Send + 'static>(
    lp: &EventLoop,
    peer: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> io::Result<(Transport, Seen, JoinHandle<T>)> {
    let seen: Seen = Default::default();
    let (slot, lost, received) = seen.clone();
    let server = lp.create_server(
        move || Holder {
            slot: slot.clone(),
            lost: lost.clone(),
            received: received.clone(),
        },
        "127.0.0.1:0",
    )?;
    let addr = server.local_addr()?;
    let peer = std::thread::spawn(move || peer(TcpStream::connect(addr).unwrap()));
    eventually(|| seen.0.borrow().is_some()).await?;
    server.close();
    let transport = seen.0.borrow().clone().unwrap();
    Ok((transport, seen, peer))
}

fn read_to_end(mut theirs: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    theirs.read_to_end(&mut got).unwrap();
    got
}

fn sock_sendfile(
    b: Backend,
    file: File,
    offset: u64,
    count: Option<u64>,
    fallback: bool,
) -> (io::Result<u64>, Vec<u8>, File) {
    let lp = new_loop(b);
    let (ours, theirs) = tcp_pair();
    let reader = std::thread::spawn(move || read_to_end(theirs));
    let (sent, file) = run_test(&lp, async move {
        let lp = get_running_loop()?;
        let sent = lp
            .sock_sendfile(&ours, &file, offset, count, fallback)
            .await;
        drop(ours);
        Ok((sent, file))
    });
    (sent, reader.join().unwrap(), file)
}

per_backend! {
    /// 10 MiB with sendfile(2), byte for byte; the file's position ends past what was sent.
    fn sock_sendfile_sends_the_whole_file(b: Backend) {
        let data = pattern(TEN_MIB);
        let file = temp_file(&data, &format!("whole-{b}"));
        let (sent, got, mut file) = sock_sendfile(b, file, 0, None, false);
        assert_eq!(sent.unwrap(), TEN_MIB as u64);
        assert!(got == data, "the bytes differ ({} received)", got.len());
        assert_eq!(file.stream_position().unwrap(), TEN_MIB as u64);
    }

    /// An offset and a count send that slice only.
    fn sock_sendfile_honours_offset_and_count(b: Backend) {
        let data = pattern(1 << 20);
        let file = temp_file(&data, &format!("slice-{b}"));
        let (sent, got, mut file) = sock_sendfile(b, file, 1000, Some(300_000), false);
        assert_eq!(sent.unwrap(), 300_000);
        assert!(got == data[1000..301_000], "the bytes differ ({} received)", got.len());
        assert_eq!(file.stream_position().unwrap(), 301_000);
    }

    /// A count past the end of the file sends to the end; an offset past it sends nothing.
    fn sock_sendfile_count_past_eof_stops_at_eof(b: Backend) {
        let data = pattern(100_000);
        let file = temp_file(&data, &format!("past-{b}"));
        let (sent, got, _) = sock_sendfile(b, file, 99_000, Some(1 << 20), false);
        assert_eq!(sent.unwrap(), 1000);
        assert!(got == data[99_000..]);
        let file = temp_file(&data, &format!("beyond-{b}"));
        let (sent, got, _) = sock_sendfile(b, file, 200_000, None, false);
        assert_eq!(sent.unwrap(), 0);
        assert!(got.is_empty());
    }

    /// A pipe cannot be sendfile(2)'s source: the fallback reads and sends it, byte for byte.
    fn sock_sendfile_falls_back_for_a_pipe(b: Backend) {
        let data = pattern(TEN_MIB);
        let (file, writer) = pipe_with(data.clone());
        let (sent, got, _) = sock_sendfile(b, file, 0, None, true);
        writer.join().unwrap();
        assert_eq!(sent.unwrap(), TEN_MIB as u64);
        assert!(got == data, "the bytes differ ({} received)", got.len());
    }

    /// The fallback honours a count too (a pipe has no offset but 0).
    fn sock_sendfile_fallback_honours_count(b: Backend) {
        let data = pattern(1 << 20);
        let (r, w) = fd::pipe().unwrap();
        let mut w = File::from(w);
        w.write_all(&data[..60_000]).unwrap();
        let (sent, got, _) = sock_sendfile(b, File::from(r), 0, Some(50_000), true);
        assert_eq!(sent.unwrap(), 50_000);
        assert!(got == data[..50_000]);
        let (r, _w) = fd::pipe().unwrap();
        let (sent, _, _) = sock_sendfile(b, File::from(r), 5, None, true);
        assert_eq!(sent.unwrap_err().raw_os_error(), Some(libc::ESPIPE));
    }

    /// fallback: false with a file sendfile(2) cannot take: Unsupported, nothing sent.
    fn sock_sendfile_without_fallback_is_unsupported(b: Backend) {
        let (r, _w) = fd::pipe().unwrap();
        let (sent, got, _) = sock_sendfile(b, File::from(r), 0, None, false);
        let err = sent.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        assert!(got.is_empty());
    }

    /// A count of 0 is refused, as asyncio's ValueError.
    fn sock_sendfile_refuses_count_zero(b: Backend) {
        let file = temp_file(b"abc", &format!("zero-{b}"));
        let (sent, _, _) = sock_sendfile(b, file, 0, Some(0), true);
        assert_eq!(sent.unwrap_err().kind(), ErrorKind::InvalidInput);
    }

    /// The peer reads a little, then closes with unread bytes (a reset): the error, no hang.
    fn sock_sendfile_reports_a_reset(b: Backend) {
        let data = pattern(TEN_MIB);
        let file = temp_file(&data, &format!("reset-{b}"));
        let lp = new_loop(b);
        let (ours, mut theirs) = tcp_pair();
        let peer = std::thread::spawn(move || {
            let mut buf = vec![0; 65536];
            theirs.read_exact(&mut buf).unwrap();
            drop(theirs); // unread bytes left: the kernel sends a reset
        });
        let sent = run_test(&lp, async move {
            let lp = get_running_loop()?;
            Ok(lp.sock_sendfile(&ours, &file, 0, None, false).await)
        });
        peer.join().unwrap();
        let err = sent.unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
            "{err:?}"
        );
    }

    /// Transport::sendfile: what the protocol wrote before goes first, then 10 MiB by
    /// sendfile(2), then what it writes after; byte for byte, and reading resumes.
    fn transport_sendfile_sends_the_whole_file(b: Backend) {
        let data = pattern(TEN_MIB);
        let file = temp_file(&data, &format!("transport-{b}"));
        let lp = new_loop(b);
        let (got, sent) = run_test(&lp, async move {
            let lp = get_running_loop()?;
            let (transport, seen, peer) = transport_with_peer(&lp, read_to_end).await?;
            transport.write(b"header")?;
            let sent = transport.sendfile(&file, 0, None, false).await?;
            assert!(transport.is_reading());
            transport.write(b"trailer")?;
            transport.close();
            eventually(|| seen.1.borrow().is_some()).await?;
            Ok((peer, sent))
        });
        let got = got.join().unwrap();
        assert_eq!(sent, TEN_MIB as u64);
        assert_eq!(&got[..6], b"header");
        assert_eq!(&got[got.len() - 7..], b"trailer");
        assert!(got[6..got.len() - 7] == data[..], "the bytes differ ({} received)", got.len());
    }

    /// Transport::sendfile honours an offset and a count.
    fn transport_sendfile_honours_offset_and_count(b: Backend) {
        let data = pattern(1 << 20);
        let file = temp_file(&data, &format!("transport-slice-{b}"));
        let lp = new_loop(b);
        let (got, sent) = run_test(&lp, async move {
            let lp = get_running_loop()?;
            let (transport, seen, peer) = transport_with_peer(&lp, read_to_end).await?;
            let sent = transport.sendfile(&file, 12_345, Some(500_000), false).await?;
            let past = transport.sendfile(&file, 1_000_000, Some(500_000), false).await?;
            transport.close();
            eventually(|| seen.1.borrow().is_some()).await?;
            Ok((peer, (sent, past)))
        });
        let got = got.join().unwrap();
        assert_eq!(sent, (500_000, (1 << 20) - 1_000_000));
        assert!(got[..500_000] == data[12_345..512_345]);
        assert!(got[500_000..] == data[1_000_000..]);
    }

    /// A pipe as the file: the fallback writes it through the buffer, byte for byte, and
    /// fallback: false is Unsupported.
    fn transport_sendfile_falls_back_for_a_pipe(b: Backend) {
        let data = pattern(TEN_MIB);
        let (file, writer) = pipe_with(data.clone());
        let lp = new_loop(b);
        let (got, (sent, refused)) = run_test(&lp, async move {
            let lp = get_running_loop()?;
            let (transport, seen, peer) = transport_with_peer(&lp, read_to_end).await?;
            let (r, _w) = fd::pipe()?;
            let refused = transport.sendfile(&File::from(r), 0, None, false).await;
            let sent = transport.sendfile(&file, 0, None, true).await?;
            // The buffer is never more than a chunk past the high-water mark.
            assert!(transport.get_write_buffer_size() <= 64 * 1024 + 256 * 1024);
            transport.close();
            eventually(|| seen.1.borrow().is_some()).await?;
            Ok((peer, (sent, refused)))
        });
        writer.join().unwrap();
        let got = got.join().unwrap();
        assert_eq!(refused.unwrap_err().kind(), ErrorKind::Unsupported);
        assert_eq!(sent, TEN_MIB as u64);
        assert!(got == data, "the bytes differ ({} received)", got.len());
    }

    /// The peer resets mid-transfer: sendfile fails, and connection_lost gets the error.
    fn transport_sendfile_reports_a_reset(b: Backend) {
        let data = pattern(TEN_MIB);
        let file = temp_file(&data, &format!("transport-reset-{b}"));
        let lp = new_loop(b);
        let (sent, lost) = run_test(&lp, async move {
            let lp = get_running_loop()?;
            let (transport, seen, peer) = transport_with_peer(&lp, |mut theirs| {
                let mut buf = vec![0; 65536];
                theirs.read_exact(&mut buf).unwrap();
            })
            .await?;
            let sent = transport.sendfile(&file, 0, None, false).await;
            eventually(|| seen.1.borrow().is_some()).await?;
            peer.join().unwrap();
            let lost = seen.1.borrow_mut().take().unwrap();
            Ok((sent, lost))
        });
        let err = sent.unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
            "{err:?}"
        );
        assert!(lost.is_some());
    }
}
