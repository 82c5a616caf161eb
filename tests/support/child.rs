//! Running a scenario in a child process: the test runs its own binary again, on itself alone,
//! with [`CHILD_ENV`] naming the scenario, and checks how the child ended. For what must be
//! able to kill the process (a `SIGPIPE`) or change it for good (a lowered fd limit).
//! Included with `#[path]` by the tests that need it.

#![allow(dead_code)]

use std::process::{Command, Output};

use tulip::selectors::Backend;

/// Set in a child process started by [`run_in_child`]: which scenario to run.
pub const CHILD_ENV: &str = "TULIP_TEST_CHILD";

/// Which scenario this process runs, if it is a child started by [`run_in_child`].
pub fn child_role() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// The name libtest gives the `per_backend!` test whose `run` has `module_path`, on `b`.
pub fn test_name(module_path: &str, b: Backend) -> String {
    let (_crate, test) = module_path
        .split_once("::")
        .expect("a per_backend! test sits in a module of the test crate");
    format!("{test}::{b}")
}

/// Run this binary's test `name` alone, in a child process with [`CHILD_ENV`] set to `role`.
pub fn run_in_child(name: &str, role: &str) -> Output {
    Command::new(std::env::current_exe().expect("the test binary's path"))
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, role)
        .output()
        .expect("the test binary runs again")
}

/// How the child ended, and what it printed, for a failure message.
pub fn describe(output: &Output) -> String {
    format!(
        "the child {}\n--- its stdout\n{}\n--- its stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The child ran its one test and the test passed (a filter that matched no test exits 0 too).
pub fn assert_child_passed(output: &Output) {
    let ran_one = String::from_utf8_lossy(&output.stdout).contains("1 passed");
    assert!(output.status.success() && ran_one, "{}", describe(output));
}
