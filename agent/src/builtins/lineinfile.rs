//! `lineinfile`, a port of the module's `present`/`absent`: `line`, `regexp`, `search_string`,
//! `state`, `create`, `insertafter`/`insertbefore` (`EOF`, `BOF` or a regex), `backrefs`,
//! `firstmatch`, owner/group/mode, and the `--diff` before/after text. Lines keep their own
//! endings, as the module's `readlines` does. Regexes are Rust's `regex` (no look-around).

use super::files::{fail, info, mode_arg, set_attrs, sh, write_remote, Info, R};
use super::spec::{Arg, Check, FILE_COMMON};
use super::ActionCtx;
use super::Params;
use crate::transport::{quote, TransportError};
use regex::Regex;
use serde_json::{Map, Value};

/// `lineinfile`'s argument spec.
pub const ARGS: Check = Check::Spec {
    name: None,
    args: &[
        Arg::bool("backrefs", false),
        Arg::bool("backup", false).unimplemented(),
        Arg::bool("create", false),
        Arg::bool("firstmatch", false),
        Arg::str("insertafter"),
        Arg::str("insertbefore"),
        Arg::str("line").aliases(&["value"]),
        Arg::path("path")
            .aliases(&["dest", "destfile", "name"])
            .required(),
        Arg::str("regexp").aliases(&["regex"]),
        Arg::str("search_string"),
        Arg::str("state")
            .default_str("present")
            .choices(&["absent", "present"]),
        Arg::str("validate").unimplemented(),
    ],
    common: FILE_COMMON,
    exclusive: &[],
};

/// The regex argument `key`, compiled.
fn compile(p: &Params, key: &str) -> Result<Option<Regex>, String> {
    match p.str(key) {
        None => Ok(None),
        Some(p) => Regex::new(&p)
            .map(Some)
            .map_err(|e| format!("bad regular expression {p:?}: {e}")),
    }
}

/// Python's `re.search` on a line read with its ending: `$` also matches before a final `\n`.
fn search<'t>(re: &Regex, line: &'t str) -> Option<regex::Captures<'t>> {
    re.captures(line)
        .or_else(|| line.strip_suffix('\n').and_then(|l| re.captures(l)))
}

/// A Python `match.expand` template (`\1`, `\g<1>`, `\g<name>`, `\n`, `\\`) as the `regex`
/// crate's (`${1}`, `$$`).
fn python_template(t: &str) -> String {
    let mut out = String::new();
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    let mut n = String::new();
                    while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                        if n.len() == 2 {
                            break;
                        }
                        n.push(d);
                        chars.next();
                    }
                    out.push_str(&format!("${{{n}}}"));
                }
                Some('g') => {
                    chars.next();
                    if chars.peek() == Some(&'<') {
                        chars.next();
                        let name: String = chars.by_ref().take_while(|&c| c != '>').collect();
                        out.push_str(&format!("${{{name}}}"));
                    } else {
                        out.push_str("\\g");
                    }
                }
                Some('n') => {
                    chars.next();
                    out.push('\n');
                }
                Some('t') => {
                    chars.next();
                    out.push('\t');
                }
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

/// `os.makedirs` of the parent of a file about to be created; the module's message on failure.
async fn make_parents(ctx: &ActionCtx<'_>, path: &str) -> Result<Option<String>, TransportError> {
    let Some(parent) = std::path::Path::new(path)
        .parent()
        .map(|p| p.display().to_string())
        .filter(|p| !p.is_empty())
    else {
        return Ok(None);
    };
    let out = sh(ctx, &format!("mkdir -p {}", quote(&parent)), None).await?;
    Ok((out.rc != 0).then(|| format!("Error creating {parent} ({})", out.stderr_text().trim())))
}

fn trim_eol(l: &str) -> &str {
    l.trim_end_matches(['\r', '\n'])
}

fn content_diff(dest: &str, before: &str, after: &str) -> Value {
    let mut d = Map::new();
    // the module's key order (to_json keeps it)
    d.insert("before".into(), before.into());
    d.insert("after".into(), after.into());
    d.insert("before_header".into(), format!("{dest} (content)").into());
    d.insert("after_header".into(), format!("{dest} (content)").into());
    Value::Object(d)
}

