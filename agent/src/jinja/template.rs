//! The Jinja environment (minijinja): strict undefined variables, Ansible's native result types,
//! and a few common Ansible filters and tests.

use super::errors::describe;
use super::file_template;
use super::undefined::{self, Path};
use super::value::{is_template, python_truth, single_expression};
use anyhow::{anyhow, Result};
use minijinja::value::{Rest, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior, Value as JValue};
use serde_json::Value;

/// Renders templates and evaluates conditions against a variable map (cheap to clone).
#[derive(Clone)]
pub struct Templar {
    env: std::sync::Arc<Environment<'static>>,
    /// `ALLOW_BROKEN_CONDITIONALS`: a condition may give a value that is not a boolean (its
    /// truth is used), as before ansible-core 2.19.
    allow_broken_conditionals: bool,
}

impl Default for Templar {
    fn default() -> Self {
        Self::new()
    }
}

/// A condition's template gave text that is not trusted to be evaluated as an expression
/// (ansible-core 2.19's data tagging refuses it the same way).
#[derive(Debug, thiserror::Error)]
#[error("Encountered untrusted template or expression.")]
pub struct Untrusted;

/// Whether the text a condition's or `var`'s template gave may be evaluated as an expression:
/// the template reads a variable (`name`, `name.key`, `name[0]`, `name['key']`), which keeps
/// its value's trust in ansible-core, and the text is the author's (see [`super::trust`]);
/// never an `!unsafe` value, never text a template made (a constant, a concatenation).
fn trusted_text(expr: &str, text: &str, vars: &JValue) -> bool {
    let root = expr.trim().split(['.', '[']).next().unwrap_or_default();
    let made = vars
        .get_attr(MADE_VARS_KEY)
        .and_then(|m| m.get_attr(root))
        .is_ok_and(|v| v.is_true());
    is_variable_path(expr)
        && !made
        && (super::trust::is_trusted(text) || super::trust::is_trusted(text.trim()))
}

/// Whether `text` is one `{{ expr }}` reading a variable (`name`, `name.key`, `name[0]`):
/// its value keeps that variable's trust.
pub fn reads_a_variable(text: &str) -> bool {
    single_expression(text.trim()).is_some_and(is_variable_path)
}

/// Context key: variables whose value a template made (a loop item written as a template
/// other than one variable): their text is never trusted as an expression.
pub const MADE_VARS_KEY: &str = "__etcd_agent_made_vars";

/// Whether `expr` only reads a variable: a name, then `.key`, `[number]`, `['key']` or
/// `[name]` accesses.
fn is_variable_path(expr: &str) -> bool {
    let expr = expr.trim();
    let ident_len = |s: &str| {
        s.char_indices()
            .take_while(|(i, c)| {
                c.is_ascii_alphabetic() || *c == '_' || (*i > 0 && c.is_ascii_digit())
            })
            .count()
    };
    let n = ident_len(expr);
    if n == 0 {
        return false;
    }
    let mut rest = &expr[n..];
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let n = ident_len(after);
            if n == 0 {
                return false;
            }
            rest = &after[n..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let Some(close) = after.find(']') else {
                return false;
            };
            let key = after[..close].trim();
            let quoted = (key.len() >= 2)
                && ((key.starts_with('\'') && key.ends_with('\''))
                    || (key.starts_with('"') && key.ends_with('"')))
                && !key[1..key.len() - 1].contains(['\'', '"', '\\']);
            let number = !key.is_empty()
                && key
                    .trim_start_matches('-')
                    .bytes()
                    .all(|b| b.is_ascii_digit());
            if !(quoted || number || (ident_len(key) == key.len() && !key.is_empty())) {
                return false;
            }
            rest = &after[close + 1..];
        } else {
            return false;
        }
    }
    true
}

/// Whether a condition looks like a template and nothing else (ansible-core's
/// `is_possibly_all_template`): it starts with `{{`, `{%` or `{#` and ends with `}}`, `%}` or
/// `#}`.
fn is_possibly_all_template(s: &str) -> bool {
    ["{{", "{%", "{#"].iter().any(|m| s.starts_with(m))
        && ["}}", "%}", "#}"].iter().any(|m| s.ends_with(m))
}

/// A condition given as data (not written by the author where it is evaluated): text that is
/// not trusted (see [`super::trust`]), or any text when `unsafe_`, becomes an `!unsafe` value,
/// which a condition refuses as an untrusted expression. Anything else is kept.
pub fn untrusted_as_unsafe(cond: Value, unsafe_: bool) -> Value {
    match cond {
        Value::String(text)
            if unsafe_
                || !(super::trust::is_trusted(&text) || super::trust::is_trusted(text.trim())) =>
        {
            if super::value::unsafe_text(&text).is_some() {
                Value::String(text)
            } else {
                Value::String(super::value::unsafe_value(&text))
            }
        }
        other => other,
    }
}

