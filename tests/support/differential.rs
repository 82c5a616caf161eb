//! The differential harness shared by `tests/selectors_differential.rs` (proptest) and
//! `fuzz/fuzz_targets/selector_ops.rs` (cargo-fuzz): a sequence of [`Op`]s is applied to every
//! available backend, each on its own socketpairs, and to a [`Model`] of what a level-triggered
//! selector must report; after each op, every backend's answer must equal the model's.
//!
//! The model is written for clarity: an fd is readable iff it is registered for reading and its
//! peer has sent bytes not yet drained or has closed; writable iff registered for writing (writes
//! stay far below the socket buffer, so it never fills); hung up iff its peer closed, which every
//! backend but `select` can tell.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use tulip::selectors::{fd, Backend, Interest, Selector, Token};

/// How many socketpairs each backend gets; ops name one by its index (modulo this).
pub const PAIRS: usize = 4;

/// The most bytes one `Write` sends: with a few hundred ops, the buffers stay far from full.
pub const MAX_WRITE: usize = 16;

/// One step of a sequence. `pair` indexes the socketpairs; `tag` varies the token.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `register(local end, interest, token(pair, tag))`.
    Register {
        pair: usize,
        interest: Interest,
        tag: u8,
    },
    /// `modify(local end, interest, token(pair, tag))`.
    Modify {
        pair: usize,
        interest: Interest,
        tag: u8,
    },
    /// `unregister(local end)`.
    Unregister { pair: usize },
    /// Send `len` bytes (1..=MAX_WRITE) from the peer end, if it is still open.
    Write { pair: usize, len: usize },
    /// Read the local end until it would block or says EOF.
    Drain { pair: usize },
    /// Close the peer end.
    ClosePeer { pair: usize },
}

/// The interest an op code names: 0 is the empty interest (which must be refused).
pub fn interest_from_code(code: u8) -> Interest {
    match code % 4 {
        0 => Interest::empty(),
        1 => Interest::READABLE,
        2 => Interest::WRITABLE,
        _ => Interest::BOTH,
    }
}

/// The token an op gives: distinct per (pair, tag), equal across backends.
pub fn token(pair: usize, tag: u8) -> Token {
    Token(pair * 256 + usize::from(tag))
}

/// What one `select` reported (or the model expects), comparable across backends:
/// (token, readable, writable, hung up).
pub type Observation = BTreeSet<(usize, bool, bool, bool)>;

/// The model of one socketpair's local end.
#[derive(Clone, Debug, Default)]
struct ModelPair {
    registration: Option<(Interest, Token)>,
    buffered: usize,
    peer_closed: bool,
}

/// What a level-triggered selector must do, for [`PAIRS`] socketpairs.
#[derive(Clone, Debug, Default)]
pub struct Model {
    pairs: [ModelPair; PAIRS],
}

impl Model {
    /// The result the contract prescribes for `op` (updating the model), as an error kind.
    pub fn apply(&mut self, op: Op) -> Result<(), ErrorKind> {
        match op {
            // The empty interest is refused before the registry is consulted.
            Op::Register { interest, .. } | Op::Modify { interest, .. } if interest.is_empty() => {
                Err(ErrorKind::InvalidInput)
            }
            Op::Register {
                pair,
                interest,
                tag,
            } => {
                let p = &mut self.pairs[pair];
                if p.registration.is_some() {
                    return Err(ErrorKind::AlreadyExists);
                }
                p.registration = Some((interest, token(pair, tag)));
                Ok(())
            }
            Op::Modify {
                pair,
                interest,
                tag,
            } => {
                let p = &mut self.pairs[pair];
                if p.registration.is_none() {
                    return Err(ErrorKind::NotFound);
                }
                p.registration = Some((interest, token(pair, tag)));
                Ok(())
            }
            Op::Unregister { pair } => match self.pairs[pair].registration.take() {
                Some(_) => Ok(()),
                None => Err(ErrorKind::NotFound),
            },
            Op::Write { pair, len } => {
                let p = &mut self.pairs[pair];
                if !p.peer_closed {
                    p.buffered += len;
                }
                Ok(())
            }
            Op::Drain { pair } => {
                self.pairs[pair].buffered = 0;
                Ok(())
            }
            Op::ClosePeer { pair } => {
                self.pairs[pair].peer_closed = true;
                Ok(())
            }
        }
    }

    /// What `select(Some(ZERO))` must report now on `backend`.
    pub fn expected(&self, backend: Backend) -> Observation {
        let mut ready = Observation::new();
        for p in &self.pairs {
            let Some((interest, token)) = p.registration else {
                continue;
            };
            let readable = interest.is_readable() && (p.buffered > 0 || p.peer_closed);
            let writable = interest.is_writable();
            let hangup = p.peer_closed && backend != Backend::Select;
            if readable || writable || hangup {
                ready.insert((token.0, readable, writable, hangup));
            }
        }
        ready
    }

