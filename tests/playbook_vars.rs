//! Every playbook variable the tests set is read by something.
//!
//! A test that sets a variable no playbook reads tests nothing: the harness
//! once set `etcd_restore_tmp_dir` while the restore playbook reads
//! `etcd_restore_remote_dir`, so parallel quorum-loss tests shared
//! `/var/tmp` and could restore each other's snapshot. This check finds every
//! `etcd_<name>=` the test sources write (inventory lines and `-e` values) and
//! requires each name to be read by a file under `playbooks/` (a playbook, a
//! tasks file, a role, a template) or by another variable's template in the
//! tests themselves (`{{ etcd_svc }}`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use harness::repo_root;

/// Files below `dir` (recursively) whose name ends with one of `exts`.
fn files_below(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_below(&path, exts, out);
        } else if exts
            .iter()
            .any(|e| path.to_string_lossy().ends_with(&format!(".{e}")))
        {
            out.push(path);
        }
    }
}

/// The `etcd_<name>` identifiers followed by `=` in `text`.
fn assigned_names(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while let Some(found) = text[i..].find("etcd_") {
        let start = i + found;
        let boundary = start == 0 || {
            let c = bytes[start - 1];
            !(c.is_ascii_alphanumeric() || c == b'_')
        };
        let mut end = start + "etcd_".len();
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if boundary && bytes.get(end) == Some(&b'=') && bytes.get(end + 1) != Some(&b'=') {
            names.insert(text[start..end].to_string());
        }
        i = end;
    }
    names
}

/// Whether `text` reads `name` as a whole identifier.
fn mentions(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        !ident(before) && !ident(after)
    })
}

#[test]
fn every_variable_the_tests_set_is_read_by_a_playbook() {
    let root = repo_root();
    let mut test_files = Vec::new();
    files_below(&root.join("tests"), &["rs"], &mut test_files);
    let mut playbook_files = Vec::new();
    files_below(
        &root.join("playbooks"),
        &["yml", "yaml", "j2", "sh", "cfg"],
        &mut playbook_files,
    );
    assert!(
        !playbook_files.is_empty(),
        "no playbook files found under {}",
        root.join("playbooks").display()
    );
    let playbooks: String = playbook_files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let tests: String = test_files
        .iter()
        .filter(|p| !p.ends_with("playbook_vars.rs"))
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");

    let set = assigned_names(&tests);
    assert!(
        set.contains("etcd_data_dir"),
        "the scan found no inventory variables: {set:?}"
    );
    let unread: Vec<&String> = set
        .iter()
        .filter(|name| !mentions(&playbooks, name) && !tests.contains(&format!("{{{{ {name} }}}}")))
        .collect();
    assert!(
        unread.is_empty(),
        "the tests set variables that no playbook reads (misspelt or stale): {unread:?}"
    );
}

#[test]
fn the_scan_finds_assignments_and_whole_names_only() {
    let names = assigned_names(r#"x etcd_a=1 "etcd_b=\"{{ etcd_c }}\"" my_etcd_d=2 etcd_e==3"#);
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        vec!["etcd_a".to_string(), "etcd_b".to_string()]
    );
    assert!(mentions("{{ etcd_a | default(1) }}", "etcd_a"));
    assert!(!mentions("{{ etcd_ab }}", "etcd_a"));
}
