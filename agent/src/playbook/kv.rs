//! Free-form `k=v` argument strings, split as Ansible's `parse_kv` does.

use serde_json::{Map, Value};

/// Keys that `command`/`shell` take out of free-form text; everything else stays raw
/// (ansible-core's `parse_kv` with `check_raw`).
const RAW_MODULE_KEYS: &[&str] = &[
    "creates",
    "removes",
    "chdir",
    "executable",
    "warn",
    "stdin",
    "stdin_add_newline",
    "strip_empty_ends",
];

/// The quote still open after `token` (Ansible's `_get_quote_state`): a quote character not
/// preceded by a backslash opens, or closes the same one.
fn quote_state(token: &str, mut quote: Option<char>) -> Option<char> {
    let mut prev = None;
    for c in token.chars() {
        if (c == '"' || c == '\'') && prev != Some('\\') {
            match quote {
                Some(q) if q == c => quote = None,
                Some(_) => {}
                None => quote = Some(c),
            }
        }
        prev = Some(c);
    }
    quote
}

/// A Jinja block depth after `token` (Ansible's `_count_jinja2_blocks`).
fn block_depth(token: &str, depth: usize, open: &str, close: &str) -> usize {
    let opened = token.matches(open).count() as i64;
    let closed = token.matches(close).count() as i64;
    if opened == closed {
        return depth;
    }
    (depth as i64 + opened - closed).max(0) as usize
}

/// Splits `text` into words as ansible-core's `split_args` does: on spaces, keeping quoted
/// strings and `{{ }}`/`{% %}`/`{# #}` blocks whole, newlines kept at the end of the word
/// before them, a lone `\` ending a line joining it to the next.
pub fn split_args(text: &str) -> Vec<String> {
    let mut params: Vec<String> = Vec::new();
    let items: Vec<&str> = text.split('\n').collect();
    let mut quote: Option<char> = None;
    let (mut print, mut block, mut comment) = (0usize, 0usize, 0usize);
    for (item_idx, item) in items.iter().enumerate() {
        let mut continuation = false;
        for (idx, token) in item.split(' ').enumerate() {
            if token.is_empty() && idx != 0 {
                if params.is_empty() {
                    params.push(String::new());
                }
                if let Some(last) = params.last_mut() {
                    last.push(' ');
                }
                continue;
            }
            let inside = quote.is_some();
            if token == "\\" && !inside {
                continuation = true;
                continue;
            }
            let was_inside = inside;
            quote = quote_state(token, quote);
            let inside = quote.is_some();
            let in_block = print > 0 || block > 0 || comment > 0;
            let mut appended = false;
            if inside && !was_inside && !in_block {
                params.push(token.to_string());
                appended = true;
            } else if in_block || inside || was_inside {
                let spacer = if idx == 0 && was_inside {
                    ""
                } else if idx > 0 {
                    " "
                } else {
                    ""
                };
                match params.last_mut() {
                    Some(last) => {
                        last.push_str(spacer);
                        last.push_str(token);
                    }
                    None => params.push(token.to_string()),
                }
                appended = true;
            }
            for (depth, open, close) in [
                (&mut print, "{{", "}}"),
                (&mut block, "{%", "%}"),
                (&mut comment, "{#", "#}"),
            ] {
                let before = *depth;
                *depth = block_depth(token, *depth, open, close);
                if *depth != before && !appended {
                    params.push(token.to_string());
                    appended = true;
                }
            }
            let in_block = print > 0 || block > 0 || comment > 0;
            if !in_block && quote.is_none() && !appended && !token.is_empty() {
                params.push(token.to_string());
            }
        }
        if items.len() > 1 && item_idx != items.len() - 1 && !continuation {
            if params.is_empty() {
                params.push(String::new());
            }
            if let Some(last) = params.last_mut() {
                last.push('\n');
            }
        }
    }
    params
}

/// Joins words split by [`split_args`] back, keeping their newlines (`join_args`).
pub fn join_args(words: &[String]) -> String {
    let mut out = String::new();
    for w in words {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// Python's `unicode-escape` decoding of the escapes ansible-core's `_decode_escapes` finds
/// (`\n`, `\t`, `\\`, `\'`, `\"`, `\a`..`\v`, `\xHH`, `\uHHHH`, `\UHHHHHHHH`).
fn decode_escapes(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '\\' || i + 1 >= chars.len() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let hex = |n: usize| -> Option<char> {
            let digits: String = chars.get(i + 2..i + 2 + n)?.iter().collect();
            if digits.len() != n || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            char::from_u32(u32::from_str_radix(&digits, 16).ok()?)
        };
        let (decoded, used) = match chars[i + 1] {
            'n' => (Some('\n'), 2),
            't' => (Some('\t'), 2),
            'r' => (Some('\r'), 2),
            'a' => (Some('\u{7}'), 2),
            'b' => (Some('\u{8}'), 2),
            'f' => (Some('\u{c}'), 2),
            'v' => (Some('\u{b}'), 2),
            '\\' => (Some('\\'), 2),
            '\'' => (Some('\''), 2),
            '"' => (Some('"'), 2),
            'x' => (hex(2), 4),
            'u' => (hex(4), 6),
            'U' => (hex(8), 10),
            _ => (None, 1),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                i += used;
            }
            None => {
                out.push('\\');
                i += 1;
            }
        }
    }
    out
}

