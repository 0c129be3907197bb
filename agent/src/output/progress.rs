//! Terminal progress (indicatif): hosts done for the current task. Shown only on a TTY.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// A progress bar on stderr for the running task.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A progress bar when stderr is a terminal, else `None`.
    pub fn if_terminal() -> Option<Self> {
        if !std::io::stderr().is_terminal() || std::env::var_os("CI").is_some() {
            return None;
        }
        let bar = crate::terminal::bars().add(ProgressBar::new(0));
        let style = ProgressStyle::with_template("{spinner} [{elapsed}] {pos}/{len} hosts  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Some(Progress { bar })
    }

    /// Resets the bar for a task running on `hosts` hosts.
    pub fn start_task(&mut self, name: &str, hosts: usize) {
        self.bar.set_length(hosts as u64);
        self.bar.set_position(0);
        self.bar.set_message(format!("TASK [{name}]"));
    }

    /// One host finished.
    pub fn host_done(&self) {
        self.bar.inc(1);
    }

    /// Runs `f` with the bar hidden (to print lines).
    pub fn suspend<F: FnOnce()>(&self, f: F) {
        crate::terminal::bars().suspend(f)
    }

    /// Removes the bar.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}
