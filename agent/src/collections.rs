//! Ansible collections: where they are installed and what a name inside one points at.
//!
//! Collections are searched, as ansible-playbook searches them, in `collections/` beside the
//! playbook, then in `collections_path` (`ANSIBLE_COLLECTIONS_PATH`, ansible.cfg, default
//! `~/.ansible/collections:/usr/share/ansible/collections`). Each of those holds
//! `ansible_collections/<namespace>/<name>/`. A fully qualified name (`ns.coll.etcd_health`)
//! names a module in `plugins/modules/`, a role in `roles/` or a playbook in `playbooks/`
//! (with sub-directories as further dots); a short name is looked up in the collections the
//! `collections:` keyword lists, in order.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// The collections that stand for Ansible's own content: a name in them is a builtin or a
/// module from `library/`, never a file in a collection.
pub const BUILTIN_COLLECTIONS: &[&str] = &["ansible.builtin", "ansible.legacy"];

/// What kind of content a name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// `plugins/modules/<name>`.
    Module,
    /// `roles/<name>`.
    Role,
    /// `playbooks/<name>.yml`.
    Playbook,
}

impl Content {
    fn dir(self) -> &'static str {
        match self {
            Content::Module => "plugins/modules",
            Content::Role => "roles",
            Content::Playbook => "playbooks",
        }
    }
}

/// A name split into its collection (`ns.coll`) and the rest (`etcd_health`, or
/// `sub.dir.playbook` for a playbook), when it is fully qualified: at least three dot-separated
/// parts, the first two valid Python identifiers as collection names must be.
pub fn split_fqcn(name: &str) -> Option<(String, &str)> {
    let mut parts = name.splitn(3, '.');
    let (ns, coll, rest) = (parts.next()?, parts.next()?, parts.next()?);
    let valid = |s: &str| {
        !s.is_empty()
            && !s.starts_with(|c: char| c.is_ascii_digit())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    (valid(ns) && valid(coll) && !rest.is_empty()).then(|| (format!("{ns}.{coll}"), rest))
}

/// Where collections are installed, in search order: `collections/` beside the playbook, then
/// the configured paths. A configured path that ends in `ansible_collections` means its parent,
/// as for Ansible.
pub fn roots(playbook_dir: Option<&Path>, configured: &[PathBuf]) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Some(dir) = playbook_dir {
        roots.push(dir.join("collections"));
    }
    for p in configured {
        let p = if p.file_name().is_some_and(|n| n == "ansible_collections") {
            p.parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| p.clone())
        } else {
            p.clone()
        };
        if !roots.contains(&p) {
            roots.push(p);
        }
    }
    roots
}

/// The directory of collection `coll` (`ns.name`) in the first root that has it.
pub fn collection_dir(roots: &[PathBuf], coll: &str) -> Option<PathBuf> {
    let (ns, name) = coll.split_once('.')?;
    roots
        .iter()
        .map(|r| r.join("ansible_collections").join(ns).join(name))
        .find(|d| d.is_dir())
}

/// The directory that holds `kind` content of collection `coll`, with sub-directories of
/// `rest` (a playbook's `sub.dir.name`) applied; returns it with the last part of `rest`.
pub fn content_dir<'a>(
    roots: &[PathBuf],
    coll: &str,
    kind: Content,
    rest: &'a str,
) -> Option<(PathBuf, &'a str)> {
    let mut dir = collection_dir(roots, coll)?.join(kind.dir());
    let (subdirs, last) = match kind {
        Content::Playbook => rest.rsplit_once('.').map_or(("", rest), |(a, b)| (a, b)),
        _ => ("", rest),
    };
    for sub in subdirs.split('.').filter(|s| !s.is_empty()) {
        dir.push(sub);
    }
    Some((dir, last))
}

/// A role of a collection: `roles/<name>` of the collection named in an FQCN, or of the first
/// collection in `search` that has it. Returns the role's directory and its collection.
pub fn find_role(roots: &[PathBuf], name: &str, search: &[String]) -> Option<(PathBuf, String)> {
    if let Some((coll, rest)) = split_fqcn(name) {
        let (dir, last) = content_dir(roots, &coll, Content::Role, rest)?;
        let path = dir.join(last);
        return path.is_dir().then_some((path, coll));
    }
    search
        .iter()
        .filter(|c| !BUILTIN_COLLECTIONS.contains(&c.as_str()))
        .find_map(|coll| {
            let (dir, _) = content_dir(roots, coll, Content::Role, name)?;
            let path = dir.join(name);
            path.is_dir().then(|| (path, coll.clone()))
        })
}

