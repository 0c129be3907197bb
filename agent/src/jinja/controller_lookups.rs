//! Lookups that read the controller: `pipe` and `lines` run a shell command in the playbook's
//! directory, `fileglob` lists files matching a pattern in the task's search path, as
//! ansible-core's plugins of those names do.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The standard output of `term` run by `/bin/sh -c` in `cwd`, with an empty stdin; an
/// error naming the plugin when it exits non-zero.
fn run(plugin: &str, term: &str, cwd: &Path) -> Result<Vec<u8>, String> {
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(term)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("lookup_plugin.{plugin}({term}): {e}"))?;
    match out.status.code() {
        Some(0) => Ok(out.stdout),
        code => Err(format!(
            "lookup_plugin.{plugin}({term}) returned {}",
            code.unwrap_or(-1)
        )),
    }
}

/// `pipe`: each term's output, trailing whitespace removed.
pub fn pipe(terms: &[String], cwd: &Path) -> Result<Vec<Value>, String> {
    terms
        .iter()
        .map(|t| {
            let out = run("pipe", t, cwd)?;
            Ok(Value::String(
                String::from_utf8_lossy(&out).trim_end().to_string(),
            ))
        })
        .collect()
}

/// `lines`: each line of each term's output (split as Python's `bytes.splitlines()`: at
/// `\n`, `\r\n` and `\r`).
pub fn lines(terms: &[String], cwd: &Path) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for t in terms {
        let text = String::from_utf8_lossy(&run("lines", t, cwd)?).into_owned();
        if text.is_empty() {
            continue;
        }
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let text = text.strip_suffix('\n').unwrap_or(&text);
        out.extend(text.split('\n').map(|l| Value::String(l.to_string())));
    }
    Ok(out)
}

/// `fileglob`: per term, the files its last component matches in the first directory where
/// any match (a term with a directory: that directory found in the search path as `find_file`
/// finds files; a bare pattern: each search path entry's `files/`, then the entry itself).
/// `dir_candidates(d)` lists where directory `d` may be, in search order.
pub fn fileglob(
    terms: &[String],
    dir_candidates: impl Fn(&str) -> Vec<PathBuf>,
    search_path: &[PathBuf],
) -> Vec<Value> {
    let mut out = Vec::new();
    for term in terms {
        let (dir, pattern) = match term.rsplit_once('/') {
            Some((d, p)) => (Some(if d.is_empty() { "/" } else { d }), p),
            None => (None, term.as_str()),
        };
        let places: Vec<PathBuf> = match dir {
            Some(d) => dir_candidates(d)
                .into_iter()
                .find(|c| c.exists())
                .into_iter()
                .collect(),
            None => search_path
                .iter()
                .flat_map(|p| [p.join("files"), p.clone()])
                .collect(),
        };
        for place in places {
            let found = glob_files(&place, pattern);
            if !found.is_empty() {
                out.extend(found.into_iter().map(Value::String));
                break;
            }
        }
    }
    out
}

/// The files in `dir` whose name matches `pattern` (Python's `glob`: `*`, `?`, `[...]`; a
/// leading `.` only matched by one in the pattern), in the directory's own order as Python's
/// `glob` gives them.
fn glob_files(dir: &Path, pattern: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (!name.starts_with('.') || pattern.starts_with('.'))
                && fnmatch(pattern.as_bytes(), name.as_bytes())
        })
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// Shell-style matching of a whole name: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`.
fn fnmatch(pat: &[u8], name: &[u8]) -> bool {
    match pat.first() {
        None => name.is_empty(),
        Some(b'*') => (0..=name.len()).any(|i| fnmatch(&pat[1..], &name[i..])),
        Some(b'?') => !name.is_empty() && fnmatch(&pat[1..], &name[1..]),
        Some(b'[') => {
            let Some(end) = pat.iter().skip(2).position(|&b| b == b']').map(|p| p + 2) else {
                // no closing bracket: a literal `[`
                return name.first() == Some(&b'[') && fnmatch(&pat[1..], &name[1..]);
            };
            let Some(&c) = name.first() else {
                return false;
            };
            let mut set = &pat[1..end];
            let negate = matches!(set.first(), Some(b'!'));
            if negate {
                set = &set[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    hit |= set[i] <= c && c <= set[i + 2];
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit != negate && fnmatch(&pat[end + 1..], &name[1..])
        }
        Some(&b) => name.first() == Some(&b) && fnmatch(&pat[1..], &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_patterns() {
        assert!(fnmatch(b"*.txt", b"a.txt"));
        assert!(!fnmatch(b"*.txt", b"a.txt.bak"));
        assert!(fnmatch(b"f?o[0-9][!x]", b"foo1y"));
        assert!(!fnmatch(b"f?o[0-9][!x]", b"foo1x"));
        assert!(fnmatch(b"[ab]*", b"banana"));
    }

    #[test]
    fn commands_and_globs() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["a.txt", "b.txt", ".hidden.txt", "c.log"] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        let path = [dir.path().to_path_buf()];
        let got = fileglob(&["*.txt".into()], |_| Vec::new(), &path);
        let names: Vec<String> = got
            .iter()
            .map(|v| v.as_str().unwrap().rsplit('/').next().unwrap().to_string())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(names, ["a.txt", "b.txt"]);
        let cwd = dir.path();
        assert_eq!(
            pipe(&["echo hi; echo there".into()], cwd).unwrap(),
            ["hi\nthere"]
        );
        assert_eq!(lines(&["ls *.log".into()], cwd).unwrap(), ["c.log"]);
        let err = pipe(&["exit 3".into()], cwd).unwrap_err();
        assert_eq!(err, "lookup_plugin.pipe(exit 3) returned 3");
    }
}
