//! The panic report of a module built with `panic = "abort"`.
//!
//! With unwinding, [`invoke`](super::invoke) catches a panic and reports it
//! in the result like any failure. With `panic = "abort"` nothing can be
//! caught, so the panic hook itself prints the failed result (secrets of the
//! arguments masked, as in every result) and exits 1. What this cannot give
//! back: destructors do not run (a temp file is left where a module was
//! writing, the snapshot's partial file, say), a panic in a spawned task ends
//! the whole module instead of becoming that task's error, and the result has
//! no `invocation`.

use serde_json::{json, Value};
use std::io::Write;
use std::sync::Mutex;

/// Secret values known so far in this run, for masking the panic message.
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Adds secret values that a panic report must mask.
pub fn remember_secrets(secrets: &[String]) {
    if let Ok(mut known) = SECRETS.lock() {
        known.extend(secrets.iter().cloned());
    }
}

/// The failed result for a panic with payload `what`, with `secrets` masked.
pub fn panic_result(what: &str, secrets: &[String]) -> Value {
    let mut secrets = secrets.to_vec();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    let result = json!({
        "failed": true,
        "changed": false,
        "msg": format!("internal error in module: {what}"),
    });
    super::mask::remove_values(result, &secrets)
}

/// Installs the hook: print [`panic_result`] on stdout, exit 1.
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        // A panic while the list is locked leaves it poisoned: mask what it holds anyway.
        let secrets = match SECRETS.lock() {
            Ok(known) => known.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", panic_result(&what, &secrets));
        let _ = out.flush();
        std::process::exit(1)
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_panic_result_is_a_failure_with_secrets_masked() {
        let secrets = vec!["hunter2".to_string(), "hunter".to_string()];
        let result = panic_result("index out of range near hunter2", &secrets);
        assert_eq!(result["failed"], true);
        assert_eq!(result["changed"], false);
        let msg = result["msg"].as_str().unwrap();
        assert!(msg.starts_with("internal error in module: "), "{msg}");
        assert!(!msg.contains("hunter"), "{msg}");
    }

    #[test]
    fn remembered_secrets_accumulate() {
        remember_secrets(&["s3cr3t-abort-test".to_string()]);
        let known = SECRETS.lock().unwrap().clone();
        assert!(known.iter().any(|s| s == "s3cr3t-abort-test"));
    }
}
