//! Template files, as the `template` module and `lookup('template')` render them: Ansible's
//! overrides (the task's options, then a `#jinja2:` first line in the file) and
//! `{% include %}`, `{% import %}`, `{% from %}` and `{% extends %}` found on the template
//! search path (Jinja's `FileSystemLoader`).

use super::errors::describe;
use anyhow::{anyhow, Result};
use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, Error, ErrorKind, Value as JValue};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The first line that sets a template's overrides (`#jinja2: trim_blocks: False, ...`).
const HEADER: &str = "#jinja2:";

/// How a template file is parsed and its output written: ansible-core's `TemplateOverrides`,
/// defaults included (`trim_blocks` on, unlike Jinja's own default).
#[derive(Debug, Clone, PartialEq)]
pub struct Overrides {
    /// Opens a block tag (`{%`).
    pub block_start_string: String,
    /// Closes a block tag (`%}`).
    pub block_end_string: String,
    /// Opens an expression (`{{`).
    pub variable_start_string: String,
    /// Closes an expression (`}}`).
    pub variable_end_string: String,
    /// Opens a comment (`{#`).
    pub comment_start_string: String,
    /// Closes a comment (`#}`).
    pub comment_end_string: String,
    /// A line starting with it is a block tag.
    pub line_statement_prefix: Option<String>,
    /// A line starting with it is a comment.
    pub line_comment_prefix: Option<String>,
    /// The newline right after a block tag goes.
    pub trim_blocks: bool,
    /// Spaces and tabs before a block tag on its line go.
    pub lstrip_blocks: bool,
    /// The newline the output's lines end with (`\n`, `\r\n` or `\r`).
    pub newline_sequence: String,
}

impl Default for Overrides {
    fn default() -> Self {
        Overrides {
            block_start_string: "{%".into(),
            block_end_string: "%}".into(),
            variable_start_string: "{{".into(),
            variable_end_string: "}}".into(),
            comment_start_string: "{#".into(),
            comment_end_string: "#}".into(),
            line_statement_prefix: None,
            line_comment_prefix: None,
            trim_blocks: true,
            lstrip_blocks: false,
            newline_sequence: "\n".into(),
        }
    }
}

/// The names [`Overrides::set`] takes (also `keep_trailing_newline`, accepted when true: the
/// file's final newline is always kept, as the template module keeps it).
pub const OVERRIDE_NAMES: [&str; 12] = [
    "block_start_string",
    "block_end_string",
    "variable_start_string",
    "variable_end_string",
    "comment_start_string",
    "comment_end_string",
    "line_statement_prefix",
    "line_comment_prefix",
    "trim_blocks",
    "lstrip_blocks",
    "newline_sequence",
    "keep_trailing_newline",
];