    /// The registration `pair` must have.
    pub fn registration(&self, pair: usize) -> Option<(Interest, Token)> {
        self.pairs[pair].registration
    }

    /// How many fds must be registered.
    pub fn len(&self) -> usize {
        self.pairs
            .iter()
            .filter(|p| p.registration.is_some())
            .count()
    }
}

/// One backend under test, with its own socketpairs.
pub struct World {
    backend: Backend,
    selector: Box<dyn Selector>,
    /// (local end, registered; peer end, written to and closed by ops).
    pairs: Vec<(OwnedFd, Option<OwnedFd>)>,
}

impl World {
    /// A fresh selector of `backend` and [`PAIRS`] fresh socketpairs.
    pub fn new(backend: Backend) -> World {
        let selector = backend.open().expect("an available backend opens");
        let pairs = (0..PAIRS)
            .map(|_| {
                let (local, peer) = fd::socketpair().expect("a socketpair can be created");
                (local, Some(peer))
            })
            .collect();
        World {
            backend,
            selector,
            pairs,
        }
    }

    /// Apply `op` to the selector and the socketpairs; the selector's result as an error kind.
    pub fn apply(&mut self, op: Op) -> Result<(), ErrorKind> {
        let kind = |r: std::io::Result<()>| r.map_err(|e| e.kind());
        match op {
            Op::Register {
                pair,
                interest,
                tag,
            } => {
                let fd = self.pairs[pair].0.as_raw_fd();
                kind(self.selector.register(fd, interest, token(pair, tag)))
            }
            Op::Modify {
                pair,
                interest,
                tag,
            } => {
                let fd = self.pairs[pair].0.as_raw_fd();
                kind(self.selector.modify(fd, interest, token(pair, tag)))
            }
            Op::Unregister { pair } => {
                kind(self.selector.unregister(self.pairs[pair].0.as_raw_fd()))
            }
            Op::Write { pair, len } => {
                if let Some(peer) = &self.pairs[pair].1 {
                    let sent = fd::send(peer.as_fd(), &[0x5a; MAX_WRITE][..len])
                        .expect("a small write into an open socketpair succeeds");
                    assert_eq!(sent, len, "the socket buffer took the whole small write");
                }
                Ok(())
            }
            Op::Drain { pair } => {
                let mut buf = [0u8; 4096];
                loop {
                    match fd::read(self.pairs[pair].0.as_fd(), &mut buf) {
                        Ok(0) => break,
                        Ok(_) => continue,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => panic!("{}: draining pair {pair}: {e}", self.backend),
                    }
                }
                Ok(())
            }
            Op::ClosePeer { pair } => {
                self.pairs[pair].1 = None;
                Ok(())
            }
        }
    }

    /// What `select(Some(ZERO))` reports now.
    pub fn observe(&mut self) -> Observation {
        let mut events = Vec::new();
        let n = self
            .selector
            .select(&mut events, Some(Duration::ZERO))
            .unwrap_or_else(|e| panic!("{}: select failed: {e}", self.backend));
        assert_eq!(
            n,
            events.len(),
            "{}: select's count is the events'",
            self.backend
        );
        let mut seen = Observation::new();
        for event in &events {
            assert!(
                !event.is_error(),
                "{}: no error on a healthy socketpair: {event:?}",
                self.backend
            );
            let fresh = seen.insert((
                event.token().0,
                event.is_readable(),
                event.is_writable(),
                event.is_hangup(),
            ));
            assert!(fresh, "{}: one event per fd per select", self.backend);
        }
        assert_eq!(
            seen.len(),
            events.len(),
            "{}: one event per fd per select",
            self.backend
        );
        seen
    }

    /// Check `registration()` and `len()` against the model.
    pub fn check_bookkeeping(&self, model: &Model) {
        for pair in 0..PAIRS {
            let got = self
                .selector
                .registration(self.pairs[pair].0.as_raw_fd())
                .map(|r| (r.interest, r.token));
            assert_eq!(
                got,
                model.registration(pair),
                "{}: registration of pair {pair}",
                self.backend
            );
        }
        assert_eq!(self.selector.len(), model.len(), "{}: len()", self.backend);
    }
}

/// Run `ops` on every available backend and on the model, checking after every op that each
/// backend returned the model's result and reports exactly the model's readiness.
pub fn check_backends_agree_with_the_model(ops: &[Op]) {
    let mut model = Model::default();
    let mut worlds: Vec<World> = Backend::available()
        .iter()
        .map(|&b| World::new(b))
        .collect();
    for (step, &op) in ops.iter().enumerate() {
        let expected = model.apply(op);
        for world in &mut worlds {
            let got = world.apply(op);
            assert_eq!(
                got, expected,
                "{}: result of step {step} {op:?}",
                world.backend
            );
            world.check_bookkeeping(&model);
            let seen = world.observe();
            let want = model.expected(world.backend);
            assert_eq!(
                seen, want,
                "{}: readiness after step {step} {op:?}",
                world.backend
            );
        }
    }
}