/// ansible-core's (private) `ansible._protomatter.tagged_with` test, for the one tag the
/// agent keeps: `TrustedAsTemplate`, text the author wrote (see [`super::trust`]); a container
/// or a number never carries it. Other tags are refused.
fn tagged_with(v: JValue, tag: &str) -> Result<bool, Error> {
    if tag != "TrustedAsTemplate" {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("tag {tag:?} is not kept by etcd-agent (only TrustedAsTemplate is)"),
        ));
    }
    Ok(v.as_str()
        .is_some_and(|s| super::value::unsafe_text(s).is_none() && super::trust::is_trusted(s)))
}

/// True when `expr` is a bare variable name.
fn is_name(expr: &str) -> bool {
    let mut chars = expr.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Context key of the variables whose own template failed, with why: they are left undefined,
/// and a template that needs one fails with its error instead of "'name' is undefined".
pub const FAILED_VARS_KEY: &str = "__etcd_agent_failed_vars";

/// Context key: per trusted variable whose value is a list, the positions of its `!unsafe`
/// items (their rendered value is plain text; a condition must still refuse them).
pub const UNSAFE_ITEMS_KEY: &str = "__etcd_agent_unsafe_items";

/// Context key: per variable whose value is a list written with templates in it, that list
/// as written (its items unrendered).
pub const TEMPLATE_LISTS_KEY: &str = "__etcd_agent_template_lists";

impl Templar {
    /// A strict environment with Ansible's filters and tests registered.
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Ansible's templar: `trim_blocks`; the final newline of the source is dropped
        // (`keep_trailing_newline=False`) and `render_str` pads trailing newlines back.
        env.set_keep_trailing_newline(true);
        env.set_trim_blocks(true);
        env.add_filter("default", default);
        env.add_filter("d", default);
        env.add_test("defined", |v: JValue| !guarded_undefined(&v));
        env.add_test("undefined", |v: JValue| guarded_undefined(&v));

        env.add_filter("bool", to_bool);
        env.add_filter("int", to_int);
        env.add_filter("float", to_float);
        env.add_filter("string", to_string);
        env.add_filter("to_nice_json", super::filters::to_nice_json);
        env.add_filter("from_json", from_json);
        env.add_filter("mandatory", mandatory);
        env.add_filter("ternary", ternary);
        env.add_filter("regex_search", regex_search);
        env.add_filter("regex_replace", regex_replace);
        env.add_filter("basename", basename);
        env.add_filter("expanduser", expanduser);
        env.add_filter("dirname", dirname);
        env.add_test("succeeded", |v: JValue| !result_flag(&v, "failed"));
        env.add_test("success", |v: JValue| !result_flag(&v, "failed"));
        env.add_test("successful", |v: JValue| !result_flag(&v, "failed"));
        // an async job's state (`async_status` results): ansible-core's `finished`/`started`
        env.add_test("finished", |v: JValue| result_flag(&v, "finished"));
        env.add_test("started", |v: JValue| result_flag(&v, "started"));
        env.add_test("failed", |v: JValue| result_flag(&v, "failed"));
        env.add_test("failure", |v: JValue| result_flag(&v, "failed"));
        env.add_test("changed", |v: JValue| result_flag(&v, "changed"));
        env.add_test("change", |v: JValue| result_flag(&v, "changed"));
        env.add_test("skipped", |v: JValue| result_flag(&v, "skipped"));
        env.add_test("skip", |v: JValue| result_flag(&v, "skipped"));
        env.add_test("unreachable", |v: JValue| result_flag(&v, "unreachable"));
        env.add_test("reachable", |v: JValue| !result_flag(&v, "unreachable"));
        env.add_test("ansible._protomatter.tagged_with", tagged_with);
        env.add_function(
            super::undefined_chains::WALK_FUNCTION,
            super::undefined_chains::walk,
        );
        env.add_test("match", test_match);
        env.add_test("search", test_search);
        env.add_test("regex", test_search);
        super::filters::register(&mut env);
        super::globals::register(&mut env);
        super::lookups::register(&mut env);
        crate::vault::register(&mut env);
        env.add_function(
            crate::jinja::value::UNSAFE_FUNCTION,
            |hex: String| -> Result<JValue, Error> {
                crate::jinja::value::unhex(&hex)
                    .map(JValue::from)
                    .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "bad !unsafe value"))
            },
        );
        Templar {
            env: std::sync::Arc::new(env),
            allow_broken_conditionals: false,
        }
    }

    /// With the run's settings, by their Ansible configuration names, for
    /// `lookup('config', ...)`.
    pub fn with_settings(mut self, settings: &serde_json::Map<String, Value>) -> Self {
        let mut env = (*self.env).clone();
        env.add_global(
            super::lookups::SETTINGS_GLOBAL,
            JValue::from_serialize(settings),
        );
        self.env = std::sync::Arc::new(env);
        self
    }

    /// This templar with another environment.
    fn with_env(&self, env: Environment<'static>) -> Templar {
        Templar {
            env: std::sync::Arc::new(env),
            allow_broken_conditionals: self.allow_broken_conditionals,
        }
    }

    /// With the Python filter and test plugins of `dirs` (see [`super::python_filters`]); a
    /// warning when they could not be read.
    pub fn with_python_plugins(
        mut self,
        dirs: &super::python_filters::PluginDirs,
    ) -> (Self, Option<String>) {
        if dirs.is_empty() {
            return (self, None);
        }
        let mut env = (*self.env).clone();
        let warning = super::python_filters::register(&mut env, dirs)
            .err()
            .map(|why| format!("filter and test plugins not loaded: {why}"));
        self.env = std::sync::Arc::new(env);
        (self, warning)
    }

    /// Renders the text of a template file with `vars`: its `#jinja2:` line over `overrides`,
    /// includes and imports found in `dirs` (see [`file_template::include_path`]), its trailing newlines
    /// kept, lines ending with the newline sequence.
    pub fn render_file(
        &self,
        text: &str,
        vars: &JValue,
        overrides: &file_template::Overrides,
        dirs: Vec<std::path::PathBuf>,
    ) -> Result<String> {
        let (body, overrides) = overrides.with_header(text)?;
        // Jinja reads every newline as `\n`; the output's are the newline sequence
        let body = file_template::normalize_newlines(body);
        let env = file_template::file_env(&self.env, &overrides, dirs)?;
        let rendered = if overrides.default_syntax() {
            // the same path as any other template (lookups' constant arguments, why a
            // variable is undefined, one expression's value), with this environment
            self.with_env(env)
                .render_str(&body, vars)
                .map(|v| super::value::scalar_string(&v))?
        } else {
            file_template::render_text(&env, &body, vars)?
        };
        Ok(file_template::with_newlines(rendered, &overrides))
    }

    /// With `ALLOW_BROKEN_CONDITIONALS` set as given.
    pub fn allow_broken_conditionals(mut self, allow: bool) -> Self {
        self.allow_broken_conditionals = allow;
        self
    }

    /// Templates a string as Ansible does: the source's final newline is dropped (Jinja's
    /// `keep_trailing_newline=False`), `trim_blocks` is on, and text results get back as many
    /// trailing newlines as the source had. A source that is then exactly one `{{ expr }}`
    /// keeps the expression's native type; other templates render to text.
    pub fn render_str(&self, s: &str, vars: &JValue) -> Result<Value> {
        if !is_template(s) {
            return Ok(Value::String(s.to_string()));
        }
        let newlines = s.len() - s.trim_end_matches('\n').len();
        let src = s.strip_suffix('\n').unwrap_or(s);
        let pad = |v: Value| match v {
            Value::String(mut text) => {
                let have = text.len() - text.trim_end_matches('\n').len();
                for _ in have..newlines {
                    text.push('\n');
                }
                Value::String(text)
            }
            other => other,
        };
        if let Some(expr) = single_expression(src).filter(|_| src.trim() == src) {
            return self.eval(expr, vars).map(pad);
        }
        let rewritten =
            super::lookup_constants::rewrite(src, false, &mut |body| self.render_str(body, vars))?;
        let chained = super::undefined_chains::rewrite(rewritten.as_ref(), false);
        let src = chained.as_ref();
        undefined::take_lazy_failure();
        let tmpl = self
            .env
            .template_from_str(src)
            .map_err(|e| compile_error(&e, "template", s))?;
        tmpl.render(vars)
            .map(|text| pad(Value::String(text)))
            .map_err(|e| self.explain(e, (src, false), tmpl.undeclared_variables(true), vars))
    }

    /// Templates every string inside a value, recursively.
    pub fn render_value(&self, v: &Value, vars: &JValue) -> Result<Value> {
        Ok(match v {
            Value::String(s) => self.render_str(s, vars)?,
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.render_value(i, vars))
                    .collect::<Result<_>>()?,
            ),
            Value::Object(m) => {
                let mut out = serde_json::Map::new();
                for (k, v) in m {
                    out.insert(k.clone(), self.render_value(v, vars)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }

    /// Evaluates a bare Jinja expression to data.
    pub fn eval(&self, expr: &str, vars: &JValue) -> Result<Value> {
        let rewritten =
            super::lookup_constants::rewrite(expr, true, &mut |body| self.render_str(body, vars))?;
        let chained = super::undefined_chains::rewrite(rewritten.as_ref(), true);
        let expr = chained.as_ref();
        undefined::take_lazy_failure();
        let compiled = self
            .env
            .compile_expression(expr)
            .map_err(|e| compile_error(&e, "expression", expr))?;
        // an undefined value anywhere in the result fails, as Ansible fails to use it
        compiled
            .eval(vars)
            .and_then(|out| super::filters::to_data(&out))
            .map_err(|e| self.explain(e, (expr, true), compiled.undeclared_variables(true), vars))
    }

    /// Evaluates a condition (`when`, `until`, `changed_when`, `failed_when`): a raw expression
    /// (braces allowed) or a boolean.
    ///
    /// As in ansible-core 2.19, a condition that is one `{{ expr }}` whose result is text
    /// evaluates that text as an expression only when it is trusted: text the playbook's author
    /// wrote (see [`super::trust`]), wherever the value came from; not a host's output, a
    /// template's or an `!unsafe` value. Any other text result fails with [`Untrusted`].
    /// Template markup mixed with other text is refused (Ansible: "Template delimiters are
    /// not supported in expressions").
    pub fn condition(&self, cond: &Value, vars: &JValue) -> Result<bool> {
        self.condition_inner(cond, vars, &mut false)
    }

    /// [`Self::condition`], noting in `deprecations` (a result's `deprecations` entry) when
    /// ansible-core deprecates the condition's form: wrapped in `{{ }}` and giving no text
    /// ("Conditionals should not be surrounded by templating delimiters").
    pub fn condition_noting(
        &self,
        cond: &Value,
        vars: &JValue,
        deprecations: &mut Vec<Value>,
    ) -> Result<bool> {
        let mut as_template = false;
        let result = self.condition_inner(cond, vars, &mut as_template);
        if as_template {
            deprecations.push(serde_json::json!({
                "collection_name": "ansible.builtin",
                "deprecator": {"resolved_name": "ansible.builtin", "type": null},
                "msg": "Conditionals should not be surrounded by templating delimiters such as {{ }} or {% %}.",
                "version": "2.23",
            }));
        }
        result
    }

    fn condition_inner(&self, cond: &Value, vars: &JValue, as_template: &mut bool) -> Result<bool> {
        let v = match cond {
            Value::Bool(b) => return Ok(*b),
            Value::String(s) if !s.trim().is_empty() => {
                let s = s.trim();
                if let Some(expr) = single_expression(s) {
                    match self.eval(expr, vars)? {
                        Value::String(text) if trusted_text(expr, &text, vars) => {
                            let text = text.trim().to_string();
                            if is_template(&text) {
                                return Err(anyhow!(
                                    "Syntax error in expression. Template delimiters are not \
                                     supported in expressions"
                                ));
                            }
                            self.eval(&text, vars)?
                        }
                        Value::String(_) => return Err(Untrusted.into()),
                        other => {
                            *as_template = true;
                            other
                        }
                    }
                } else if is_possibly_all_template(s) {
                    // a template that is more than one expression: its text is a template's
                    // output, never trusted as an expression (ansible-core's meta-templating
                    // refusal)
                    match self.render_str(s, vars)? {
                        Value::String(_) => return Err(Untrusted.into()),
                        other => {
                            *as_template = true;
                            other
                        }
                    }
                } else {
                    // string constants holding templates are rendered first (ansible-core
                    // 2.19 still allows it); markup anywhere else is refused
                    // (a lookup's arguments first, by the lookups' own rule: see
                    // `lookup_constants`)
                    let s = super::lookup_constants::rewrite(s, true, &mut |body| {
                        self.render_str(body, vars)
                    })?;
                    let expr = self.render_constants(&s, vars)?;
                    self.eval(&expr, vars)?
                }
            }
            Value::String(_) | Value::Null if self.allow_broken_conditionals => return Ok(true),
            Value::String(_) | Value::Null => {
                return Err(anyhow!("Empty conditional expressions are not allowed."))
            }
            other if self.allow_broken_conditionals => return Ok(python_truth(other)),
            _ => return Err(anyhow!("Conditional expressions must be strings.")),
        };
        match v {
            Value::Bool(b) => Ok(b),
            other if self.allow_broken_conditionals => Ok(python_truth(&other)),
            other => Err(anyhow!(
                "Conditional result ({}) was derived from value of type '{}' at '<unknown>'. \
                 Conditionals must have a boolean result.",
                if python_truth(&other) {
                    "True"
                } else {
                    "False"
                },
                super::value::python_type(&JValue::from_serialize(&other))
            )),
        }
    }

    /// `expr` with each string constant that holds a template replaced by the constant it
    /// renders to; template markup outside string constants is an error.
    fn render_constants(&self, expr: &str, vars: &JValue) -> Result<String> {
        let mut out = String::new();
        let mut rest = expr;
        loop {
            let quote = rest.find(['"', '\'']);
            let before = &rest[..quote.unwrap_or(rest.len())];
            if is_template(before) {
                return Err(anyhow!(
                    "Syntax error in expression. Template delimiters are not supported in \
                     expressions"
                ));
            }
            out.push_str(before);
            let Some(start) = quote else {
                return Ok(out);
            };
            let q = rest.as_bytes()[start] as char;
            // the closing quote: the next one not escaped by a backslash
            let body_start = start + 1;
            let mut end = None;
            let mut escaped = false;
            for (i, c) in rest[body_start..].char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    c if c == q => {
                        end = Some(body_start + i);
                        break;
                    }
                    _ => {}
                }
            }
            let Some(end) = end else {
                // unterminated: let the parser report it
                out.push_str(&rest[start..]);
                return Ok(out);
            };
            let literal = &rest[start..=end];
            let body = &rest[body_start..end];
            if is_template(body) && !body.contains('\\') {
                let rendered = self.render_str(body, vars)?;
                let text = super::value::scalar_string(&rendered);
                out.push_str(&serde_json::to_string(&text)?);
            } else {
                out.push_str(literal);
            }
            rest = &rest[end + 1..];
        }
    }

    /// Whether the text `template` rendered to (`rendered`) is trusted as an expression: the
    /// author's text (see [`super::trust`]), never an `!unsafe` value.
    pub fn is_trusted_result(&self, template: &str, rendered: &str, vars: &JValue) -> bool {
        single_expression(template.trim()).is_some_and(|e| trusted_text(e, rendered, vars))
    }

    /// `assert`'s `that` written as one template whose value is a list: that list, each item a
    /// condition, as ansible-core's assert resolves such a `that` to its container. `None` for
    /// anything else, which stays one condition. An item keeps its trust: text that is not the
    /// author's (see [`super::trust`]) or is `!unsafe` stays an untrusted expression.
    pub fn conditions_list(&self, text: &str, vars: &JValue) -> Option<Vec<Value>> {
        let expr = single_expression(text)?;
        let Value::Array(mut items) = self.eval(expr, vars).ok()? else {
            return None;
        };
        // ansible-core resolves the container only: a list variable's items as written
        let written = is_name(expr)
            .then(|| {
                vars.get_attr(TEMPLATE_LISTS_KEY)
                    .and_then(|m| m.get_attr(expr))
            })
            .and_then(Result::ok)
            .filter(|v| !v.is_undefined())
            .and_then(|v| serde_json::to_value(&v).ok());
        if let Some(Value::Array(as_written)) = written {
            if as_written.len() == items.len() {
                items = as_written;
            }
        }
        // the `!unsafe` items of a list variable
        let unsafe_at: Vec<usize> = is_name(expr)
            .then(|| {
                vars.get_attr(UNSAFE_ITEMS_KEY)
                    .and_then(|m| m.get_attr(expr))
            })
            .and_then(Result::ok)
            .map(|at| {
                at.try_iter()
                    .into_iter()
                    .flatten()
                    .filter_map(|i| i.as_usize())
                    .collect()
            })
            .unwrap_or_default();
        for (n, item) in items.iter_mut().enumerate() {
            *item = untrusted_as_unsafe(item.take(), unsafe_at.contains(&n));
        }
        Some(items)
    }

    /// Builds a helpful error: names the undefined variable when that is the cause.
    /// `source` is the template (`bare_expression`: an expression without `{{ }}`).
    fn explain(
        &self,
        err: Error,
        (source, bare_expression): (&str, bool),
        names: std::collections::HashSet<String>,
        vars: &JValue,
    ) -> anyhow::Error {
        if err.kind() == ErrorKind::UndefinedError {
            // the first undefined name Jinja meets, left to right in the source (functions
            // such as `lookup` are the environment's, not variables)
            let globals: std::collections::HashSet<&str> =
                self.env.globals().map(|(name, _)| name).collect();
            let mut names: Vec<String> = names
                .into_iter()
                .filter(|n| !globals.contains(n.split('.').next().unwrap_or(n)))
                .collect();
            names.sort();
            names.sort_by_key(|n| first_use(source, n.split('.').next().unwrap_or(n)));
            for name in names {
                if let Some(missing) = undefined::first_missing(vars, &Path::dotted(&name)) {
                    let root = name.split('.').next().unwrap_or(&name);
                    if let Some(why) = vars
                        .get_attr(FAILED_VARS_KEY)
                        .and_then(|failed| failed.get_attr(root))
                        .ok()
                        .and_then(|why| why.as_str().map(str::to_string))
                    {
                        return undefined::UndefinedVariable(why).into();
                    }
                    return undefined::UndefinedVariable(missing).into();
                }
            }
            if let Some(why) = undefined::take_lazy_failure() {
                return undefined::UndefinedVariable(why).into();
            }
            let paths = undefined::subscript_paths(source, bare_expression, vars);
            if let Some(why) = paths.iter().find_map(|p| undefined::first_missing(vars, p)) {
                return undefined::UndefinedVariable(why).into();
            }
            return undefined::UndefinedVariable(describe(&err)).into();
        }
        anyhow!("{}", describe(&err))
    }
}