/// The module's `present` on the lines of the file; `(changed, msg)`.
fn present(
    lines: &mut Vec<String>,
    line: &str,
    regexp: Option<&Regex>,
    search_string: Option<&str>,
    ins: (Option<&str>, Option<&str>, Option<&Regex>),
    backrefs: bool,
    firstmatch: bool,
) -> (bool, &'static str) {
    let (insertafter, insertbefore, bre_ins) = ins;
    let mut index: [i64; 2] = [-1, -1];
    let mut matched: Option<usize> = None;
    let mut exact_line_match = false;
    if let Some(re) = regexp {
        for (n, l) in lines.iter().enumerate() {
            if search(re, l).is_some() {
                index[0] = n as i64;
                matched = Some(n);
                if firstmatch {
                    break;
                }
            }
        }
    }
    if let Some(s) = search_string {
        for (n, l) in lines.iter().enumerate() {
            if l.contains(s) {
                index[0] = n as i64;
                matched = Some(n);
                if firstmatch {
                    break;
                }
            }
        }
    }
    if matched.is_none() {
        for (n, l) in lines.iter().enumerate() {
            if line == trim_eol(l) {
                index[0] = n as i64;
                exact_line_match = true;
            } else if bre_ins.is_some_and(|re| search(re, l).is_some()) {
                if insertafter.is_some() {
                    index[1] = n as i64 + 1;
                    if firstmatch {
                        break;
                    }
                }
                if insertbefore.is_some() {
                    index[1] = n as i64;
                    if firstmatch {
                        break;
                    }
                }
            }
        }
    }
    let with_eol = format!("{line}\n");
    let ends_open = |lines: &Vec<String>| {
        lines
            .last()
            .is_some_and(|l| !l.ends_with('\n') && !l.ends_with('\r'))
    };
    if index[0] != -1 {
        let i0 = index[0] as usize;
        let mut new_line = match (backrefs, matched, regexp) {
            (true, Some(n), Some(re)) => {
                let caps = search(re, &lines[n]).expect("matched before");
                let mut out = String::new();
                caps.expand(&python_template(line), &mut out);
                out
            }
            _ => line.to_string(),
        };
        if !new_line.ends_with('\n') {
            new_line.push('\n');
        }
        if regexp.is_none() && search_string.is_none() && matched.is_none() && !exact_line_match {
            // unreachable in practice (index[0] is set only by a match), kept as the module has it
            return (false, "");
        }
        if lines[i0] != new_line {
            lines[i0] = new_line;
            return (true, "line replaced");
        }
        return (false, "");
    }
    if backrefs {
        return (false, "");
    }
    if insertbefore == Some("BOF") || insertafter == Some("BOF") {
        lines.insert(0, with_eol);
        return (true, "line added");
    }
    if insertafter == Some("EOF") || index[1] == -1 {
        if ends_open(lines) {
            lines.push("\n".into());
        }
        lines.push(with_eol);
        return (true, "line added");
    }
    let i1 = index[1] as usize;
    if insertafter.is_some() {
        if lines.len() == i1 {
            if trim_eol(&lines[i1 - 1]) != line {
                lines.push(with_eol);
                return (true, "line added");
            }
        } else if line != trim_eol(&lines[i1]) {
            lines.insert(i1, with_eol);
            return (true, "line added");
        }
        return (false, "");
    }
    lines.insert(i1, with_eol);
    (true, "line added")
}

