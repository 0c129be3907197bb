//! `group_vars/` and `host_vars/` directories: `NAME`, `NAME.yml`/`.yaml`/`.json`, or `NAME/` dirs.

use super::{Vars, VarsDir};
use crate::error::syntax;
use anyhow::Result;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Loads both `group_vars/` and `host_vars/` under `base` (missing directories are fine).
pub fn load(base: &Path) -> Result<VarsDir> {
    Ok(VarsDir {
        groups: load_kind(&base.join("group_vars"))?,
        hosts: load_kind(&base.join("host_vars"))?,
    })
}

fn load_kind(dir: &Path) -> Result<std::collections::HashMap<String, Vars>> {
    let mut out = std::collections::HashMap::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if file_name.starts_with('.') {
            continue;
        }
        let (name, files) = if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&path)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && vars_file(p))
                .collect();
            files.sort();
            (file_name.to_string(), files)
        } else if vars_file(&path) {
            let stem = match path.extension().and_then(|e| e.to_str()) {
                Some("yml" | "yaml" | "json") => path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("")
                    .to_string(),
                _ => file_name.to_string(),
            };
            (stem, vec![path.clone()])
        } else {
            continue;
        };
        let entry: &mut Vars = out.entry(name).or_default();
        for f in files {
            match crate::yaml::load_value(&f).map_err(crate::vault::parser_error)? {
                Value::Object(m) => super::merge(entry, &m),
                Value::Null => {}
                _ => {
                    return Err(syntax(format!(
                        "{}: variables file must hold a mapping",
                        f.display()
                    )))
                }
            }
        }
    }
    Ok(out)
}

fn vars_file(p: &Path) -> bool {
    match p.extension().and_then(|e| e.to_str()) {
        Some("yml" | "yaml" | "json") | None => true,
        Some(_) => false,
    }
}
