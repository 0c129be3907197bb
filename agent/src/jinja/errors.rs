//! Template errors in words: a plugin's own failure as ansible-core words it, and any Jinja
//! error as text that never shows variables' values.

use minijinja::{Error, ErrorKind};

/// A plugin's own failure, shown in ansible-core's words alone ("The lookup plugin 'pipe'
/// failed: ...", "... was not found.", "The filter plugin 'x' failed: ..."), without the
/// template engine's wrapping.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PluginFailed(pub String);

/// A Jinja error carrying a plugin's failure `text` (see [`PluginFailed`]).
pub fn plugin_message(text: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, "plugin failed").with_source(PluginFailed(text))
}

/// A Jinja error in words, its causes after it: never minijinja's debug form (`{:#}`), which
/// prints the template's variables and their values.
pub fn describe(e: &Error) -> String {
    // a lookup plugin's failure is shown in its own words
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(inner) = src {
        if let Some(failed) = inner.downcast_ref::<PluginFailed>() {
            return failed.to_string();
        }
        src = inner.source();
    }
    // an unknown filter or test in ansible-core's words
    for (kind, what) in [
        (ErrorKind::UnknownFilter, "filter"),
        (ErrorKind::UnknownTest, "test"),
    ] {
        if e.kind() == kind {
            let name = e
                .detail()
                .and_then(|d| d.strip_prefix(&format!("{what} ")))
                .and_then(|d| d.strip_suffix(" is unknown"));
            if let Some(name) = name {
                return format!("Syntax error in template: No {what} named '{name}'.");
            }
        }
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    s
}