/// The `before`/`after` owner (uid), group (gid) and mode that `set_fs_attributes_if_different`
/// records, in its order.
async fn attr_diff(
    ctx: &ActionCtx<'_>,
    p: &Params,
    was: Option<&Info>,
) -> Result<Map<String, Value>, TransportError> {
    let (mut before, mut after) = (Map::new(), Map::new());
    let Some(was) = was else {
        return Ok(Map::new());
    };
    // the ids asked for, as the target resolves them
    let id_of = |v: Option<String>, db: &'static str| async move {
        let Some(v) = v else { return Ok(None) };
        if let Ok(n) = v.parse::<u64>() {
            return Ok(Some(n));
        }
        let out = sh(
            ctx,
            &format!("getent {db} {} | cut -d: -f3", quote(&v)),
            None,
        )
        .await?;
        Ok::<_, TransportError>(out.stdout_text().trim().parse::<u64>().ok())
    };
    if let Some(uid) = id_of(p.str("owner"), "passwd").await? {
        if uid != was.uid {
            before.insert("owner".into(), was.uid.into());
            after.insert("owner".into(), uid.into());
        }
    }
    if let Some(gid) = id_of(p.str("group"), "group").await? {
        if gid != was.gid {
            before.insert("group".into(), was.gid.into());
            after.insert("group".into(), gid.into());
        }
    }
    let want = mode_arg(p).and_then(|m| u32::from_str_radix(&m, 8).ok());
    if let Some(w) = want.filter(|w| *w != was.raw_mode & 0o7777) {
        before.insert(
            "mode".into(),
            format!("0{:03o}", was.raw_mode & 0o7777).into(),
        );
        after.insert("mode".into(), format!("0{w:03o}").into());
    }
    let mut m = Map::new();
    if !before.is_empty() {
        m.insert("before".into(), Value::Object(before));
        m.insert("after".into(), Value::Object(after));
    }
    Ok(m)
}