impl Overrides {
    /// Sets one override by its name; a value of the wrong type or an unknown name is an error.
    pub fn set(&mut self, name: &str, value: &Value) -> Result<()> {
        let text = |v: &Value| match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(anyhow!(
                "{name} is expected to be a string, but got {other}"
            )),
        };
        let flag = |v: &Value| match v {
            Value::Bool(b) => Ok(*b),
            Value::String(s) if super::value::boolean_text(s) => Ok(true),
            Value::String(s) if ["no", "n", "false", "off", "0", "f"].contains(&s.as_str()) => {
                Ok(false)
            }
            Value::Number(n) => Ok(n.as_f64() != Some(0.0)),
            other => Err(anyhow!("{name}: {other} is not a valid boolean")),
        };
        match name {
            "block_start_string" => self.block_start_string = text(value)?,
            "block_end_string" => self.block_end_string = text(value)?,
            "variable_start_string" => self.variable_start_string = text(value)?,
            "variable_end_string" => self.variable_end_string = text(value)?,
            "comment_start_string" => self.comment_start_string = text(value)?,
            "comment_end_string" => self.comment_end_string = text(value)?,
            "line_statement_prefix" => {
                self.line_statement_prefix = (!value.is_null()).then(|| text(value)).transpose()?
            }
            "line_comment_prefix" => {
                self.line_comment_prefix = (!value.is_null()).then(|| text(value)).transpose()?
            }
            "trim_blocks" => self.trim_blocks = flag(value)?,
            "lstrip_blocks" => self.lstrip_blocks = flag(value)?,
            "newline_sequence" => {
                let seq = text(value)?;
                // the escaped spellings a playbook writes in single quotes
                self.newline_sequence = match seq.as_str() {
                    "\\n" => "\n".into(),
                    "\\r" => "\r".into(),
                    "\\r\\n" => "\r\n".into(),
                    "\n" | "\r" | "\r\n" => seq,
                    _ => {
                        return Err(anyhow!(
                            "newline_sequence needs to be one of: \\n, \\r or \\r\\n"
                        ))
                    }
                }
            }
            "keep_trailing_newline" if flag(value)? => {}
            "keep_trailing_newline" => {
                return Err(anyhow!(
                    "keep_trailing_newline: False is not supported by etcd-agent (a template \
                     file keeps its final newline)"
                ))
            }
            other => return Err(anyhow!("Invalid override key {}.", py_repr(other))),
        }
        Ok(())
    }

    /// The text after a `#jinja2:` first line and these overrides with that line's applied
    /// (ansible-core's rule: comma-separated `key: python-literal` pairs); the text as given
    /// when it has no such line.
    pub fn with_header<'a>(&self, text: &'a str) -> Result<(&'a str, Overrides)> {
        let Some(rest) = text.strip_prefix(HEADER) else {
            return Ok((text, self.clone()));
        };
        let Some(eol) = rest.find('\n') else {
            return Err(syntax(format!(
                "Missing newline after {} override.",
                py_repr(HEADER)
            )));
        };
        let mut out = self.clone();
        for pair in rest[..eol].split(',') {
            if pair.trim().is_empty() {
                return Err(syntax(format!(
                    "Empty {} override pair not allowed.",
                    py_repr(HEADER)
                )));
            }
            let Some((key, value)) = pair.split_once(':') else {
                return Err(syntax(format!(
                    "Missing key-value separator `:` in {} override pair {}.",
                    py_repr(HEADER),
                    py_repr(pair)
                )));
            };
            let key = key.trim();
            if !OVERRIDE_NAMES.contains(&key) {
                return Err(syntax(format!(
                    "Invalid {} override key {}.",
                    py_repr(HEADER),
                    py_repr(key)
                )));
            }
            let value = python_literal(value.trim()).map_err(|e| syntax(format!("{e:#}")))?;
            out.set(key, &value).map_err(|e| syntax(format!("{e:#}")))?;
        }
        Ok((&rest[eol + 1..], out))
    }

    /// Whether the delimiters are Jinja's own (no custom syntax).
    pub(super) fn default_syntax(&self) -> bool {
        let d = Overrides::default();
        (
            &self.block_start_string,
            &self.block_end_string,
            &self.variable_start_string,
            &self.variable_end_string,
            &self.comment_start_string,
            &self.comment_end_string,
        ) == (
            &d.block_start_string,
            &d.block_end_string,
            &d.variable_start_string,
            &d.variable_end_string,
            &d.comment_start_string,
            &d.comment_end_string,
        ) && self.line_statement_prefix.is_none()
            && self.line_comment_prefix.is_none()
    }

    /// The minijinja syntax for these delimiters (ansible-core's check first: the three
    /// start strings differ).
    fn syntax(&self) -> Result<SyntaxConfig> {
        let (b, v, c) = (
            &self.block_start_string,
            &self.variable_start_string,
            &self.comment_start_string,
        );
        if b == v || v == c || c == b {
            return Err(anyhow!(
                "Block, variable and comment start strings must be different."
            ));
        }
        let mut builder = SyntaxConfig::builder();
        builder
            .block_delimiters(b.clone(), self.block_end_string.clone())
            .variable_delimiters(v.clone(), self.variable_end_string.clone())
            .comment_delimiters(c.clone(), self.comment_end_string.clone());
        if let Some(p) = &self.line_statement_prefix {
            builder.line_statement_prefix(p.clone());
        }
        if let Some(p) = &self.line_comment_prefix {
            builder.line_comment_prefix(p.clone());
        }
        builder
            .build()
            .map_err(|e| anyhow!("invalid template delimiters: {e}"))
    }
}

/// A template that cannot be parsed, in ansible-core's words ("Syntax error in template: ...").
#[derive(Debug, thiserror::Error)]
#[error("Syntax error in template: {0}")]
pub struct SyntaxError(pub String);

fn syntax(msg: String) -> anyhow::Error {
    SyntaxError(msg).into()
}

/// A string as Python's `repr` writes it (single quotes unless it holds one and no double).
fn py_repr(s: &str) -> String {
    if s.contains('\'') && !s.contains('"') {
        format!("\"{}\"", s.replace('\\', "\\\\"))
    } else {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// A Python literal as `ast.literal_eval` reads the simple ones a `#jinja2:` line holds:
/// quoted text, `True`, `False`, `None`, integers.
fn python_literal(text: &str) -> Result<Value> {
    match text {
        "True" => return Ok(Value::Bool(true)),
        "False" => return Ok(Value::Bool(false)),
        "None" => return Ok(Value::Null),
        _ => {}
    }
    if let Ok(n) = text.parse::<i64>() {
        return Ok(n.into());
    }
    let quote = text.chars().next().filter(|q| *q == '\'' || *q == '"');
    if let Some(q) = quote.filter(|q| text.len() >= 2 && text.ends_with(*q)) {
        let body = &text[1..text.len() - 1];
        let mut out = String::new();
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some('t') => out.push('\t'),
                    Some(other) => out.push(other),
                    None => return Err(anyhow!("malformed string literal {text}")),
                },
                c if c == q => return Err(anyhow!("malformed string literal {text}")),
                c => out.push(c),
            }
        }
        return Ok(Value::String(out));
    }
    Err(anyhow!("malformed node or string: {text}"))
}

