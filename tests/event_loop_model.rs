//! Property: any program of `call_soon` / `call_later` / `call_at` / `cancel` / `stop`, where
//! callbacks run further such programs, executes on the loop (with a virtual clock, on every
//! backend) exactly as the small model of `support/schedule_model.rs` says. The fuzz target
//! `loop_schedules` drives the same model from libFuzzer.

use proptest::prelude::*;
use tulip::selectors::Backend;

#[path = "support/schedule_model.rs"]
mod schedule_model;
use schedule_model::{Model, Op, Real};

fn program() -> impl Strategy<Value = Vec<Op>> {
    let leaf = prop_oneof![
        any::<usize>().prop_map(Op::Cancel),
        Just(Op::Stop),
        Just(Op::Soon(Vec::new())),
        (0..8u8).prop_map(|d| Op::Later(d, Vec::new())),
        (0..16u8).prop_map(|w| Op::At(w, Vec::new())),
    ];
    let op = leaf.prop_recursive(3, 48, 4, |inner| {
        let children = proptest::collection::vec(inner, 0..4);
        prop_oneof![
            children.clone().prop_map(Op::Soon),
            (0..8u8, children.clone()).prop_map(|(d, c)| Op::Later(d, c)),
            (0..16u8, children).prop_map(|(w, c)| Op::At(w, c)),
        ]
    });
    proptest::collection::vec(op, 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn random_scheduling_programs_run_in_the_order_the_model_predicts(program in program()) {
        let expected = Model::run(&program);
        for &backend in Backend::available() {
            let got = Real::run(backend, &program);
            prop_assert_eq!(&got, &expected, "backend {}", backend);
        }
    }
}