/// Where `name` first appears in `source` as a whole identifier (the end when it does not).
fn first_use(source: &str, name: &str) -> usize {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    source
        .match_indices(name)
        .find(|(at, _)| {
            let before = source[..*at].chars().next_back();
            let after = source[at + name.len()..].chars().next();
            !before.is_some_and(ident) && !after.is_some_and(ident)
        })
        .map_or(usize::MAX, |(at, _)| at)
}

/// A template or expression (`what`) that does not compile, in ansible-core's words for a
/// syntax error ("Syntax error in expression: ..."), with its source.
fn compile_error(e: &Error, what: &str, source: &str) -> anyhow::Error {
    match (e.kind(), e.detail()) {
        (ErrorKind::SyntaxError, Some(detail)) => {
            anyhow!("Syntax error in {what}: {detail} (in {source:?})")
        }
        _ => anyhow!("{what} error in {source:?}: {}", describe(e)),
    }
}

fn result_flag(v: &JValue, key: &str) -> bool {
    v.get_attr(key).map(|x| x.is_true()).unwrap_or(false)
}

fn to_bool(v: JValue) -> bool {
    match v.kind() {
        ValueKind::Bool => v.is_true(),
        ValueKind::Number => v.is_true(),
        ValueKind::String => super::value::boolean_text(v.as_str().unwrap_or("")),
        _ => false,
    }
}

