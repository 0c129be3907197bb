//! Polling helpers: wait for a condition with a deadline instead of sleeping.

use std::time::{Duration, Instant};

/// Default deadline for anything that should happen "soon" on a loaded
/// 2-core machine (cluster start, member health, sshd login...).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(90);

/// Interval between two polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(75);

/// Calls `f` every [`POLL_INTERVAL`] until it returns `Some`, or until
/// `timeout` has elapsed (then returns `None`). `f` is called at least once.
pub fn poll_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Like [`poll_until`] but panics with `what` in the message on timeout.
pub fn wait_until<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    poll_until(timeout, f)
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}
