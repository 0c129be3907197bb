//! `--diff` display: unified diffs of a result's `diff` (`before`/`after`), as Ansible's default
//! callback prints them (difflib-style hunks with 3 lines of context).

use serde_json::Value;

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => {
            let mut s = crate::jinja::value::python_indented(other);
            s.push('\n');
            s
        }
    }
}

/// Line-level edit script between `a` and `b` (LCS): `' '` keep, `'-'` delete, `'+'` insert.
fn edits<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<(char, &'a str)> {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(('-', a[i]));
            i += 1;
        } else {
            out.push(('+', b[j]));
            j += 1;
        }
    }
    out
}

fn range(start: usize, len: usize) -> String {
    match len {
        1 => format!("{}", start + 1),
        0 => format!("{start},0"),
        _ => format!("{},{len}", start + 1),
    }
}

/// A unified diff of two texts with `context` lines around changes; empty when equal.
pub fn unified(before: &str, after: &str, from: &str, to: &str, context: usize) -> String {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let ops = edits(&a, &b);
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    if changed.is_empty() {
        return String::new();
    }
    let mut out = format!("--- {from}\n+++ {to}\n");
    // group changes whose context overlaps into hunks
    let mut groups: Vec<(usize, usize)> = Vec::new();
    for &k in &changed {
        let lo = k.saturating_sub(context);
        let hi = (k + context + 1).min(ops.len());
        match groups.last_mut() {
            Some(g) if lo <= g.1 => g.1 = hi,
            _ => groups.push((lo, hi)),
        }
    }
    for (lo, hi) in groups {
        let a_start = ops[..lo].iter().filter(|o| o.0 != '+').count();
        let b_start = ops[..lo].iter().filter(|o| o.0 != '-').count();
        let a_len = ops[lo..hi].iter().filter(|o| o.0 != '+').count();
        let b_len = ops[lo..hi].iter().filter(|o| o.0 != '-').count();
        out.push_str(&format!(
            "@@ -{} +{} @@\n",
            range(a_start, a_len),
            range(b_start, b_len)
        ));
        for (op, line) in &ops[lo..hi] {
            out.push_str(&format!("{op}{line}\n"));
        }
    }
    out
}

/// The text shown for a result's `diff` value (one object or a list of them).
pub fn render(diff: &Value) -> String {
    let items: Vec<&Value> = match diff {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut out = String::new();
    for d in items {
        let Some(m) = d.as_object() else { continue };
        if let Some(p) = m.get("prepared") {
            out.push_str(&text_of(p));
            continue;
        }
        if m.contains_key("before") || m.contains_key("after") {
            let header = |k: &str, dflt: &str| match m.get(k) {
                Some(Value::String(h)) => format!("{dflt}: {h}"),
                _ => dflt.to_string(),
            };
            let before = m.get("before").map(text_of).unwrap_or_default();
            let after = m.get("after").map(text_of).unwrap_or_default();
            out.push_str(&unified(
                &before,
                &after,
                &header("before_header", "before"),
                &header("after_header", "after"),
                3,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_like_difflib() {
        let d = unified("a\nb\nc\n", "a\nB\nc\n", "before", "after", 3);
        assert_eq!(
            d,
            "--- before\n+++ after\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"
        );
        assert_eq!(unified("x\n", "x\n", "b", "a", 3), "");
        assert_eq!(
            render(&serde_json::json!({"before": "1\n", "after": "2\n"})),
            "--- before\n+++ after\n@@ -1 +1 @@\n-1\n+2\n"
        );
    }
}
