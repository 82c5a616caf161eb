//! Fuzz target: the fuzzer's bytes become a program of `call_soon` / `call_later` / `call_at` /
//! `cancel` / `stop` whose callbacks run further programs, run on a loop with a virtual clock
//! on every backend and by the model of `tests/support/schedule_model.rs` (the one the
//! proptest `event_loop_model.rs` uses); any difference in the traces or a panic is a finding.

#![no_main]

#[path = "../../tests/support/schedule_model.rs"]
mod schedule_model;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use schedule_model::{Model, Op, Real};
use tulip::selectors::Backend;

/// The proptest's bounds: nesting 3 deep, some 64 operations in all.
const MAX_DEPTH: usize = 3;
const MAX_OPS: usize = 64;

fn program(u: &mut Unstructured<'_>, depth: usize, budget: &mut usize) -> Result<Vec<Op>> {
    let mut ops = Vec::new();
    let len = u.int_in_range(0..=if depth == 0 { 12 } else { 4 })?;
    for _ in 0..len {
        if *budget == 0 {
            break;
        }
        *budget -= 1;
        let mut children = |u: &mut Unstructured<'_>| match depth < MAX_DEPTH {
            true => program(u, depth + 1, budget),
            false => Ok(Vec::new()),
        };
        ops.push(match u.int_in_range(0..=4u8)? {
            0 => Op::Cancel(u.arbitrary()?),
            1 => Op::Stop,
            2 => Op::Soon(children(u)?),
            3 => Op::Later(u.int_in_range(0..=7)?, children(u)?),
            _ => Op::At(u.int_in_range(0..=15)?, children(u)?),
        });
    }
    Ok(ops)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut budget = MAX_OPS;
    // A program cut short by the end of the input is still a program.
    let program = program(&mut u, 0, &mut budget).unwrap_or_default();
    let expected = Model::run(&program);
    for &backend in Backend::available() {
        assert_eq!(Real::run(backend, &program), expected, "backend {backend}");
    }
});