/// The directories a template file's includes are searched in, as ansible-core's template
/// action builds them: each of `search_path` (the task's `ansible_search_path`, then the
/// others given) as its `templates/` subdirectory, then itself.
pub fn include_path(search_path: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in search_path {
        for c in [p.join("templates"), p.clone()] {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    out
}

/// A template name as Jinja's `FileSystemLoader` splits it: `/`-separated pieces, empty and
/// `.` ones dropped; `None` when one is `..` (never found).
fn name_pieces(name: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for piece in name.split('/') {
        match piece {
            "" | "." => {}
            ".." => return None,
            p => out.push(p),
        }
    }
    Some(out)
}

/// The text of template `name` in the first directory of `dirs` that has it.
fn load(dirs: &[PathBuf], name: &str) -> Result<Option<String>, Error> {
    let Some(rel) = name_pieces(name) else {
        return Ok(None);
    };
    for dir in dirs {
        let path: PathBuf = Path::new(dir).join(&rel);
        if path.is_file() {
            return std::fs::read_to_string(&path).map(Some).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    format!("cannot read template {}: {e}", path.display()),
                )
            });
        }
    }
    Ok(None)
}

/// A copy of `base` set up for a template file: `overrides`' whitespace rules and delimiters,
/// includes found in `dirs`. As in ansible-core, an included template's final newline goes
/// (Jinja's `keep_trailing_newline=False`); the file's own come back after rendering.
pub(super) fn file_env<'e>(
    base: &Environment<'e>,
    overrides: &Overrides,
    dirs: Vec<PathBuf>,
) -> Result<Environment<'e>> {
    let mut env = base.clone();
    env.set_trim_blocks(overrides.trim_blocks);
    env.set_lstrip_blocks(overrides.lstrip_blocks);
    env.set_keep_trailing_newline(false);
    if !overrides.default_syntax() {
        env.set_syntax(overrides.syntax()?);
    }
    env.set_loader(move |name| Ok(load(&dirs, name)?.map(|t| normalize_newlines(&t))));
    Ok(env)
}

/// `body` rendered in `env` as ansible-core renders a template's text: Jinja drops its final
/// newline, then the result gets as many trailing newlines as `body` had.
pub(super) fn render_text(env: &Environment<'_>, body: &str, vars: &JValue) -> Result<String> {
    let tmpl = env
        .template_from_str(body)
        .map_err(|e| syntax(describe(&e)))?;
    let mut out = tmpl.render(vars).map_err(|e| anyhow!(describe(&e)))?;
    let want = body.len() - body.trim_end_matches('\n').len();
    let have = out.len() - out.trim_end_matches('\n').len();
    for _ in have..want {
        out.push('\n');
    }
    Ok(out)
}

/// The output's newlines as the newline sequence.
pub(super) fn with_newlines(text: String, overrides: &Overrides) -> String {
    if overrides.newline_sequence == "\n" {
        text
    } else {
        text.replace('\n', &overrides.newline_sequence)
    }
}

/// Renders the text of a template file in (a copy of) `env` with `vars`, as
/// [`super::Templar::render_file`] does, without the templar's own rules for expressions (for
/// `lookup('template')`, which runs inside a template). As ansible-core's lookup, a file that
/// is one `{{ expression }}` (and its final newline) gives the expression's value, not text.
pub fn render_in(
    env: &Environment<'_>,
    text: &str,
    vars: &JValue,
    overrides: &Overrides,
    dirs: Vec<PathBuf>,
) -> Result<Value> {
    let (body, overrides) = overrides.with_header(text)?;
    let body = normalize_newlines(body);
    let env = file_env(env, &overrides, dirs)?;
    if overrides.default_syntax() {
        let one = body.strip_suffix('\n').unwrap_or(&body);
        if let Some(expr) = super::value::single_expression(one).filter(|_| one.trim() == one) {
            let value = env
                .compile_expression(expr)
                .and_then(|e| e.eval(vars))
                .map_err(|e| anyhow!(describe(&e)))?;
            if !value.is_undefined() {
                return super::filters::to_data(&value).map_err(|e| anyhow!(describe(&e)));
            }
        }
    }
    Ok(Value::String(with_newlines(
        render_text(&env, &body, vars)?,
        &overrides,
    )))
}

