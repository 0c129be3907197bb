//! Template text written as a string constant in a lookup's arguments.
//!
//! ansible-core 2.19 trusts a string constant of a template only where it is an argument to
//! `lookup`/`query`/`q` (not the lookup's name): such a constant holding a template is
//! rendered before the lookup runs (`lookup('pipe', 'echo {{ name }}')`), to its native
//! value (`lookup('list', ['{{ 1 }}'])` is `[1]`). Elsewhere a constant is plain text. The
//! agent rewrites the source: each such constant becomes the literal of what it renders to,
//! in the template's variables.

use serde_json::Value;
use std::borrow::Cow;

/// `source` (a template, or an expression when `expression`) with the string constants of
/// its lookups' arguments replaced by the literals `render` gives for their text; unchanged
/// (borrowed) when there is none.
pub fn rewrite<'a>(
    source: &'a str,
    expression: bool,
    render: &mut dyn FnMut(&str) -> anyhow::Result<Value>,
) -> anyhow::Result<Cow<'a, str>> {
    if !has_lookup_call(source) || !source.contains("{{") {
        return Ok(Cow::Borrowed(source));
    }
    let mut out = String::with_capacity(source.len());
    each_code(source, expression, &mut out, &mut |code, out| {
        rewrite_code(code, out, render)
    })?;
    Ok(Cow::Owned(out))
}

/// Copies `source` to `out`, its expression code through `code` (which copies or rewrites
/// it): all of it when `expression`, else the inside of each `{{ }}` and `{% %}` block.
pub(super) fn each_code<E>(
    source: &str,
    expression: bool,
    out: &mut String,
    code: &mut dyn FnMut(&str, &mut String) -> Result<(), E>,
) -> Result<(), E> {
    if expression {
        return code(source, out);
    }
    let mut rest = source;
    while let Some(start) = find_block_start(rest) {
        out.push_str(&rest[..start + 2]);
        let close = if rest[start..].starts_with("{{") {
            "}}"
        } else {
            "%}"
        };
        let inside = &rest[start + 2..];
        let end = code_end(inside, close).unwrap_or(inside.len());
        code(&inside[..end], out)?;
        rest = &inside[end..];
    }
    out.push_str(rest);
    Ok(())
}

/// Whether `source` may call a lookup.
fn has_lookup_call(source: &str) -> bool {
    source.contains("lookup(") || source.contains("query(") || source.contains("q(")
}

fn find_block_start(s: &str) -> Option<usize> {
    match (s.find("{{"), s.find("{%")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The offset in `code` of `close` outside string constants.
fn code_end(code: &str, close: &str) -> Option<usize> {
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\'' => i = string_end(code, i)?,
            _ if code[i..].starts_with(close) => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The offset of the quote that closes the string constant opening at `start`.
pub(super) fn string_end(code: &str, start: usize) -> Option<usize> {
    let bytes = code.as_bytes();
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            q if q == quote => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Copies expression code to `out`, rewriting the constants of lookup calls' arguments.
fn rewrite_code(
    code: &str,
    out: &mut String,
    render: &mut dyn FnMut(&str) -> anyhow::Result<Value>,
) -> anyhow::Result<()> {
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
        let word_start = i == 0
            || !(bytes[i - 1].is_ascii_alphanumeric() || matches!(bytes[i - 1], b'_' | b'.'));
        let name = ["lookup", "query", "q"]
            .into_iter()
            .find(|n| word_start && code[i..].starts_with(n));
        if let Some(name) = name {
            let after = i + name.len();
            let open = after + (code[after..].len() - code[after..].trim_start().len());
            if code[open..].starts_with('(') {
                if let Some(close) = matching_paren(code, open) {
                    // the arguments after the first (the lookup's name)
                    let args = &code[open + 1..close];
                    if let Some(comma) = top_level_comma(args) {
                        out.push_str(&code[copied..open + 1 + comma]);
                        rewrite_constants(&args[comma..], out, render)?;
                        out.push(')');
                        copied = close + 1;
                    }
                    i = close + 1;
                    continue;
                }
            }
        }
        i += 1;
    }
    out.push_str(&code[copied..]);
    Ok(())
}

/// The offset of the `)` that closes the `(` at `open`.
fn matching_paren(code: &str, open: usize) -> Option<usize> {
    let bytes = code.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\'' => i = string_end(code, i)?,
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return (bytes[i] == b')').then_some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The offset of the first comma of `args` outside brackets and strings.
fn top_level_comma(args: &str) -> Option<usize> {
    let bytes = args.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\'' => i = string_end(args, i)?,
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Copies `args` to `out`, each string constant holding a template replaced by the literal of
/// what it renders to.
fn rewrite_constants(
    args: &str,
    out: &mut String,
    render: &mut dyn FnMut(&str) -> anyhow::Result<Value>,
) -> anyhow::Result<()> {
    let mut i = 0;
    let mut copied = 0;
    let bytes = args.as_bytes();
    while i < bytes.len() {
        if bytes[i] == b'"' || bytes[i] == b'\'' {
            let Some(end) = string_end(args, i) else {
                break;
            };
            let body = &args[i + 1..end];
            if super::value::is_template(body) && !body.contains('\\') {
                out.push_str(&args[copied..i]);
                match super::value::single_expression(body) {
                    // one expression: itself, evaluated in place (native value, an undefined
                    // one stays undefined for the lookup to see)
                    Some(expr) => {
                        out.push('(');
                        out.push_str(expr);
                        out.push(')');
                    }
                    None => out.push_str(&literal(&render(body)?)),
                }
                copied = end + 1;
            }
            i = end + 1;
            continue;
        }
        i += 1;
    }
    out.push_str(&args[copied..]);
    Ok(())
}

/// A value as a Jinja literal.
fn literal(v: &Value) -> String {
    match v {
        Value::Null => "none".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(literal).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", literal(&Value::String(k.clone())), literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(body: &str) -> anyhow::Result<Value> {
        Ok(match body {
            "{{ 1 }}" => Value::from(1),
            _ => Value::String(format!("<{body}>")),
        })
    }

    fn go(src: &str, expression: bool) -> String {
        rewrite(src, expression, &mut fake).unwrap().into_owned()
    }

    #[test]
    fn constants_of_lookup_arguments_are_rendered() {
        assert_eq!(
            go("{{ lookup('pipe', 'echo {{ x }}') }}", false),
            "{{ lookup('pipe', \"<echo {{ x }}>\") }}"
        );
        assert_eq!(
            go("lookup('list', ['{{ 1 }}'])", true),
            "lookup('list', [(1)])"
        );
        assert_eq!(
            go("q('dict', {'key': '{{ x.y }}'}) == 1", true),
            "q('dict', {'key': (x.y)}) == 1"
        );
    }

    #[test]
    fn names_and_other_constants_are_kept() {
        for (src, expression) in [
            ("{{ lookup('{{ \"pipe\" }}') }}", false),
            ("{{ \"{{ 1 }}\" }} lookup('a', '{{ b }}')", false),
            ("foo('a', '{{ b }}')", true),
            ("x.lookup('a', '{{ b }}')", true),
        ] {
            assert_eq!(go(src, expression), src);
        }
    }
}