fn to_int(v: JValue, default: Option<i64>) -> i64 {
    let d = default.unwrap_or(0);
    match v.kind() {
        ValueKind::Number => i64::try_from(v.clone())
            .ok()
            .or_else(|| f64::try_from(v).ok().map(|f| f as i64))
            .unwrap_or(d),
        ValueKind::Bool => i64::from(v.is_true()),
        ValueKind::String => {
            let s = v.as_str().unwrap_or("").trim();
            s.parse::<i64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().map(|f| f as i64))
                .unwrap_or(d)
        }
        _ => d,
    }
}

fn to_float(v: JValue) -> f64 {
    match v.kind() {
        ValueKind::Number => f64::try_from(v).unwrap_or(0.0),
        ValueKind::String => v.as_str().unwrap_or("").trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Whether `v` is undefined, where the template handles that (`default`, `is defined`): a
/// reason noted for it (see [`undefined::note_lazy_failure`]) must not explain a later error.
fn guarded_undefined(v: &JValue) -> bool {
    if v.is_undefined() {
        undefined::take_lazy_failure();
    }
    v.is_undefined()
}

/// `default`/`d`: minijinja's, forgetting why a defaulted value was undefined.
fn default(state: &State, value: &JValue, args: Rest<JValue>) -> Result<JValue, Error> {
    guarded_undefined(value);
    minijinja::filters::default(state, value, args)
}

fn to_string(v: JValue) -> String {
    v.to_string()
}

fn from_json(s: String) -> Result<JValue, Error> {
    let v: Value = serde_json::from_str(&s)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("from_json: {e}")))?;
    Ok(JValue::from_serialize(&v))
}