/// A playbook named by FQCN (`ns.coll.name`, `ns.coll.sub.name`): its file (`name`, or with
/// `.yml`/`.yaml` added) and its collection.
pub fn find_playbook(roots: &[PathBuf], fqcn: &str) -> Option<(PathBuf, String)> {
    let (coll, rest) = split_fqcn(fqcn)?;
    let (dir, last) = content_dir(roots, &coll, Content::Playbook, rest)?;
    let candidates = if last.ends_with(".yml") || last.ends_with(".yaml") {
        vec![last.to_string()]
    } else {
        vec![
            last.to_string(),
            format!("{last}.yml"),
            format!("{last}.yaml"),
        ]
    };
    candidates
        .into_iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .map(|p| (p, coll))
}

/// The value of a `collections` keyword: a list of collection names (a single name is a list
/// of one, as for Ansible).
pub fn keyword_list(v: &Value) -> Result<Vec<String>, String> {
    let items = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            other => Err(format!(
                "'collections' must be a list of collection names, got {other}"
            )),
        })
        .collect()
}

/// The search list Ansible uses for a play, block, role or task: the collection the playbook
/// came from first (when run by FQCN), then the listed ones.
pub fn with_default(default: Option<&str>, listed: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(d) = default {
        out.push(d.to_string());
    }
    for c in listed {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn install(root: &Path, coll: &str, rel: &str) -> PathBuf {
        let (ns, name) = coll.split_once('.').unwrap();
        let p = root
            .join("ansible_collections")
            .join(ns)
            .join(name)
            .join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "x").unwrap();
        p
    }

    #[test]
    fn fully_qualified_names_are_split() {
        assert_eq!(
            split_fqcn("etcd_agent.etcd.etcd_health"),
            Some(("etcd_agent.etcd".into(), "etcd_health"))
        );
        assert_eq!(split_fqcn("a.b.sub.play"), Some(("a.b".into(), "sub.play")));
        assert_eq!(split_fqcn("etcd_health"), None);
        assert_eq!(split_fqcn("a.b"), None);
        assert_eq!(split_fqcn("site.yml"), None);
        assert_eq!(split_fqcn("a-b.c.d"), None);
        assert_eq!(split_fqcn("./x.y.z"), None);
    }

    #[test]
    fn roots_put_the_adjacent_directory_first_and_accept_ansible_collections() {
        let r = roots(
            Some(Path::new("/pb")),
            &[PathBuf::from("/c/ansible_collections"), PathBuf::from("/d")],
        );
        assert_eq!(
            r,
            vec![
                PathBuf::from("/pb/collections"),
                PathBuf::from("/c"),
                PathBuf::from("/d")
            ]
        );
    }

    #[test]
    fn roles_and_playbooks_are_found_in_the_first_root_that_has_them() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        install(a.path(), "x.y", "roles/r/tasks/main.yml");
        install(b.path(), "x.y", "roles/other/tasks/main.yml");
        install(b.path(), "p.q", "playbooks/sub/site.yml");
        let roots = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        let (dir, coll) = find_role(&roots, "x.y.r", &[]).unwrap();
        assert_eq!(
            (dir.clone(), coll.as_str()),
            (a.path().join("ansible_collections/x/y/roles/r"), "x.y")
        );
        // x.y is found in the first root, which has no role `other`: Ansible does not look further
        assert!(find_role(&roots, "x.y.other", &[]).is_none());
        assert!(find_role(&roots, "r", &["x.y".into()]).is_some());
        assert!(find_role(&roots, "r", &["ansible.builtin".into()]).is_none());
        let (pb, coll) = find_playbook(&roots, "p.q.sub.site").unwrap();
        assert!(pb.ends_with("playbooks/sub/site.yml"));
        assert_eq!(coll, "p.q");
        assert!(find_playbook(&roots, "p.q.site").is_none());
    }
}
