//! Unit tests of the ring: real io_uring calls on temporary files.

use super::*;

fn temp_file(content: &[u8], name: &str) -> (std::path::PathBuf, Arc<File>) {
    let path = std::env::temp_dir().join(format!("tulip-ring-{name}-{}", std::process::id()));
    std::fs::write(&path, content).unwrap();
    let file = Arc::new(File::open(&path).unwrap());
    (path, file)
}

fn read(file: &Arc<File>, offset: u64, len: usize) -> Op {
    Op::Read {
        file: Arc::clone(file),
        offset,
        buf: Vec::with_capacity(len),
    }
}

#[test]
fn a_read_comes_back_with_exactly_the_bytes_read_and_its_payload() {
    let (path, file) = temp_file(b"0123456789", "read");
    let mut ring = Ring::new(4).unwrap();
    ring.push(read(&file, 3, 4), "middle");
    ring.push(read(&file, 8, 100), "short");
    let mut done = Vec::new();
    ring.complete_all(&mut done).unwrap();
    done.sort_by_key(|c| c.payload);
    assert_eq!(done[0].payload, "middle");
    assert_eq!(done[0].buf.as_deref(), Some(&b"3456"[..]));
    assert_eq!(done[1].result.as_ref().unwrap(), &2);
    assert_eq!(done[1].buf.as_deref(), Some(&b"89"[..]));
    assert_eq!(ring.in_flight(), 0);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn more_requests_than_the_queues_hold_wait_in_user_space_and_all_complete() {
    let content: Vec<u8> = (0..200u32).flat_map(|i| [i as u8; 16]).collect();
    let (path, file) = temp_file(&content, "backlog");
    let mut ring = Ring::new(2).unwrap();
    for i in 0..200 {
        ring.push(read(&file, i * 16, 16), i);
    }
    assert_eq!(ring.in_flight(), 200);
    let mut done = Vec::new();
    ring.complete_all(&mut done).unwrap();
    assert_eq!(done.len(), 200);
    for c in done {
        assert_eq!(c.buf.unwrap(), [c.payload as u8; 16]);
    }
    // Never more in the kernel than the CQ holds: each enter took at most its room.
    assert!(ring.enters() >= 200 / u64::from(ring.completion_entries()));
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_request_withdrawn_before_submission_completes_cancelled_without_an_enter() {
    let (path, file) = temp_file(b"abc", "withdrawn");
    let mut ring = Ring::new(4).unwrap();
    ring.push(read(&file, 0, 3), 1);
    ring.push(read(&file, 0, 3), 2);
    assert_eq!(ring.cancel_where(|&p| p == 1), 1);
    assert_eq!(ring.cancel_where(|&p| p == 1), 0, "picked once");
    let mut done = Vec::new();
    ring.drain(&mut done);
    assert_eq!(ring.enters(), 0);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].payload, 1);
    assert_eq!(
        done[0].result.as_ref().unwrap_err().raw_os_error(),
        Some(libc::ECANCELED)
    );
    ring.complete_all(&mut done).unwrap();
    assert_eq!(done[1].buf.as_deref(), Some(&b"abc"[..]));
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_refusal_is_simulated_and_a_bad_depth_is_invalid_input() {
    let e = Ring::<()>::with_refusal(8, Some(libc::EPERM)).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    for depth in [0, MAX_DEPTH + 1] {
        let e = Ring::<()>::new(depth).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