/// ansible-core's `unquote`: the text inside matching outer quotes (the closing one not
/// escaped), else the text.
fn unquote(s: &str) -> String {
    let c: Vec<char> = s.chars().collect();
    let quoted = c.len() > 1
        && (c[0] == '"' || c[0] == '\'')
        && c[c.len() - 1] == c[0]
        && c[c.len() - 2] != '\\';
    if quoted {
        c[1..c.len() - 1].iter().collect()
    } else {
        s.to_string()
    }
}

/// Parses `k=v` words into a map as ansible-core's `parse_kv` does; with `check_raw`
/// (command-like modules) only their own keys are taken and the rest is `_raw_params`, the
/// words joined back with their newlines.
///
/// Only for the author's text (a task's free-form arguments, `-e`), read when it is loaded:
/// its values are remembered as trusted (see `jinja::trust`).
pub fn parse_kv(text: &str, check_raw: bool) -> Map<String, Value> {
    let mut map = Map::new();
    let mut raw: Vec<String> = Vec::new();
    for orig in split_args(text) {
        let x = decode_escapes(&orig);
        // the first `=` after the first character that no backslash escapes
        let chars: Vec<char> = x.chars().collect();
        let pos = (1..chars.len()).find(|&p| chars[p] == '=' && chars[p - 1] != '\\');
        let Some(pos) = pos else {
            if x.contains('=') {
                raw.push(x.replace("\\=", "="));
            } else {
                raw.push(orig);
            }
            continue;
        };
        let key: String = chars[..pos].iter().collect();
        let value: String = chars[pos + 1..].iter().collect();
        if check_raw && !RAW_MODULE_KEYS.contains(&key.as_str()) {
            raw.push(orig);
        } else {
            map.insert(key.trim().to_string(), Value::String(unquote(value.trim())));
        }
    }
    if !raw.is_empty() {
        map.insert("_raw_params".into(), Value::String(join_args(&raw)));
    }
    map.values().for_each(crate::jinja::trust::remember_value);
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kv_and_raw() {
        assert_eq!(
            Value::Object(parse_kv("msg='a b' var=x", false)),
            json!({"msg": "a b", "var": "x"})
        );
        assert_eq!(
            Value::Object(parse_kv("echo a=b chdir=/tmp", true)),
            json!({"_raw_params": "echo a=b", "chdir": "/tmp"})
        );
        assert_eq!(
            Value::Object(parse_kv("msg={{ a | default('x y') }}", false)),
            json!({"msg": "{{ a | default('x y') }}"})
        );
    }

    /// Each case as ansible-core 2.19's `parse_kv(text, check_raw=True)` returns it.
    #[test]
    fn multi_line_free_form_keeps_newlines_as_ansible() {
        for (text, want) in [
            (
                "echo this is a \\\n\"multiline echo\" \\\n\"with a new line\nin quotes\" \\\n| python -c x\necho \"second\"\n",
                json!({"_raw_params": "echo this is a \"multiline echo\" \"with a new line\nin quotes\" | python -c x\necho \"second\"\n"}),
            ),
            ("echo a\\\nb  c\n", json!({"_raw_params": "echo a\\\nb  c\n"})),
            ("echo \"x\ny\" \\\n z", json!({"_raw_params": "echo \"x\ny\" z"})),
            (
                "echo one \\\n  two\necho \"x\ny\"\necho a=b\n",
                json!({"_raw_params": "echo one  two\necho \"x\ny\"\necho a=b\n"}),
            ),
            (
                "ls chdir=/tmp creates=\"/a b\"",
                json!({"_raw_params": "ls", "chdir": "/tmp", "creates": "/a b"}),
            ),
            ("echo {{ a }}  {{ b }}", json!({"_raw_params": "echo {{ a }}  {{ b }}"})),
            ("echo a\\=b", json!({"_raw_params": "echo a=b"})),
        ] {
            assert_eq!(Value::Object(parse_kv(text, true)), want, "{text:?}");
        }
    }
}
