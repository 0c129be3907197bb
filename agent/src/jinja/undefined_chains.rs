//! Chained undefined values where a template guards them.
//!
//! In ansible-core an attribute of an undefined value is undefined too, so
//! `a.missing.x is defined` is false and `a.missing.x | default(1)` is 1. minijinja's strict
//! mode (which the agent needs everywhere else: a value that is undefined must fail where it
//! is used) fails at `.x` instead. So a variable path with accessors that is guarded (followed by `is defined`, `is not defined`, `is undefined`, `| default`, `| d`) is
//! rewritten into a call of [`WALK_FUNCTION`], which walks the same keys and gives undefined
//! at the first one that is missing. Anything else is left as written.

use super::lookup_constants::{each_code, string_end};
use minijinja::value::Rest;
use minijinja::Value as JValue;
use std::borrow::Cow;

/// The function a guarded path becomes: `__etcd_agent_walk(root, key, ...)`.
pub const WALK_FUNCTION: &str = "__etcd_agent_walk";

/// `root` followed through `keys` as Jinja's `.key` and `[key]` do; undefined at the first key
/// that is missing (or on a value that has none).
pub fn walk(root: JValue, keys: Rest<JValue>) -> JValue {
    let mut current = root;
    for key in keys.iter() {
        if current.is_undefined() {
            return JValue::UNDEFINED;
        }
        let next = match key.as_str() {
            Some(name) => current.get_attr(name),
            None => current.get_item(key),
        };
        match next {
            Ok(v) if !v.is_undefined() => current = v,
            _ => return JValue::UNDEFINED,
        }
    }
    current
}

/// `source` (a template, or an expression when `expression`) with its guarded variable paths
/// rewritten (see the module's docs); borrowed when there is none.
pub fn rewrite(source: &str, expression: bool) -> Cow<'_, str> {
    if !(source.contains("defined") || source.contains('|')) {
        return Cow::Borrowed(source);
    }
    let mut out = String::with_capacity(source.len());
    let copied: Result<(), std::convert::Infallible> =
        each_code(source, expression, &mut out, &mut |code, out| {
            rewrite_code(code, out);
            Ok(())
        });
    let Ok(()) = copied;
    if out == source {
        Cow::Borrowed(source)
    } else {
        Cow::Owned(out)
    }
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The length of the identifier at the start of `s` (0 when there is none).
fn ident_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.is_empty() || !(b[0].is_ascii_alphabetic() || b[0] == b'_') {
        return 0;
    }
    b.iter().take_while(|c| is_ident_byte(**c)).count()
}