fn mandatory(v: JValue, msg: Option<String>) -> Result<JValue, Error> {
    if v.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            msg.unwrap_or_else(|| "Mandatory variable not defined.".into()),
        ));
    }
    Ok(v)
}

fn ternary(v: JValue, yes: JValue, no: JValue, none: Option<JValue>) -> JValue {
    if v.is_none() {
        if let Some(n) = none {
            return n;
        }
    }
    if v.is_true() {
        yes
    } else {
        no
    }
}

fn regex_search(s: String, pattern: String, _rest: Rest<JValue>) -> Result<JValue, Error> {
    let re = regex::Regex::new(&pattern)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    Ok(re
        .find(&s)
        .map(|m| JValue::from(m.as_str()))
        .unwrap_or(JValue::from(())))
}

fn regex_replace(s: String, pattern: String, replacement: Option<String>) -> Result<String, Error> {
    let re = regex::Regex::new(&pattern)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    // Python's \1 backreferences -> regex crate's ${1}
    let rep = replacement.unwrap_or_default();
    let rep = regex::Regex::new(r"\\(\d+)")
        .map(|r| r.replace_all(&rep, "$${$1}").into_owned())
        .unwrap_or(rep);
    Ok(re.replace_all(&s, rep.as_str()).into_owned())
}

