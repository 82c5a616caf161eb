//! Differential property test: every available backend, fed the same random operations on its
//! own socketpairs, reports exactly what a small model of a level-triggered selector says, and
//! returns the same result (or error kind) for every operation. The harness and the model live
//! in `tests/support/differential.rs`, shared with the fuzz target `fuzz/selector_ops`.
//!
//! 64 cases by default; `PROPTEST_CASES=10000 cargo test --test selectors_differential` for more.

#[path = "support/differential.rs"]
mod differential;

use differential::{check_backends_agree_with_the_model, interest_from_code, Op, MAX_WRITE, PAIRS};
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    let pair = 0..PAIRS;
    prop_oneof![
        3 => (pair.clone(), any::<u8>(), 0..4u8).prop_map(|(pair, code, tag)| Op::Register {
            pair,
            interest: interest_from_code(code),
            tag,
        }),
        2 => (pair.clone(), any::<u8>(), 0..4u8).prop_map(|(pair, code, tag)| Op::Modify {
            pair,
            interest: interest_from_code(code),
            tag,
        }),
        1 => pair.clone().prop_map(|pair| Op::Unregister { pair }),
        3 => (pair.clone(), 1..=MAX_WRITE).prop_map(|(pair, len)| Op::Write { pair, len }),
        2 => pair.clone().prop_map(|pair| Op::Drain { pair }),
        1 => pair.prop_map(|pair| Op::ClosePeer { pair }),
    ]
}

fn config() -> ProptestConfig {
    // `ProptestConfig::default()` reads PROPTEST_CASES; only the built-in default is lowered.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_backend_reports_what_the_level_triggered_model_predicts_after_each_operation(
        ops in proptest::collection::vec(op(), 1..64)
    ) {
        check_backends_agree_with_the_model(&ops);
    }
}

/// The comparison covers `uring` wherever this process may use io_uring (it is then in
/// `Backend::available()`, which the harness iterates); elsewhere it says so and passes.
#[test]
fn uring_is_compared_where_io_uring_is_allowed() {
    use tulip::selectors::Backend;
    if cfg!(target_os = "linux") {
        match Backend::Uring.open() {
            Ok(_) => assert!(Backend::available().contains(&Backend::Uring)),
            Err(e) => println!("skipped: {e}"),
        }
    }
}
