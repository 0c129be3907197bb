//! The layout tables match the tree: every file and folder of `agent/src` has a row in
//! agent/README.md's layout table, every path a row names exists, every `*.rs` file a row of a
//! folder names is in that folder; the README's layout block names every top-level folder of the
//! repository and every entry of `modules/src`.

use harness::repo_root;
use std::collections::BTreeSet;
use std::path::Path;

/// The entries of a directory (file and folder names), without hidden ones.
fn entries(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// The text of a README section, from its `## title` line to the next `## `.
fn section(readme: &str, title: &str) -> String {
    let start = readme
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("no section {title:?}"));
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_string()
}

/// The backquoted words of a text.
fn quoted(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn agent_layout_table_matches_agent_src() {
    let root = repo_root().join("agent");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("read agent/README.md");
    let table = section(&readme, "Layout");
    let rows: Vec<(String, String)> = table
        .lines()
        .filter(|l| l.starts_with("| `src/"))
        .map(|l| {
            let mut cells = l.trim_matches('|').splitn(2, '|');
            let first = cells.next().unwrap_or("").to_string();
            let rest = cells.next().unwrap_or("").to_string();
            (first, rest)
        })
        .collect();
    let mut named = BTreeSet::new();
    for (first, text) in &rows {
        for path in quoted(first) {
            let rel = path.trim_end_matches('/');
            assert!(
                root.join(rel).exists(),
                "agent/README.md names {path}, which does not exist"
            );
            named.insert(rel.trim_start_matches("src/").to_string());
            // a folder's row: every file it names is in that folder (or one below)
            if path.ends_with('/') {
                let dir = root.join(rel);
                for word in quoted(text) {
                    let Some(file) = word.strip_suffix(".rs") else {
                        continue;
                    };
                    let file = format!("{file}.rs");
                    let found = dir.join(&file).is_file()
                        || entries(&dir)
                            .iter()
                            .any(|sub| dir.join(sub).join(&file).is_file());
                    assert!(found, "the row of {path} names {file}, not in that folder");
                }
            }
        }
    }
    let missing: Vec<String> = entries(&root.join("src"))
        .into_iter()
        .filter(|e| !named.contains(e))
        .collect();
    assert!(
        missing.is_empty(),
        "agent/src entries without a row in agent/README.md's layout table: {missing:?}"
    );
}

#[test]
fn readme_layout_names_the_top_folders_and_every_module_file() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("read README.md");
    let layout = section(&readme, "Layout");
    let top: BTreeSet<String> = entries(&root)
        .into_iter()
        .filter(|e| root.join(e).is_dir() && e != "target")
        .collect();
    let missing: Vec<&String> = top
        .iter()
        .filter(|d| !layout.contains(&format!("{d}/")))
        .collect();
    assert!(
        missing.is_empty(),
        "top-level folders missing from the README's layout: {missing:?}"
    );
    let modules_row = &layout[layout.find("\nmodules/").expect("a modules/ row")..];
    let modules_row = &modules_row[..modules_row[1..]
        .find("\nagent/")
        .map_or(modules_row.len(), |i| i + 1)];
    for entry in entries(&root.join("modules/src")) {
        let stem = entry.trim_end_matches(".rs");
        assert!(
            modules_row.contains(stem),
            "modules/src/{entry} is not in the README's layout (modules/ row)"
        );
    }
}
