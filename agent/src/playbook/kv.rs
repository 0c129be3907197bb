//! Free-form `k=v` argument strings, split as Ansible's `parse_kv` does.

use serde_json::{Map, Value};

/// Keys that `command`/`shell` take out of free-form text; everything else stays raw.
const RAW_MODULE_KEYS: &[&str] = &[
    "creates",
    "removes",
    "chdir",
    "executable",
    "warn",
    "stdin",
    "stdin_add_newline",
    "strip_empty_ends",
    "argv",
    "expand_argument_vars",
];

/// Splits `text` into words, keeping quotes and `{{ }}`/`{% %}` blocks intact.
pub fn split_args(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut jinja_depth = 0usize;
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if quote.is_none() && c == '{' && matches!(next, Some('{') | Some('%') | Some('#')) {
            jinja_depth += 1;
            cur.push(c);
            cur.push(next.unwrap_or('{'));
            i += 2;
            continue;
        }
        if quote.is_none() && jinja_depth > 0 && matches!(c, '}' | '%' | '#') && next == Some('}') {
            jinja_depth -= 1;
            cur.push(c);
            cur.push('}');
            i += 2;
            continue;
        }
        match quote {
            Some(q) if c == q && (i == 0 || chars[i - 1] != '\\') => {
                quote = None;
                cur.push(c);
            }
            None if (c == '"' || c == '\'') && jinja_depth == 0 => {
                quote = Some(c);
                cur.push(c);
            }
            None if c.is_whitespace() && jinja_depth == 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
        i += 1;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn unquote(s: &str) -> String {
    let b = s.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        s[1..s.len() - 1].replace(&format!("\\{}", b[0] as char), &(b[0] as char).to_string())
    } else {
        s.to_string()
    }
}

/// Parses `k=v` words into a map; with `check_raw` (command-like modules) only known keys are
/// taken and the rest joins `_raw_params`.
pub fn parse_kv(text: &str, check_raw: bool) -> Map<String, Value> {
    let mut map = Map::new();
    let mut raw: Vec<String> = Vec::new();
    for word in split_args(text) {
        let kv = word.find('=').and_then(|pos| {
            let key = &word[..pos];
            // a key may also be one whole `{{ expr }}` (set_fact templates its keys)
            let whole_template = key.starts_with("{{") && key.ends_with("}}") && key.len() > 4;
            let valid = whole_template
                || (!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            valid.then(|| (key.to_string(), word[pos + 1..].to_string()))
        });
        match kv {
            Some((k, v)) if !check_raw || RAW_MODULE_KEYS.contains(&k.as_str()) => {
                map.insert(k, Value::String(unquote(&v)));
            }
            _ => raw.push(word),
        }
    }
    if !raw.is_empty() {
        map.insert("_raw_params".into(), Value::String(raw.join(" ")));
    }
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
}
