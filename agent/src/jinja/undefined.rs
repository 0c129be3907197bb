//! Why a template's value is undefined, in Ansible 2.19's words: `'x' is undefined`, `object
//! of type 'dict' has no attribute 'y'`, `object of type 'list' has no attribute 5`.
//!
//! minijinja reports only "undefined value". Dotted paths come from its list of the
//! variables a template reads; paths with subscripts (`x['y']`, `groups['etcd'][0]`,
//! `hostvars[inventory_hostname].ip`) are found in the template's source by [`subscript_paths`].

use minijinja::value::ValueKind;
use minijinja::Value as JValue;

thread_local! {
    /// Why the last lazily templated value read on this thread could not be rendered.
    static LAZY_FAILURE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Records why a value templated when read (`hostvars[h].x`, see `executor::hostvars`) could
/// not be rendered and so reads as undefined. If the template that read it then fails on an
/// undefined value it cannot name, it reports this instead; templates render on the thread
/// that reads, so a thread-local carries it.
pub fn note_lazy_failure(why: String) {
    LAZY_FAILURE.with(|f| *f.borrow_mut() = Some(why));
}

/// Takes (and so forgets) the reason noted by [`note_lazy_failure`], if any.
pub fn take_lazy_failure() -> Option<String> {
    LAZY_FAILURE.with(|f| f.borrow_mut().take())
}

/// A template failed on an undefined value (Ansible's `AnsibleUndefinedVariable`); the text
/// says which, in Ansible's words. Callers that treat undefined values specially (a loop
/// whose items are undefined on a task its `when` skips) find it with `downcast_ref`.
#[derive(Debug, Clone)]
pub struct UndefinedVariable(pub String);

impl std::fmt::Display for UndefinedVariable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UndefinedVariable {}

/// One step of a lookup path.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// `.name`
    Attr(String),
    /// `[key]`: a string or integer literal, or a plain variable's value.
    Index(JValue),
}

/// A lookup path: a variable, then attributes and subscripts.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    /// The variable.
    pub root: String,
    /// What is looked up in it, in order.
    pub steps: Vec<Step>,
}

impl Path {
    /// `a.b.c`, as minijinja lists the variables a template reads.
    pub fn dotted(name: &str) -> Path {
        let mut parts = name.split('.');
        Path {
            root: parts.next().unwrap_or_default().to_string(),
            steps: parts.map(|p| Step::Attr(p.to_string())).collect(),
        }
    }
}

/// Why `path` does not resolve in `vars`, or `None` when every step does.
pub fn first_missing(vars: &JValue, path: &Path) -> Option<String> {
    let mut cur = match vars.get_attr(&path.root) {
        Ok(v) if !v.is_undefined() => v,
        _ => return Some(format!("'{}' is undefined", path.root)),
    };
    for (i, step) in path.steps.iter().enumerate() {
        let (found, key) = match step {
            Step::Attr(name) => (cur.get_attr(name), format!("'{name}'")),
            Step::Index(key) => (cur.get_item(key), subscript_repr(key)),
        };
        match found {
            Ok(v) if !v.is_undefined() => cur = v,
            _ if path.root == "hostvars" && i == 0 => {
                return Some(format!("hostvars[{key}]"));
            }
            _ => {
                let kind = if path.root == "hostvars" && i == 1 {
                    "HostVarsVars"
                } else {
                    super::value::python_type(&cur)
                };
                return Some(format!("object of type '{kind}' has no attribute {key}"));
            }
        }
    }
    None
}

/// A subscript key as the message shows it: a string quoted (`'y'`), else as printed.
fn subscript_repr(key: &JValue) -> String {
    match key.as_str() {
        Some(s) => format!("'{s}'"),
        None => key.to_string(),
    }
}

/// The lookup paths with at least one subscript in the `{{ }}`/`{% %}` blocks of `source`
/// (or in all of it, for a bare expression), whose subscripts are literals or plain
/// variables defined in `vars`. Paths guarded by `| default`, `| d` or an `is defined` test
/// are left out: their undefined value is not an error.
pub fn subscript_paths(source: &str, bare_expression: bool, vars: &JValue) -> Vec<Path> {
    let mut out = Vec::new();
    if bare_expression {
        scan(source, vars, &mut out);
        return out;
    }
    let mut rest = source;
    while let Some(start) = [rest.find("{{"), rest.find("{%")]
        .into_iter()
        .flatten()
        .min()
    {
        let close = if rest[start..].starts_with("{{") {
            "}}"
        } else {
            "%}"
        };
        let body = &rest[start + 2..];
        let end = body.find(close).unwrap_or(body.len());
        scan(&body[..end], vars, &mut out);
        rest = &body[(end + 2).min(body.len())..];
    }
    out
}

/// Finds paths in one expression's text.
fn scan(text: &str, vars: &JValue, out: &mut Vec<Path>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\'' || c == b'"' {
            i = skip_string(bytes, i);
            continue;
        }
        if !is_ident_start(c) {
            i += 1;
            continue;
        }
        let start = i;
        let root_end = ident_end(bytes, i);
        i = root_end;
        // `x.y` after a `.` or a filter/test name is not a variable's path
        let before = text[..start].trim_end();
        if before.ends_with('.') || before.ends_with('|') || ends_with_word(before, "is") {
            continue;
        }
        let root = &text[start..root_end];
        let (steps, end) = steps_after(text, root_end, vars);
        i = end.max(i);
        let Some(steps) = steps else { continue };
        if steps.iter().any(|s| matches!(s, Step::Index(_))) && !guarded(&text[end..]) {
            out.push(Path {
                root: root.to_string(),
                steps,
            });
        }
    }
}