/// `\r\n` and `\r` as `\n`, as Jinja's lexer reads them.
pub(super) fn normalize_newlines(text: &str) -> String {
    if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jinja::Templar;

    fn render(text: &str, overrides: &Overrides, dirs: Vec<PathBuf>) -> Result<String> {
        let vars = JValue::from_serialize(serde_json::json!({"a": "x", "items": [1, 2]}));
        Templar::new().render_file(text, &vars, overrides, dirs)
    }

    #[test]
    fn header_overrides_parse_as_ansible_core_does() {
        let (rest, o) = Overrides::default()
            .with_header("#jinja2:variable_start_string:'<<' , variable_end_string:'>>'\nbody")
            .unwrap();
        assert_eq!(rest, "body");
        assert_eq!(o.variable_start_string, "<<");
        assert_eq!(o.variable_end_string, ">>");
        let (_, o) = Overrides::default()
            .with_header("#jinja2: trim_blocks: False, line_statement_prefix:\":\"\n")
            .unwrap();
        assert!(!o.trim_blocks);
        assert_eq!(o.line_statement_prefix.as_deref(), Some(":"));
        let err = Overrides::default()
            .with_header("#jinja2: lstrip_blocks=True\n")
            .unwrap_err();
        assert!(
            err.to_string().contains("Missing key-value separator"),
            "{err}"
        );
        assert!(Overrides::default().with_header("#jinja2: x: 1\n").is_err());
        assert!(Overrides::default()
            .with_header("#jinja2: trim_blocks: False")
            .is_err());
    }

    #[test]
    fn options_change_parsing_and_output() {
        let mut o = Overrides::default();
        o.set("variable_start_string", &"<<".into()).unwrap();
        o.set("variable_end_string", &">>".into()).unwrap();
        assert_eq!(
            render("<< a >> {{ a }}\n", &o, vec![]).unwrap(),
            "x {{ a }}\n"
        );
        let mut o = Overrides::default();
        o.set("newline_sequence", &"\\r\\n".into()).unwrap();
        assert_eq!(
            render("{{ a }}\r\n{{ a }}\n", &o, vec![]).unwrap(),
            "x\r\nx\r\n"
        );
        let mut o = Overrides::default();
        o.set("trim_blocks", &false.into()).unwrap();
        assert_eq!(
            render("{% for i in items %}\n{{ i }}{% endfor %}\n", &o, vec![]).unwrap(),
            "\n1\n2\n"
        );
        assert!(o.set("newline_sequence", &"x".into()).is_err());
        o.set("block_start_string", &"{{".into()).unwrap();
        assert!(render("x", &o, vec![]).is_err());
    }

    #[test]
    fn errors_never_show_the_variables() {
        let vars = JValue::from_serialize(serde_json::json!({"password": "hunter2"}));
        for text in [
            "{{ password }}{% include 'missing.j2' %}",
            "{{ password }}{{ nope.x }}",
            "{% set x = password %}{{ x | no_such_filter }}",
        ] {
            let dirs = vec![std::env::temp_dir().join("etcd-agent-ft-none")];
            let err = Templar::new()
                .render_file(text, &vars, &Overrides::default(), dirs.clone())
                .unwrap_err();
            assert!(!format!("{err:#}").contains("hunter2"), "{err:#}");
            let env = minijinja::Environment::new();
            let err = render_in(&env, text, &vars, &Overrides::default(), dirs).unwrap_err();
            assert!(!format!("{err:#}").contains("hunter2"), "{err:#}");
        }
    }

    #[test]
    fn includes_are_found_on_the_search_path_and_never_above_it() {
        // removed when dropped, also when an assertion fails
        let tmp = tempfile::Builder::new()
            .prefix("etcd-agent-ft-")
            .tempdir()
            .unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::create_dir_all(dir.join("templates/sub")).unwrap();
        std::fs::write(dir.join("templates/sub/inc.j2"), "[{{ a }}]\n").unwrap();
        std::fs::write(dir.join("outside.j2"), "no\n").unwrap();
        let dirs = include_path(std::slice::from_ref(&dir));
        let o = Overrides::default();
        // as in ansible-core, an included file's final newline goes
        assert_eq!(
            render("{% include 'sub/inc.j2' %}end\n", &o, dirs.clone()).unwrap(),
            "[x]end\n"
        );
        let err = render(
            "{% include 'templates/../../outside.j2' %}",
            &o,
            vec![dir.join("templates")],
        )
        .unwrap_err();
        assert!(err.to_string().contains("not found"), "{err}");
    }
}
