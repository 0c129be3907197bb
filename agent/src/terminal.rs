//! The run's terminal: the one set of progress bars that the output's task bar and the
//! builtins' byte bars (big copies and fetches) are drawn in. A leaf, so builtins draw bars
//! without importing the output.

use indicatif::{MultiProgress, ProgressDrawTarget};

/// The run's terminal bars (the task bar and byte bars of big copies/fetches) share one
/// `MultiProgress` so they do not draw over each other.
pub fn bars() -> &'static MultiProgress {
    static MULTI: std::sync::OnceLock<MultiProgress> = std::sync::OnceLock::new();
    MULTI.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}