/// `lineinfile`.
pub async fn run(ctx: &ActionCtx<'_>, p: &Params) -> R {
    let Some(path) = p.str("path") else {
        return fail("missing required arguments: path");
    };
    let state = p.str("state").unwrap_or_else(|| "present".into());
    let (regexp, bre_after, bre_before) = match (
        compile(p, "regexp"),
        compile(p, "insertafter"),
        compile(p, "insertbefore"),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return fail(e),
    };
    let search_string = p.str("search_string");
    let line = p.str("line");
    let backrefs = p.bool("backrefs");
    let firstmatch = p.bool("firstmatch");
    let create = p.bool("create");
    let (mut ins_aft, ins_bef) = (p.str("insertafter"), p.str("insertbefore"));
    for (a, b) in [
        ("insertbefore", "insertafter"),
        ("regexp", "search_string"),
        ("backrefs", "search_string"),
    ] {
        let given = |k: &str| match k {
            "regexp" => regexp.is_some(),
            "backrefs" => backrefs,
            k => p.str(k).is_some(),
        };
        if given(a) && given(b) {
            return fail(format!("parameters are mutually exclusive: {a}|{b}"));
        }
    }
    let before = info(ctx, &path).await?;
    if before.as_ref().is_some_and(|i| i.dir_follow) {
        let mut m = super::failed(format!("Path {path} is a directory !"));
        m.insert("changed".into(), Value::Bool(false));
        m.insert("rc".into(), 256.into());
        return Ok(m);
    }
    let exists = before.as_ref().is_some_and(|i| i.exists);
    if state == "present" {
        if backrefs && regexp.is_none() {
            return fail("regexp is required with backrefs=true");
        }
        if line.is_none() {
            return fail("line is required with state=present");
        }
        if ins_aft.is_none() && ins_bef.is_none() {
            ins_aft = Some("EOF".into());
        }
        if !exists && !create {
            let mut m = super::failed(format!("Destination {path} does not exist !"));
            m.insert("changed".into(), Value::Bool(false));
            m.insert("rc".into(), 257.into());
            return Ok(m);
        }
    } else {
        if regexp.is_none() && search_string.is_none() && line.is_none() {
            return fail("one of line, search_string, or regexp is required with state=absent");
        }
        if !exists {
            let mut m = Map::new();
            m.insert("changed".into(), Value::Bool(false));
            m.insert("msg".into(), "file not present".into());
            return Ok(m);
        }
    }
    let text = if exists {
        let out = sh(ctx, &format!("cat {}", quote(&path)), None).await?;
        if out.rc != 0 {
            return fail(out.stderr_text().trim().to_string());
        }
        out.stdout_text()
    } else {
        if !ctx.check {
            if let Some(e) = make_parents(ctx, &path).await? {
                return fail(e);
            }
        }
        String::new()
    };
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    let mut m = Map::new();
    let (changed, msg) = if state == "present" {
        let line = line.unwrap_or_default();
        let bre_ins = match ins_aft.as_deref() {
            Some("BOF" | "EOF") | None => match ins_bef.as_deref() {
                Some("BOF") | None => None,
                Some(_) => bre_before.as_ref(),
            },
            Some(_) => bre_after.as_ref(),
        };
        let (c, msg) = present(
            &mut lines,
            &line,
            regexp.as_ref(),
            search_string.as_deref(),
            (ins_aft.as_deref(), ins_bef.as_deref(), bre_ins),
            backrefs,
            firstmatch,
        );
        (c, msg.to_string())
    } else {
        let before_len = lines.len();
        lines.retain(|l| {
            let hit = match (&regexp, &search_string, &line) {
                (Some(re), _, _) => search(re, l).is_some(),
                (None, Some(s), _) => l.contains(s.as_str()),
                (None, None, Some(x)) => trim_eol(l) == x,
                _ => false,
            };
            !hit
        });
        let found = before_len - lines.len();
        m.insert("found".into(), found.into());
        (
            found > 0,
            if found > 0 {
                format!("{found} line(s) removed")
            } else {
                String::new()
            },
        )
    };
    let new_text: String = lines.concat();
    let diff = content_diff(
        &path,
        if ctx.diff { &text } else { "" },
        if ctx.diff { &new_text } else { "" },
    );
    if changed && !ctx.check {
        if let Err(e) = write_remote(ctx, &path, new_text.as_bytes()).await {
            return match e {
                TransportError::Failed(msg) => fail(msg),
                e => Err(e),
            };
        }
    }
    m.insert("backup".into(), "".into());
    if ctx.check && !exists {
        m.insert("changed".into(), Value::Bool(changed));
        m.insert("msg".into(), msg.into());
        if ctx.diff {
            m.insert("diff".into(), diff);
        }
        return Ok(m);
    }
    let now = if ctx.check {
        before
    } else {
        info(ctx, &path).await?
    };
    let attr_changed = match set_attrs(ctx, p, &path, now.as_ref()).await {
        Ok(c) => c,
        Err(TransportError::Failed(msg)) => return fail(msg),
        Err(e) => return Err(e),
    };
    let mut msg = msg;
    if attr_changed {
        if changed {
            msg.push_str(" and ");
        }
        msg.push_str("ownership, perms or SE linux context changed");
    }
    m.insert("changed".into(), Value::Bool(changed || attr_changed));
    m.insert("msg".into(), msg.into());
    if ctx.diff {
        let mut attr = if attr_changed {
            attr_diff(ctx, p, now.as_ref()).await?
        } else {
            Map::new()
        };
        attr.insert(
            "before_header".into(),
            format!("{path} (file attributes)").into(),
        );
        attr.insert(
            "after_header".into(),
            format!("{path} (file attributes)").into(),
        );
        m.insert("diff".into(), Value::Array(vec![diff, Value::Object(attr)]));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::{present, python_template};
    use regex::Regex;

    fn lines(t: &str) -> Vec<String> {
        t.split_inclusive('\n').map(str::to_string).collect()
    }

    #[test]
    fn python_templates_read_as_regex_ones() {
        assert_eq!(
            python_template(r"x=\1 \g<2> \g<n> $"),
            "x=${1} ${2} ${n} $$"
        );
    }

    #[test]
    fn insertbefore_a_regex_goes_before_the_last_match() {
        let re = Regex::new("^b").unwrap();
        let mut l = lines("a\nb1\nb2\n");
        let r = present(
            &mut l,
            "new",
            None,
            None,
            (None, Some("^b"), Some(&re)),
            false,
            false,
        );
        assert_eq!(r, (true, "line added"));
        assert_eq!(l.concat(), "a\nb1\nnew\nb2\n");
        let mut l = lines("a\nb1\nb2\n");
        present(
            &mut l,
            "new",
            None,
            None,
            (None, Some("^b"), Some(&re)),
            false,
            true,
        );
        assert_eq!(l.concat(), "a\nnew\nb1\nb2\n");
    }

    #[test]
    fn backrefs_without_a_match_change_nothing() {
        let re = Regex::new(r"^port=(\d+)$").unwrap();
        let mut l = lines("a\n");
        let ins = (Some("EOF"), None, None);
        assert_eq!(
            present(&mut l, r"p=\1", Some(&re), None, ins, true, false),
            (false, "")
        );
        let mut l = lines("port=80\n");
        present(&mut l, r"p=\1", Some(&re), None, ins, true, false);
        assert_eq!(l.concat(), "p=80\n");
    }
}
