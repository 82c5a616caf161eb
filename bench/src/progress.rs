//! Progress on stderr: an `indicatif` bar when stderr is a terminal, one line per step
//! otherwise (CI logs, redirections), so stdout stays clean for the report.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tulip_sys::Backend;

use crate::plan::Case;

/// Reports how far a run is. Counted in blocks (for `compare`, one block = every backend's turn
/// once; for `peers`, one sample) within cases (a backend comparison's N × A, a peer workload).
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    command: &'static str,
    cases: usize,
    case: usize,
}

impl Progress {
    /// Progress of `compare` over `total_blocks` blocks in `cases` cases: a bar if stderr is a
    /// terminal.
    pub fn new(total_blocks: usize, cases: usize) -> Progress {
        Progress::named("compare", total_blocks, cases)
    }

    /// Progress of `command` over `total_blocks` blocks in `cases` cases.
    pub fn named(command: &'static str, total_blocks: usize, cases: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total_blocks as u64);
            let style = ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} blocks  {msg}",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        Progress {
            bar,
            command,
            cases,
            case: 0,
        }
    }

    /// A case begins.
    pub fn start_case(&mut self, case: Case) {
        self.start_step(&format!("N={} A={}", case.n, case.active));
    }

    /// A case named `label` begins (any command).
    pub fn start_step(&mut self, label: &str) {
        self.case += 1;
        if let Some(bar) = &self.bar {
            bar.set_message(label.to_string());
        }
    }

    /// A case named `label` is done: in line mode, say so and what it measured.
    pub fn finish_step(&self, label: &str, what: &str, took: Duration) {
        if self.bar.is_none() {
            eprintln!(
                "[{}/{}] {label}: {what} done in {:.1} s",
                self.case,
                self.cases,
                took.as_secs_f64()
            );
        }
    }

    /// One block of a case is done.
    pub fn block_done(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// A case is done: in line mode, say so.
    pub fn finish_case(&self, case: Case, backends: &[Backend], took: Duration) {
        let names: Vec<&str> = backends.iter().map(|b| b.name()).collect();
        let label = format!("N={} A={}", case.n, case.active);
        self.finish_step(&label, &names.join(", "), took);
    }

    /// Cases skipped as a whole (`blocks` of them will not run): say why.
    pub fn skip(&mut self, reason: &str, blocks: usize) {
        match &self.bar {
            Some(bar) => {
                bar.inc(blocks as u64);
                bar.println(reason);
            }
            None => eprintln!("{reason}"),
        }
    }

    /// The run is done: clear the bar and print the total time.
    pub fn finish(&self, took: Duration) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        eprintln!("{}: done in {:.1} s", self.command, took.as_secs_f64());
    }
}