/// Python's `os.path.expanduser` on the controller: a leading `~` or `~/` is `$HOME`
/// (`~user` forms stay as written).
fn expanduser(s: String) -> String {
    let home = std::env::var("HOME").unwrap_or_default();
    match s.strip_prefix('~') {
        Some("") => home,
        Some(rest) if rest.starts_with('/') => format!("{home}{rest}"),
        _ => s,
    }
}

fn basename(s: String) -> String {
    s.rsplit('/').next().unwrap_or("").to_string()
}

fn dirname(s: String) -> String {
    match s.rfind('/') {
        Some(0) => "/".into(),
        Some(i) => s[..i].to_string(),
        None => String::new(),
    }
}

fn test_match(s: String, pattern: String) -> bool {
    regex::Regex::new(&format!("^(?:{pattern})"))
        .map(|re| re.is_match(&s))
        .unwrap_or(false)
}

fn test_search(s: String, pattern: String) -> bool {
    regex::Regex::new(&pattern)
        .map(|re| re.is_match(&s))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> JValue {
        JValue::from_serialize(
            json!({"a": 1, "s": "x", "r": {"rc": 0, "failed": false, "stdout": "hi"}, "flag": "yes"}),
        )
    }

    #[test]
    fn variable_paths_keep_trust_and_nothing_else_does() {
        for p in [
            "item",
            "item.that",
            "a[0]",
            "a['k'].b",
            "x[\"y\"]",
            "a[i]",
            " r.results[-1] ",
        ] {
            assert!(is_variable_path(p), "{p}");
        }
        for p in [
            "'1 == 1'",
            "a ~ ''",
            "a | first",
            "f(x)",
            "a[1:2]",
            "a.",
            "a[\"b'\"]",
            "",
        ] {
            assert!(!is_variable_path(p), "{p}");
        }
    }

    #[test]
    fn native_and_text() {
        let t = Templar::new();
        assert_eq!(t.render_str("{{ a }}", &vars()).unwrap(), json!(1));
        assert_eq!(t.render_str("n={{ a }}", &vars()).unwrap(), json!("n=1"));
        assert_eq!(t.render_str("{{ r }}", &vars()).unwrap()["rc"], json!(0));
        assert_eq!(t.render_str("plain", &vars()).unwrap(), json!("plain"));
    }

    #[test]
    fn dict_literals_are_one_expression() {
        let t = Templar::new();
        let r = |s: &str| t.render_str(s, &vars()).unwrap();
        assert_eq!(r("{{ {'a': {'b': 1}} }}"), json!({"a": {"b": 1}}));
        assert_eq!(r("{{ {'a': 1}}}"), json!({"a": 1}));
        assert_eq!(r("{{ {'s': '}} {{'} }}"), json!({"s": "}} {{"}));
        assert_eq!(r("{{ nope | default({'k': {}}) }}"), json!({"k": {}}));
        assert_eq!(r("{{- a -}}"), json!(1));
        assert_eq!(r("{{ a }}{{ a }}"), json!("11"));
        assert_eq!(r("{{ a }} {% if true %}x{% endif %}"), json!("1 x"));
        assert_eq!(single_expression("{{ -a }}"), Some("-a"));
        assert_eq!(single_expression("{{ a }} }}"), None);
    }

    /// Outputs checked against ansible-core 2.19's `ansible-playbook` (`debug: msg:`).
    #[test]
    fn trim_blocks_and_trailing_newlines_as_ansible() {
        let t = Templar::new();
        let v = JValue::from_serialize(json!({"items": ["a", "b"]}));
        let r = |s: &str| t.render_str(s, &v).unwrap();
        assert_eq!(
            r("{% for i in items %}\nx={{ i }}\n{% endfor %}\nend\n"),
            json!("x=a\nx=b\nend\n")
        );
        assert_eq!(r("{{ 'v' }}\n"), json!("v\n"));
        assert_eq!(r("{{ 5 }}\n"), json!(5));
        assert_eq!(r("{{ 5 }}\n\n"), json!("5\n\n"));
        assert_eq!(r("{{ [1, 2] }}\n"), json!([1, 2]));
        assert_eq!(r(" {{ 1 }}"), json!(" 1"));
        assert_eq!(r("{% if true %}\nyes\n{% endif %}\n"), json!("yes\n"));
        assert_eq!(
            r("  {% if true %}\n  ind\n  {% endif %}\n"),
            json!("    ind\n  \n")
        );
        assert_eq!(r("{% if true %}\n\n{% endif %}\n\n"), json!("\n\n"));
    }

    #[test]
    fn undefined_is_named_but_default_and_defined_work() {
        let t = Templar::new();
        let err = t.render_str("{{ nope }}", &vars()).unwrap_err().to_string();
        assert!(err.contains("'nope' is undefined"), "{err}");
        let err = t
            .render_str("x {{ r.nothing }}", &vars())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("object of type 'dict' has no attribute 'nothing'"),
            "{err}"
        );
        assert_eq!(
            t.render_str("{{ nope | default('d') }}", &vars()).unwrap(),
            json!("d")
        );
        assert_eq!(
            t.render_str("{{ nope | d(5) }}", &vars()).unwrap(),
            json!(5)
        );
        assert!(!t.condition(&json!("nope is defined"), &vars()).unwrap());
        assert!(t.condition(&json!("nope is undefined"), &vars()).unwrap());
    }

    #[test]
    fn conditions_need_a_boolean_and_config_lookup_reads_settings() {
        let mut settings = serde_json::Map::new();
        settings.insert("ALLOW_BROKEN_CONDITIONALS".into(), json!(false));
        let t = Templar::new().with_settings(&settings);
        let v = vars();
        let err = t.condition(&json!("'text'"), &v).unwrap_err().to_string();
        assert!(
            err.contains("Conditionals must have a boolean result"),
            "{err}"
        );
        assert!(t
            .condition(&json!(""), &v)
            .unwrap_err()
            .to_string()
            .contains("Empty conditional"));
        assert!(t
            .condition(&json!(1), &v)
            .unwrap_err()
            .to_string()
            .contains("must be strings"));
        assert!(t.condition(&json!(r#""{{ 'hi' }}" == "hi""#), &v).unwrap());
        let lenient = Templar::new().allow_broken_conditionals(true);
        assert!(lenient.condition(&json!("'text'"), &v).unwrap());
        assert_eq!(
            t.render_str("{{ lookup('config', 'ALLOW_BROKEN_CONDITIONALS') }}", &v)
                .unwrap(),
            json!(false)
        );
        let unknown = t
            .render_str("{{ lookup('config', 'NOPE') }}", &v)
            .unwrap_err();
        assert!(unknown.to_string().contains("NOPE"), "{unknown}");
        assert_eq!(
            t.render_str("{{ lookup('config', 'NOPE', on_missing='skip') }}", &v)
                .unwrap(),
            json!([])
        );
    }

    #[test]
    fn division_by_zero_fails_as_in_python() {
        let t = Templar::new();
        for tmpl in [
            "{{ 5 / 0 }}",
            "{{ 5 / 0 | int }}",
            "a {{ 5 / 0 }} b",
            "{{ [1 / 0] }}",
        ] {
            let err = t.render_str(tmpl, &vars()).unwrap_err().to_string();
            assert!(err.contains("division by zero"), "{tmpl}: {err}");
        }
        assert_eq!(t.render_str("{{ 7 / 2 }}", &vars()).unwrap(), json!(3.5));
    }

    #[test]
    fn conditions_and_filters() {
        let t = Templar::new();
        assert!(t.condition(&json!("a == 1"), &vars()).unwrap());
        assert!(t.condition(&json!("r is succeeded"), &vars()).unwrap());
        assert!(t.condition(&json!("flag | bool"), &vars()).unwrap());
        assert!(t.condition(&json!(true), &vars()).unwrap());
        assert!(t.condition(&json!("{{ a == 1 }}"), &vars()).unwrap());
        assert!(t
            .condition(&json!("r.stdout is search('h')"), &vars())
            .unwrap());
        assert_eq!(
            t.render_str("{{ '5' | int + 1 }}", &vars()).unwrap(),
            json!(6)
        );
        assert_eq!(
            t.render_str(
                "{{ 'a-b' | regex_replace('(a)-(b)', '\\\\2\\\\1') }}",
                &vars()
            )
            .unwrap(),
            json!("ba")
        );
    }
}