/// One accessor of a path, as the walk function's argument text.
enum Key<'a> {
    /// `.name` (or `.0`, an index).
    Dot(&'a str),
    /// `[expression]`.
    Index(&'a str),
}

/// The variable path starting at `code[0]` (a name, then `.name`, `.0` and `[...]`
/// accessors): its root, its keys and its length. A method call (`.name(`) ends it before
/// the name.
fn path(code: &str) -> Option<(&str, Vec<Key<'_>>, usize)> {
    let n = ident_len(code);
    if n == 0 {
        return None;
    }
    let root = &code[..n];
    let mut keys = Vec::new();
    let mut i = n;
    loop {
        let rest = &code[i..];
        if let Some(after) = rest.strip_prefix('.') {
            let len = if after.starts_with(|c: char| c.is_ascii_digit()) {
                after.bytes().take_while(u8::is_ascii_digit).count()
            } else {
                ident_len(after)
            };
            if len == 0 || after[len..].trim_start().starts_with('(') {
                break;
            }
            keys.push(Key::Dot(&after[..len]));
            i += 1 + len;
        } else if rest.starts_with('[') {
            let close = matching_bracket(code, i)?;
            keys.push(Key::Index(&code[i + 1..close]));
            i = close + 1;
        } else {
            break;
        }
    }
    Some((root, keys, i))
}

/// The offset of the `]` closing the `[` at `open` (strings and nesting skipped).
fn matching_bracket(code: &str, open: usize) -> Option<usize> {
    let bytes = code.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\'' => i = string_end(code, i)?,
            b'[' => depth += 1,
            b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Whether the code after a path guards it against being undefined.
fn guarded(after: &str) -> bool {
    let word = |s: &str, w: &str| {
        s.strip_prefix(w)
            .is_some_and(|r| !r.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
    };
    let s = after.trim_start();
    if let Some(filter) = s.strip_prefix('|') {
        let f = filter.trim_start();
        return word(f, "default") || word(f, "d");
    }
    if !word(s, "is") {
        return false;
    }
    let t = s[2..].trim_start();
    let t = if word(t, "not") {
        t[3..].trim_start()
    } else {
        t
    };
    word(t, "defined") || word(t, "undefined")
}

/// Copies expression code to `out`, guarded paths rewritten.
fn rewrite_code(code: &str, out: &mut String) {
    let bytes = code.as_bytes();
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'"' || b == b'\'' {
            match string_end(code, i) {
                Some(end) => i = end + 1,
                None => break,
            }
            continue;
        }
        let starts_path = (b.is_ascii_alphabetic() || b == b'_')
            && (i == 0
                || !(is_ident_byte(bytes[i - 1]) || matches!(bytes[i - 1], b'.' | b')' | b']')));
        if starts_path {
            if let Some((root, keys, len)) = path(&code[i..]) {
                if !keys.is_empty() && guarded(&code[i + len..]) {
                    out.push_str(&code[copied..i]);
                    out.push_str(WALK_FUNCTION);
                    out.push('(');
                    out.push_str(root);
                    for key in &keys {
                        out.push_str(", ");
                        match key {
                            Key::Dot(name) if name.as_bytes()[0].is_ascii_digit() => {
                                out.push_str(name)
                            }
                            Key::Dot(name) => {
                                out.push('\'');
                                out.push_str(name);
                                out.push('\'');
                            }
                            Key::Index(expr) => {
                                out.push('(');
                                out.push_str(expr);
                                out.push(')');
                            }
                        }
                    }
                    out.push(')');
                    copied = i + len;
                }
                i += len.max(1);
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&code[copied..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_guarded_deep_paths_are_rewritten() {
        let w = WALK_FUNCTION;
        assert_eq!(
            rewrite("a.b.c is not defined", true),
            format!("{w}(a, 'b', 'c') is not defined")
        );
        assert_eq!(
            rewrite("x[item].y | default('-')", true),
            format!("{w}(x, (item), 'y') | default('-')")
        );
        assert_eq!(
            rewrite("l.0.foo.bar is defined and z", true),
            format!("{w}(l, 0, 'foo', 'bar') is defined and z")
        );
        assert_eq!(
            rewrite("nope.x|d('-')", true),
            format!("{w}(nope, 'x')|d('-')")
        );
        for same in [
            "a is defined",
            "a.b.c",
            "a.b.c == 1",
            "a.b.c.split(',') | default(1)",
            "'a.b.c is defined'",
            "f(x).b.c is defined",
            "a.b.c is defined_x",
            "a.b.c|dict2items",
        ] {
            assert_eq!(rewrite(same, true), same, "{same}");
        }
        assert_eq!(
            rewrite("text a.b.c is defined {{ a.b.c | d(1) }}", false),
            format!("text a.b.c is defined {{{{ {w}(a, 'b', 'c') | d(1) }}}}")
        );
    }

    #[test]
    fn the_walk_stops_at_the_first_missing_key() {
        let env = crate::jinja::Templar::new();
        let vars = JValue::from_serialize(serde_json::json!({
            "d": {"bar": {}}, "l": [{"foo": {}}], "n": null,
        }));
        for (expr, want) in [
            ("d.bar.baz is not defined", true),
            ("d.bar.baz.abc is not defined", true),
            ("d.baz.abc | default('D') == 'D'", true),
            ("l.0.foo is defined", true),
            ("l.1.foo is defined", false),
            ("l.0.foo.bar is undefined", true),
            ("n.x.y is defined", false),
            ("nope.x.y is defined", false),
            ("nope.x | default(1) == 1", true),
            ("d.bar | default(1) == {}", true),
        ] {
            assert_eq!(
                env.eval(expr, &vars).unwrap(),
                serde_json::Value::Bool(want),
                "{expr}"
            );
        }
        assert!(env.eval("d.baz.abc", &vars).is_err());
    }
}
