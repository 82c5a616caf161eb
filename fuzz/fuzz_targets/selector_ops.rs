//! Fuzz target: the fuzzer's bytes become a sequence of selector operations (register, modify,
//! unregister, write, drain, close the peer) applied to every available backend and to the
//! model of `tests/support/differential.rs`; any disagreement or panic is a finding.

#![no_main]

#[path = "../../tests/support/differential.rs"]
mod differential;

use arbitrary::{Result, Unstructured};
use differential::{check_backends_agree_with_the_model, interest_from_code, Op, MAX_WRITE, PAIRS};
use libfuzzer_sys::fuzz_target;

/// Longer sequences explore no more states (4 pairs), and only slow the fuzzer down.
const MAX_OPS: usize = 256;

fn op(u: &mut Unstructured<'_>) -> Result<Op> {
    let pair = u.choose_index(PAIRS)?;
    Ok(match u.int_in_range(0..=5u8)? {
        0 => Op::Register {
            pair,
            interest: interest_from_code(u.arbitrary()?),
            tag: u.int_in_range(0..=3)?,
        },
        1 => Op::Modify {
            pair,
            interest: interest_from_code(u.arbitrary()?),
            tag: u.int_in_range(0..=3)?,
        },
        2 => Op::Unregister { pair },
        3 => Op::Write {
            pair,
            len: u.int_in_range(1..=MAX_WRITE)?,
        },
        4 => Op::Drain { pair },
        _ => Op::ClosePeer { pair },
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while ops.len() < MAX_OPS {
        match op(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    check_backends_agree_with_the_model(&ops);
});
