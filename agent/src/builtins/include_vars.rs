//! `include_vars` (controller side): a YAML/JSON file of variables (vault-encrypted or not)
//! found as Ansible finds it (the role's `vars/`, then the playbook's), its mapping returned
//! as `ansible_facts` (under `name` when given) with `ansible_included_var_files`.

use super::files::content::local_source;
use super::spec::{Arg, Check};
use super::{failed, ActionCtx, Params, ResultMap};
use serde_json::{Map, Value};

/// `include_vars`' valid arguments (`VALID_ALL`, file and directory arguments).
pub const ARGS: Check = Check::ValidArgs(&[
    Arg::raw("_raw_params"),
    Arg::raw("file"),
    Arg::raw("name"),
    Arg::raw("hash_behaviour"),
    Arg::raw("dir"),
    Arg::raw("depth"),
    Arg::raw("files_matching"),
    Arg::raw("ignore_files"),
    Arg::raw("extensions"),
    Arg::raw("ignore_unknown_extensions"),
]);

/// Options etcd-agent does not implement (a directory of files, merging).
const UNIMPLEMENTED: &[&str] = &[
    "dir",
    "depth",
    "files_matching",
    "ignore_files",
    "extensions",
    "ignore_unknown_extensions",
    "hash_behaviour",
];

/// Runs `include_vars`.
pub fn run(ctx: &ActionCtx<'_>, p: &Params) -> ResultMap {
    if let Some(opt) = UNIMPLEMENTED.iter().find(|o| p.raw(o).is_some()) {
        return failed(format!(
            "include_vars option '{opt}' is not supported by etcd-agent"
        ));
    }
    let Some(file) = p.str("file").or_else(|| p.str("_raw_params")) else {
        return failed("No file was specified");
    };
    let file = file.trim().to_string();
    let Some(path) = local_source(ctx, &file, "vars") else {
        return failed(format!("Could not find or access '{file}'"));
    };
    let data = match crate::yaml::load_value(&path) {
        Ok(Value::Object(m)) => m,
        Ok(Value::Null) => Map::new(),
        Ok(_) => {
            return failed(format!(
                "{} must be stored as a dictionary/hash",
                path.display()
            ))
        }
        Err(e) => return failed(format!("{e:#}")),
    };
    let facts = match p.str("name").filter(|n| !n.is_empty()) {
        Some(name) => {
            let mut m = Map::new();
            m.insert(name, Value::Object(data));
            m
        }
        None => data,
    };
    let mut m = Map::new();
    m.insert("ansible_facts".into(), Value::Object(facts));
    m.insert(
        "ansible_included_var_files".into(),
        Value::Array(vec![Value::String(path.display().to_string())]),
    );
    m.insert("changed".into(), Value::Bool(false));
    m
}