/// The `.name`/`[key]` steps from `at`, and where they end; `None` when a step cannot be
/// followed (a call, a computed key).
fn steps_after(text: &str, mut at: usize, vars: &JValue) -> (Option<Vec<Step>>, usize) {
    let bytes = text.as_bytes();
    let mut steps = Vec::new();
    loop {
        match bytes.get(at) {
            Some(b'.') if bytes.get(at + 1).is_some_and(|c| is_ident_start(*c)) => {
                let end = ident_end(bytes, at + 1);
                steps.push(Step::Attr(text[at + 1..end].to_string()));
                at = end;
            }
            Some(b'[') => {
                let Some(close) = text[at..].find(']').map(|c| at + c) else {
                    return (None, bytes.len());
                };
                let Some(key) = subscript_key(text[at + 1..close].trim(), vars) else {
                    return (None, close + 1);
                };
                steps.push(Step::Index(key));
                at = close + 1;
            }
            Some(b'(') => return (None, at),
            _ => return (Some(steps), at),
        }
    }
}

/// A subscript that can be read without running the template: `'text'`, `"text"`, `5`,
/// `-1`, or a defined plain variable.
fn subscript_key(inner: &str, vars: &JValue) -> Option<JValue> {
    let quoted = |q: char| {
        inner
            .strip_prefix(q)
            .and_then(|s| s.strip_suffix(q))
            .filter(|s| !s.contains(q) && !s.contains('\\'))
    };
    if let Some(s) = quoted('\'').or_else(|| quoted('"')) {
        return Some(JValue::from(s));
    }
    if let Ok(n) = inner.parse::<i64>() {
        return Some(JValue::from(n));
    }
    let plain = inner.bytes().next().is_some_and(is_ident_start)
        && inner
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_');
    if !plain {
        return None;
    }
    let value = vars.get_attr(inner).ok()?;
    matches!(value.kind(), ValueKind::String | ValueKind::Number).then_some(value)
}

/// True when what follows a path makes an undefined value fine: `| default(...)`, `| d(...)`,
/// `is defined`, `is undefined`, `is not defined`.
fn guarded(after: &str) -> bool {
    let after = after.trim_start();
    if let Some(filter) = after.strip_prefix('|') {
        let name: String = filter
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        return name == "default" || name == "d";
    }
    let Some(test) = after.strip_prefix("is") else {
        return false;
    };
    let words: Vec<&str> = test.split_whitespace().take(2).collect();
    matches!(
        words[..],
        ["defined", ..] | ["undefined", ..] | ["not", "defined"] | ["not", "undefined"]
    )
}

fn skip_string(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn ident_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
        i += 1;
    }
    i
}

fn ends_with_word(text: &str, word: &str) -> bool {
    text.strip_suffix(word)
        .is_some_and(|before| !before.ends_with(|c: char| c.is_alphanumeric() || c == '_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> JValue {
        JValue::from_serialize(json!({
            "peers": {"n1": "a"},
            "lst": [1, 2],
            "host": "n1",
            "nested": {"a": {"b": 1}},
        }))
    }

    fn why(source: &str) -> Vec<String> {
        let v = vars();
        subscript_paths(source, false, &v)
            .iter()
            .filter_map(|p| first_missing(&v, p))
            .collect()
    }

    #[test]
    fn subscripts_are_followed_with_literal_and_variable_keys() {
        assert_eq!(
            why("{{ peers['n9'] }}"),
            ["object of type 'dict' has no attribute 'n9'"]
        );
        assert_eq!(
            why("x {{ lst[5] }} y"),
            ["object of type 'list' has no attribute 5"]
        );
        assert_eq!(
            why("{{ nested[\"a\"].c }}"),
            ["object of type 'dict' has no attribute 'c'"]
        );
        assert_eq!(
            why("{{ peers[host] ~ lst[-1] ~ nested['a']['b'] }}"),
            [""; 0]
        );
        assert_eq!(why("{{ nope['x'] }}"), ["'nope' is undefined"]);
    }

    #[test]
    fn guarded_strings_calls_and_filters_are_left_out() {
        assert!(why("{{ peers['n9'] | default('d') }}").is_empty());
        assert!(why("{{ peers['n9'] |d(1) }}").is_empty());
        assert!(why("{% if peers['n9'] is defined %}{% endif %}").is_empty());
        assert!(why("{% if peers['n9'] is not defined %}{% endif %}").is_empty());
        assert!(why("{{ 'peers[\"n9\"]' }}").is_empty());
        assert!(why("{{ lookup('env', 'X')['n9'] }}").is_empty());
        assert!(why("{{ peers | json_query('x')[0] }}").is_empty());
        assert!(why("{{ peers[other] }}").is_empty());
        assert!(why("text peers['n9'] outside a block").is_empty());
    }

    #[test]
    fn hostvars_has_its_own_words() {
        let v = JValue::from_serialize(json!({"hostvars": {"n1": {"ip": "x"}}}));
        let missing = |p: &str| first_missing(&v, &subscript_paths(p, true, &v)[0]);
        assert_eq!(
            missing("hostvars['n9'].ip").as_deref(),
            Some("hostvars['n9']")
        );
        assert_eq!(
            missing("hostvars['n1']['port']").as_deref(),
            Some("object of type 'HostVarsVars' has no attribute 'port'")
        );
    }
}
