//! Host patterns as Ansible reads them: names, groups, `a:b`, `a:&b`, `a:!b`, globs, `~regex`,
//! and subscripts `group[0]`, `group[1:3]`, `group[-1]`. `--limit` uses the same syntax.

use super::Inventory;
use anyhow::{anyhow, Result};

/// Splits a pattern on `,` or `:` (not inside brackets, and not in `host:port`-less IPv6).
pub fn split(pattern: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut cur = String::new();
    let sep = if pattern.contains(',') { ',' } else { ':' };
    for c in pattern.chars() {
        match c {
            '[' => {
                depth += 1;
                cur.push(c)
            }
            ']' => {
                depth = depth.saturating_sub(1);
                cur.push(c)
            }
            c if c == sep && depth == 0 => {
                terms.push(std::mem::take(&mut cur));
            }
            _ => cur.push(c),
        }
    }
    terms.push(cur);
    terms
        .into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Resolves a pattern to host names in inventory order of matching.
pub fn resolve(inv: &Inventory, pattern: &str) -> Result<Vec<String>> {
    let terms = split(pattern);
    let mut plain = Vec::new();
    let mut and = Vec::new();
    let mut not = Vec::new();
    for t in terms {
        if let Some(rest) = t.strip_prefix('&') {
            and.push(rest.to_string());
        } else if let Some(rest) = t.strip_prefix('!') {
            not.push(rest.to_string());
        } else {
            plain.push(t);
        }
    }
    let mut hosts: Vec<String> = Vec::new();
    if plain.is_empty() && (!and.is_empty() || !not.is_empty()) {
        hosts = inv.group_hosts("all");
    }
    for t in &plain {
        for h in match_term(inv, t)? {
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
    }
    for t in &and {
        let keep = match_term(inv, t)?;
        hosts.retain(|h| keep.contains(h));
    }
    for t in &not {
        let drop = match_term(inv, t)?;
        hosts.retain(|h| !drop.contains(h));
    }
    Ok(hosts)
}

/// Hosts matching one term (no operator prefix).
fn match_term(inv: &Inventory, term: &str) -> Result<Vec<String>> {
    let (base, subscript) = split_subscript(term)?;
    let mut hosts = if base == "all" || base == "*" {
        inv.group_hosts("all")
    } else if let Some(re) = base.strip_prefix('~') {
        let re =
            regex::Regex::new(re).map_err(|e| anyhow!("bad regex in pattern {term:?}: {e}"))?;
        let mut out = Vec::new();
        for g in inv.groups() {
            if re.is_match(&g.name) {
                push_all(&mut out, inv.group_hosts(&g.name));
            }
        }
        for h in inv.hosts() {
            if !h.implicit && re.is_match(&h.name) && !out.contains(&h.name) {
                out.push(h.name.clone());
            }
        }
        out
    } else if base.contains(['*', '?']) || base.contains('[') {
        let mut out = Vec::new();
        for g in inv.groups() {
            if glob_match(base, &g.name) {
                push_all(&mut out, inv.group_hosts(&g.name));
            }
        }
        for h in inv.hosts() {
            if !h.implicit && glob_match(base, &h.name) && !out.contains(&h.name) {
                out.push(h.name.clone());
            }
        }
        out
    } else if inv.group(base).is_some() {
        inv.group_hosts(base)
    } else if inv.host(base).is_some() {
        vec![base.to_string()]
    } else {
        Vec::new()
    };
    if let Some((start, end)) = subscript {
        hosts = apply_subscript(&hosts, start, end);
    }
    Ok(hosts)
}

fn push_all(out: &mut Vec<String>, hosts: Vec<String>) {
    for h in hosts {
        if !out.contains(&h) {
            out.push(h);
        }
    }
}

type Subscript = Option<(i64, Option<i64>)>;

fn split_subscript(term: &str) -> Result<(&str, Subscript)> {
    if term.starts_with('~') || !term.ends_with(']') {
        return Ok((term, None));
    }
    let Some(open) = term.rfind('[') else {
        return Ok((term, None));
    };
    let inner = &term[open + 1..term.len() - 1];
    // `web[01:03]`-like ranges inside names are globs, subscripts are plain numbers.
    let parse = |s: &str| s.trim().parse::<i64>().ok();
    match inner.split_once(':') {
        None => match parse(inner) {
            Some(i) => Ok((&term[..open], Some((i, None)))),
            None => Ok((term, None)),
        },
        Some((a, b)) => {
            let start = if a.is_empty() { Some(0) } else { parse(a) };
            let end = if b.is_empty() { Some(-1) } else { parse(b) };
            match (start, end) {
                (Some(s), Some(e)) => Ok((&term[..open], Some((s, Some(e))))),
                _ => Ok((term, None)),
            }
        }
    }
}

fn apply_subscript(hosts: &[String], start: i64, end: Option<i64>) -> Vec<String> {
    let len = hosts.len() as i64;
    let norm = |i: i64| if i < 0 { len + i } else { i };
    match end {
        None => {
            let i = norm(start);
            if i >= 0 && i < len {
                vec![hosts[i as usize].clone()]
            } else {
                Vec::new()
            }
        }
        Some(e) => {
            let s = norm(start).max(0);
            let e = norm(e).min(len - 1);
            if s > e {
                return Vec::new();
            }
            hosts[s as usize..=e as usize].to_vec()
        }
    }
}

/// Shell-style glob match supporting `*`, `?` and `[...]` classes.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob_at(&p, &t)
}

fn glob_at(p: &[char], t: &[char]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some('*') => (0..=t.len()).any(|i| glob_at(&p[1..], &t[i..])),
        Some('?') => !t.is_empty() && glob_at(&p[1..], &t[1..]),
        Some('[') => {
            let Some(close) = p.iter().position(|&c| c == ']') else {
                return !t.is_empty() && t[0] == '[' && glob_at(&p[1..], &t[1..]);
            };
            let Some(&c) = t.first() else { return false };
            let class = &p[1..close];
            let (negate, class) = match class.first() {
                Some('!') | Some('^') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    if class[i] <= c && c <= class[i + 2] {
                        hit = true;
                    }
                    i += 3;
                } else {
                    if class[i] == c {
                        hit = true;
                    }
                    i += 1;
                }
            }
            hit != negate && glob_at(&p[close + 1..], &t[1..])
        }
        Some(&c) => !t.is_empty() && t[0] == c && glob_at(&p[1..], &t[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv() -> Inventory {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hosts.ini");
        std::fs::write(
            &p,
            "solo\n[etcd]\netcd[1:3]\n[web]\nweb1\netcd1\n[prod:children]\netcd\nweb\n",
        )
        .unwrap();
        Inventory::load(&[p.display().to_string()]).unwrap()
    }

    #[test]
    fn operators_and_subscripts() {
        let inv = inv();
        assert_eq!(resolve(&inv, "etcd").unwrap(), ["etcd1", "etcd2", "etcd3"]);
        assert_eq!(
            resolve(&inv, "etcd:web").unwrap(),
            ["etcd1", "etcd2", "etcd3", "web1"]
        );
        assert_eq!(resolve(&inv, "etcd:&web").unwrap(), ["etcd1"]);
        assert_eq!(resolve(&inv, "etcd:!web").unwrap(), ["etcd2", "etcd3"]);
        assert_eq!(resolve(&inv, "etcd[0]").unwrap(), ["etcd1"]);
        assert_eq!(resolve(&inv, "etcd[-1]").unwrap(), ["etcd3"]);
        assert_eq!(resolve(&inv, "etcd[1:2]").unwrap(), ["etcd2", "etcd3"]);
        assert_eq!(resolve(&inv, "etcd*").unwrap(), ["etcd1", "etcd2", "etcd3"]);
        assert_eq!(resolve(&inv, "~web\\d").unwrap(), ["web1"]);
        assert_eq!(resolve(&inv, "solo,web1").unwrap(), ["solo", "web1"]);
        assert_eq!(resolve(&inv, "!etcd").unwrap(), ["solo", "web1"]);
        assert!(resolve(&inv, "nope").unwrap().is_empty());
    }

    #[test]
    fn globs() {
        assert!(glob_match("e*[12]", "etcd1"));
        assert!(!glob_match("e*[12]", "etcd3"));
        assert!(glob_match("w?b", "web"));
    }
}
