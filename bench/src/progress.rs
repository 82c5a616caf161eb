//! Progress on stderr: an `indicatif` bar when stderr is a terminal, one line per step
//! otherwise (CI logs, redirections), so stdout stays clean for the report.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tulip_sys::Backend;

use crate::plan::Case;

/// Reports how far a run is. Counted in blocks (one block = every backend's turn once).
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    cases: usize,
    case: usize,
}

impl Progress {
    /// Progress over `total_blocks` blocks in `cases` cases: a bar if stderr is a terminal.
    pub fn new(total_blocks: usize, cases: usize) -> Progress {
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
            cases,
            case: 0,
        }
    }

    /// A case begins.
    pub fn start_case(&mut self, case: Case) {
        self.case += 1;
        if let Some(bar) = &self.bar {
            bar.set_message(format!("N={} A={}", case.n, case.active));
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
        if self.bar.is_none() {
            let names: Vec<&str> = backends.iter().map(|b| b.name()).collect();
            eprintln!(
                "[{}/{}] N={} A={}: {} done in {:.1} s",
                self.case,
                self.cases,
                case.n,
                case.active,
                names.join(", "),
                took.as_secs_f64()
            );
        }
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
        eprintln!("compare: done in {:.1} s", took.as_secs_f64());
    }
}
