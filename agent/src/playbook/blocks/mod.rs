//! The task tree of a play: `block`/`rescue`/`always`, `import_tasks` (static),
//! `include_tasks` (run-time gate, statically loaded file), handlers, and the per-task keywords
//! the executor handles around a task (`loop`/`with_items`/`loop_control`, `notify`/`listen`,
//! `tags`, `throttle`).
//!
//! Block keywords (`when`, `vars`, `tags`, `become`, `ignore_errors`, ...) are inherited by the
//! block's tasks at parse time, as Ansible does.

pub mod roles;
pub mod static_vars;

use super::role::Role;
use super::task::{self, Task};
use crate::error::syntax;
use crate::jinja::value::{ansible_boolean, scalar_string};
use crate::yaml::{Node, NodeKind};
use anyhow::Result;
use roles::PlayRoles;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Keywords handled around the task by the executor.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// `tags` (inherited ones included).
    pub tags: Vec<String>,
    /// `notify`: handler names or `listen` topics.
    pub notify: Vec<String>,
    /// `listen` (handlers only).
    pub listen: Vec<String>,
    /// `loop` / `with_items` / `with_list`: the items (a template or a list).
    pub loop_items: Option<Value>,
    /// True for `with_items` (one level of nested lists is flattened).
    pub flatten_items: bool,
    /// `with_dict`: the items are the dict's `{key, value}` pairs.
    pub dict_items: bool,
    /// `with_<lookup>` for the list lookups of [`crate::jinja::list_lookups`] (`nested`,
    /// `together`, `subelements`, `indexed_items`): the items are that lookup's result.
    pub lookup: Option<String>,
    /// `with_sequence`: the items are the numbers the text describes ([`crate::sequence`]).
    pub sequence_items: bool,
    /// `loop_control.loop_var` (default `item`).
    pub loop_var: String,
    /// `loop_control.index_var`.
    pub index_var: Option<String>,
    /// `loop_control.label`.
    pub label: Option<Value>,
    /// `loop_control.pause`: seconds to wait between items.
    pub pause: Option<Value>,
    /// `loop_control.extended`: `ansible_loop` describes the item's place in the loop.
    pub extended: Option<Value>,
    /// `loop_control.extended_allitems`: whether `ansible_loop.allitems` is set.
    pub extended_allitems: Option<Value>,
    /// `loop_control.break_when`: conditions that end the loop after an item.
    pub break_when: Vec<Value>,
    /// `throttle`.
    pub throttle: Option<Value>,
    /// True for tasks of the `handlers:` section.
    pub handler: bool,
    /// A handler that is an `include_tasks` of a file ansible-core refuses as handlers (a
    /// block in a block): where, for the error it ends the run with when notified.
    pub handler_file_error: Option<String>,
}

/// A task with its executor-side keywords.
#[derive(Debug, Clone)]
pub struct Step {
    /// The task as the host job runs it.
    pub task: Arc<Task>,
    /// Loop, notify, tags, throttle.
    pub extra: Extra,
}

/// A `block` with its `rescue` and `always` sections.
#[derive(Debug, Clone, Default)]
pub struct Block {
    /// `block` items.
    pub block: Vec<Item>,
    /// `rescue` items (run by hosts that failed in `block`).
    pub rescue: Vec<Item>,
    /// `always` items.
    pub always: Vec<Item>,
}

/// One entry of a task list.
#[derive(Debug, Clone)]
pub enum Item {
    /// A task.
    Task(Step),
    /// A block.
    Block(Block),
    /// `include_tasks`: the include itself (a task reported per host), then the file's items
    /// for the hosts that included it.
    Include {
        /// The include pseudo-task (module `include_tasks`).
        step: Step,
        /// The included items.
        items: Vec<Item>,
    },
    /// An `include_tasks` whose file name is a template or which loops: the include itself,
    /// then, per host, the file it names for each item, parsed when the host reaches it.
    Deferred {
        /// The include pseudo-task (module `include_tasks`, with the loop keywords).
        step: Step,
        /// What parsing the file later needs.
        deferred: Arc<Deferred>,
    },
    /// Handlers are flushed here (between `pre_tasks`, `tasks` and `post_tasks`).
    Flush,
}

/// The parse of an [`Item::Deferred`] include, kept until a host names its file.
#[derive(Debug)]
pub struct Deferred {
    /// The file the include is written in (relative names are found from it).
    file: Arc<PathBuf>,
    /// What the included tasks inherit (the include's own `vars` and `tags` included).
    inherit: Inherit,
    /// Nesting depth of the included file.
    depth: usize,
    /// What the play applies to its parsed tasks afterwards, applied to these too.
    after: Mutex<After>,
    /// An `include_role` (the role named by the host's rendered name) instead of a file.
    pub(super) role: Option<RoleInclude>,
}

/// What a deferred `include_role` needs to expand the role a host names.
#[derive(Debug, Clone)]
pub(super) struct RoleInclude {
    /// `tasks_from`.
    pub(super) tasks_from: Option<String>,
    /// `vars_from`, `defaults_from`, `handlers_from`.
    pub(super) files: roles::RoleFiles,
    /// Whether the reference runs once per host (`allow_duplicates: false`).
    pub(super) once: roles::Once,
    /// Where the include is written, for errors.
    pub(super) at: String,
}

/// What a play applies to its whole task tree once parsed ([`super::parse_play`] and
/// `--tags`): recorded on a [`Deferred`] include for the tasks it loads later.
#[derive(Debug, Default, Clone)]
pub struct After {
    /// The play's `tags`.
    pub tags: Vec<String>,
    /// The play's `become_user`.
    pub become_user: Option<String>,
    /// `--tags`/`--skip-tags` and the variables their templates see.
    pub select: Option<TagSelection>,
    /// An `import_playbook`'s `when`, before the tasks' own conditions.
    pub when: Vec<Value>,
}

/// `--tags`/`--skip-tags` as a play applied them.
#[derive(Debug, Default, Clone)]
pub struct TagSelection {
    /// `--tags`.
    pub only: Vec<String>,
    /// `--skip-tags`.
    pub skip: Vec<String>,
    /// The variables templated tags are rendered with (extra vars over play vars).
    pub vars: Map<String, Value>,
}

impl Deferred {
    /// Records what the play applies afterwards (see [`After`]).
    pub fn after(&self, change: impl FnOnce(&mut After)) {
        change(&mut self.after.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Parses the file `rel` (as rendered for a host) with `vars` (the loop variables) on top
    /// of what the include passes down; errors are Ansible's for a file it cannot include.
    /// For an `include_role`, `rel` is the role's name and `tasks_from` its tasks file as
    /// rendered for the host.
    pub fn load(
        &self,
        rel: &str,
        tasks_from: Option<&str>,
        vars: Map<String, Value>,
    ) -> Result<Vec<Item>> {
        if let Some(include) = &self.role {
            let mut inner = self.inherit.clone();
            inner.vars.extend(vars);
            let mut items = roles::expand_included(rel, tasks_from, include, &inner)?;
            let after = self.after.lock().unwrap_or_else(|e| e.into_inner()).clone();
            super::finish_loaded(&mut items, &after);
            return Ok(items);
        }
        let role = self.inherit.role.as_deref();
        let playbook = playbook_dir(&self.inherit);
        let path = include_candidates(rel, &self.file, role, playbook.as_deref())
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(|| {
                syntax(format!(
                    "Could not find or access '{rel}' on the Ansible Controller."
                ))
            })?;
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        let nodes = task_nodes(&path)?;
        let mut inner = self.inherit.clone();
        inner.vars.extend(vars);
        let mut items = parse_items(&nodes, &Arc::new(path), &inner, self.depth)?;
        let after = self.after.lock().unwrap_or_else(|e| e.into_inner()).clone();
        super::finish_loaded(&mut items, &after);
        Ok(items)
    }
}

impl Item {
    /// Every task in the tree, in order (for `--list-tasks` and module checks).
    pub fn flatten(items: &[Item], out: &mut Vec<Task>) {
        for i in items {
            match i {
                Item::Task(s) => out.push((*s.task).clone()),
                Item::Block(b) => {
                    Item::flatten(&b.block, out);
                    Item::flatten(&b.rescue, out);
                    Item::flatten(&b.always, out);
                }
                Item::Include { step, items } => {
                    out.push((*step.task).clone());
                    Item::flatten(items, out);
                }
                Item::Deferred { step, .. } => out.push((*step.task).clone()),
                Item::Flush => {}
            }
        }
    }

    /// `(display name, sorted tags)` of every task in the tree, as `--list-tasks` shows them.
    pub fn tagged_tasks(items: &[Item], out: &mut Vec<(String, Vec<String>)>) {
        let entry = |s: &Step| {
            let mut tags = s.extra.tags.clone();
            tags.sort();
            tags.dedup();
            (s.task.display_name(), tags)
        };
        for i in items {
            match i {
                Item::Task(s) => out.push(entry(s)),
                Item::Include { step, .. } | Item::Deferred { step, .. } => out.push(entry(step)),
                Item::Block(b) => {
                    Item::tagged_tasks(&b.block, out);
                    Item::tagged_tasks(&b.rescue, out);
                    Item::tagged_tasks(&b.always, out);
                }
                Item::Flush => {}
            }
        }
    }

    /// Keeps the items `keep` accepts (tags selection); empty blocks disappear.
    pub fn retain(items: &mut Vec<Item>, keep: &dyn Fn(&Step) -> bool) {
        items.retain_mut(|i| match i {
            Item::Task(s) => keep(s),
            Item::Block(b) => {
                Item::retain(&mut b.block, keep);
                Item::retain(&mut b.rescue, keep);
                Item::retain(&mut b.always, keep);
                !(b.block.is_empty() && b.rescue.is_empty() && b.always.is_empty())
            }
            // a dynamic include runs only when its own tags select it (they are not its
            // tasks' tags, and its tasks' tags do not select it), as in Ansible
            Item::Include { step, items } => {
                Item::retain(items, keep);
                keep(step)
            }
            Item::Deferred { step, .. } => keep(step),
            Item::Flush => true,
        });
    }
}

/// What a block or import passes down to its tasks.
#[derive(Debug, Clone, Default)]
pub struct Inherit {
    pub(super) when: Vec<Value>,
    pub(super) vars: Map<String, Value>,
    /// Role parameters of the role and the roles it is a dependency of (above `set_fact`).
    pub(super) params: Map<String, Value>,
    pub(super) tags: Vec<String>,
    pub(super) keywords: Vec<(String, Value)>,
    /// The role whose tasks these are.
    pub(super) role: Option<Arc<Role>>,
    /// The role reference they came from, when it runs once per host (see
    /// [`crate::playbook::Task::role_instance`]).
    pub(super) role_instance: Option<usize>,
    /// The run of `role` these tasks belong to (see [`crate::playbook::Task::role_run`]).
    pub(super) role_run: Option<usize>,
    /// The roles that included or imported `role`, the nearest first.
    pub(super) parent_roles: Vec<Arc<Role>>,
    /// The play's roles, shared by everything parsed for the play (`import_role` adds to it).
    pub(super) play_roles: Option<Arc<Mutex<PlayRoles>>>,
    /// The `collections` search list in effect.
    pub(super) collections: Vec<String>,
    /// `notify` of an enclosing `import_tasks`: for the tasks that notify nothing themselves.
    pub(super) notify: Vec<String>,
    /// The collection the playbook was run from (`ansible-playbook ns.coll.playbook`): first
    /// in every search list.
    pub(super) default_collection: Option<String>,
    /// The play's vars (with its `vars_files` and the `import_playbook` vars) and the extra
    /// vars: what names templated at parse time see (see [`static_vars`]).
    pub(super) parse_vars: Arc<(Map<String, Value>, Map<String, Value>)>,
}

impl Inherit {
    /// What a play hands down to its tasks and handlers: the keywords of
    /// [`PLAY_INHERITED`] it sets.
    /// `collections` is the play's search list, `default_collection` the collection the
    /// playbook came from.
    /// `parse_vars`: the play's variables and the extra vars, for names templated while
    /// the play is parsed.
    pub fn from_play(
        keywords: Vec<(String, Value)>,
        play_roles: Arc<Mutex<PlayRoles>>,
        (collections, default_collection): (Vec<String>, Option<String>),
        parse_vars: (Map<String, Value>, Map<String, Value>),
    ) -> Self {
        Inherit {
            keywords,
            parse_vars: Arc::new(parse_vars),
            play_roles: Some(play_roles),
            collections: crate::collections::with_default(
                default_collection.as_deref(),
                collections,
            ),
            default_collection,
            ..Inherit::default()
        }
    }

    /// A search list written on a block or task, with the playbook's collection first.
    pub(super) fn own_collections(&self, listed: Vec<String>) -> Vec<String> {
        crate::collections::with_default(self.default_collection.as_deref(), listed)
    }
}

/// Play keywords its tasks inherit as they would a block's; `become`, `become_user`,
/// `remote_user`, `environment` and `connection` are play fields of their own.
pub const PLAY_INHERITED: &[&str] = &[
    "ignore_errors",
    "ignore_unreachable",
    "no_log",
    "check_mode",
    "diff",
    "run_once",
    "timeout",
    "throttle",
];

/// Block keywords inherited by tasks (applied when the task does not set them itself).
pub(super) const INHERITED: &[&str] = &[
    "any_errors_fatal",
    "become",
    "become_user",
    "ignore_errors",
    "environment",
    "no_log",
    "check_mode",
    "diff",
    "delegate_to",
    "run_once",
    "remote_user",
    "ignore_unreachable",
    "connection",
    "timeout",
    "delegate_facts",
    "throttle",
];

pub(super) fn list_of(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// `tags: a,b`, `tags: [a, b]`.
pub fn tag_list(v: &Value) -> Vec<String> {
    list_of(v)
        .iter()
        .flat_map(|t| {
            let text = scalar_string(t);
            // a template is one tag until it is rendered (see `tag_template`)
            if crate::jinja::value::is_template(&text) {
                return vec![text.trim().to_string()];
            }
            text.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

pub(super) fn at(file: &Path, node: &Node) -> String {
    format!("{}:{}:{}", file.display(), node.line, node.col)
}

/// Parses a list of task entries.
pub fn parse_items(
    nodes: &[Node],
    file: &Arc<PathBuf>,
    inherit: &Inherit,
    depth: usize,
) -> Result<Vec<Item>> {
    if depth > 30 {
        return Err(syntax(format!(
            "{}: tasks nested too deeply (an import or include cycle?)",
            file.display()
        )));
    }
    let mut out = Vec::new();
    for node in nodes {
        out.extend(parse_entry(node, file, inherit, depth)?);
    }
    Ok(out)
}

fn has(entries: &[(String, Node)], keys: &[&str]) -> bool {
    entries.iter().any(|(k, _)| keys.contains(&k.as_str()))
}

fn parse_entry(
    node: &Node,
    file: &Arc<PathBuf>,
    inherit: &Inherit,
    depth: usize,
) -> Result<Vec<Item>> {
    let Some(entries) = node.as_map() else {
        return Err(syntax(format!(
            "{}: a task must be a mapping",
            at(file, node)
        )));
    };
    if has(entries, &["block"]) {
        return Ok(vec![Item::Block(parse_block(
            node, entries, file, inherit, depth,
        )?)]);
    }
    let import = ["import_tasks", "ansible.builtin.import_tasks"];
    let include = [
        "include_tasks",
        "ansible.builtin.include_tasks",
        "include",
        "ansible.builtin.include",
    ];
    if has(entries, &import) || has(entries, &include) {
        return parse_import(node, entries, file, inherit, depth, has(entries, &import));
    }
    if has(entries, &["import_role", "ansible.builtin.import_role"]) {
        return roles::import_role(node, entries, file, inherit, false);
    }
    if has(entries, &["include_role", "ansible.builtin.include_role"]) {
        return roles::import_role(node, entries, file, inherit, true);
    }
    Ok(vec![Item::Task(parse_step(node, entries, file, inherit)?)])
}

fn parse_block(
    node: &Node,
    entries: &[(String, Node)],
    file: &Arc<PathBuf>,
    inherit: &Inherit,
    depth: usize,
) -> Result<Block> {
    let mut inner = inherit.clone();
    let mut sections: [Option<&Node>; 3] = [None, None, None];
    for (k, v) in entries {
        let val = v.to_json();
        match k.as_str() {
            "block" => sections[0] = Some(v),
            "rescue" => sections[1] = Some(v),
            "always" => sections[2] = Some(v),
            "name" => {}
            "collections" => {
                let listed = crate::collections::keyword_list(&val)
                    .map_err(|e| syntax(format!("{}: {e}", at(file, v))))?;
                inner.collections = inherit.own_collections(listed);
            }
            "when" => inner.when.extend(list_of(&val)),
            "vars" => match val {
                Value::Object(m) => inner.vars.extend(m),
                Value::Null => {}
                _ => {
                    return Err(syntax(format!(
                        "{}: block vars must be a mapping",
                        at(file, v)
                    )))
                }
            },
            "tags" => inner.tags.extend(tag_list(&val)),
            // tasks that notify nothing themselves notify the block's handlers
            "notify" => inner.notify = tag_list(&val),
            "become_method" => {
                let m = scalar_string(&val);
                crate::playbook::task::check_become_method(&m)
                    .map_err(|e| syntax(format!("{}: {e}", at(file, v))))?;
                inner.keywords.retain(|(x, _)| x != k);
                inner.keywords.push((k.to_string(), val));
            }
            k if INHERITED.contains(&k) => {
                inner.keywords.retain(|(x, _)| x != k);
                inner.keywords.push((k.to_string(), val));
            }
            other => {
                return Err(syntax(format!(
                    "{}: keyword '{other}' on a block is not supported by etcd-agent",
                    at(file, v)
                )))
            }
        }
    }
    let mut out = Block::default();
    for (i, section) in sections.iter().enumerate() {
        let Some(n) = section else { continue };
        if n.is_null() {
            continue;
        }
        let Some(seq) = n.as_seq() else {
            return Err(syntax(format!(
                "{}: a block section must be a list of tasks",
                at(file, n)
            )));
        };
        let items = parse_items(seq, file, &inner, depth + 1)?;
        match i {
            0 => out.block = items,
            1 => out.rescue = items,
            _ => out.always = items,
        }
    }
    let _ = node;
    Ok(out)
}

/// Loads a tasks file relative to `file`'s directory.
fn load_tasks_file(
    rel: &str,
    file: &Path,
    node: &Node,
    what: &str,
    (role, playbook): (Option<&Role>, Option<&Path>),
) -> Result<(Arc<PathBuf>, Vec<Node>)> {
    if rel.is_empty() || crate::jinja::value::is_template(rel) {
        return Err(syntax(format!(
            "{}: {what} needs a literal file name (templated names are not supported by etcd-agent)",
            at(file, node)
        )));
    }
    let path = include_candidates(rel, file, role, playbook)
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            file.parent()
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(rel)
        });
    if !path.is_file() {
        // ansible-core's words for a file it cannot read
        let p = path.display();
        return Err(crate::error::Fatal::Other(format!(
            "{}: Could not find or access '{p}' on the Ansible Controller: Unable to retrieve file contents.\n\
             Could not find or access '{p}' on the Ansible Controller.\n\
             If you are using a module and expect the file to exist on the remote, see the remote_src option: [Errno 2] No such file or directory: '{p}'",
            at(file, node),
        ))
        .into());
    }
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    let nodes = task_nodes(&path)?;
    Ok((Arc::new(path), nodes))
}

/// The directory of the playbook being parsed (ansible-core's loader basedir).
fn playbook_dir(inherit: &Inherit) -> Option<PathBuf> {
    inherit.play_roles.as_ref().map(|r| {
        r.lock()
            .unwrap_or_else(|e| e.into_inner())
            .playbook_dir
            .clone()
    })
}

/// Where an `import_tasks`/`include_tasks` of `rel` written in `file` may be, in the order
/// Ansible searches (`DataLoader.path_dwim_relative` with `is_role`): in a role, the role's
/// `handlers/` (for a file under `handlers/`) or `tasks/` directory, the including file's
/// directory, the role's `tasks/`, the role's directory, then the playbook's directory's
/// `handlers/` or `tasks/` and the playbook's directory itself; elsewhere the including file's
/// directory.
fn include_candidates(
    rel: &str,
    file: &Path,
    role: Option<&Role>,
    playbook: Option<&Path>,
) -> Vec<PathBuf> {
    let own_dir = file.parent().map(PathBuf::from).unwrap_or_default();
    let file = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let Some(role_dir) = role
        .map(|r| std::fs::canonicalize(&r.path).unwrap_or_else(|_| r.path.clone()))
        .filter(|dir| file.starts_with(dir))
    else {
        return vec![own_dir.join(rel)];
    };
    if Path::new(rel).is_absolute() {
        return vec![PathBuf::from(rel)];
    }
    let dirname = if file.starts_with(role_dir.join("handlers")) {
        "handlers"
    } else {
        "tasks"
    };
    let mut out = vec![role_dir.join(dirname).join(rel), own_dir.join(rel)];
    if !rel.ends_with(dirname) {
        out.push(role_dir.join("tasks").join(rel));
    }
    out.push(role_dir.join(rel));
    // then, as `path_dwim` does, relative to the playbook's directory
    if let Some(base) = playbook {
        out.push(base.join(dirname).join(rel));
        out.push(base.join(rel));
    }
    out
}

/// A tasks file's list of tasks (an import's, a role's `tasks/` or `handlers/` file).
pub(super) fn task_nodes(path: &Path) -> Result<Vec<Node>> {
    let mut nodes = Vec::new();
    for doc in crate::yaml::load_file(path)? {
        match doc.kind {
            NodeKind::Seq(items) => nodes.extend(items),
            _ if doc.is_null() => {}
            _ => {
                // Ansible's words, and the offending line as its error shows it
                let origin = crate::yaml::TaskOrigin {
                    file: Arc::new(path.to_path_buf()),
                    line: doc.line,
                    col: doc.col,
                };
                let shown = crate::output::text::snippet(&origin)
                    .map(|s| format!("\n\n{s}"))
                    .unwrap_or_default();
                return Err(syntax(format!(
                    "{}:{}: included task files must contain a list of tasks{shown}",
                    path.display(),
                    doc.line
                )));
            }
        }
    }
    Ok(nodes)
}

fn parse_import(
    node: &Node,
    entries: &[(String, Node)],
    file: &Arc<PathBuf>,
    inherit: &Inherit,
    depth: usize,
    is_import: bool,
) -> Result<Vec<Item>> {
    let what = if is_import {
        "import_tasks"
    } else {
        "include_tasks"
    };
    let mut rel = String::new();
    let mut when = Vec::new();
    let mut vars = Map::new();
    let mut tags = Vec::new();
    let mut name = None;
    let mut looping = Extra {
        loop_var: "item".into(),
        ..Extra::default()
    };
    // keywords of the include task itself
    let mut own: Vec<(String, Value)> = Vec::new();
    let mut imported: Vec<(String, Value)> = Vec::new();
    let mut imported_notify: Vec<String> = Vec::new();
    let mut apply: Option<Map<String, Value>> = None;
    let mut action_key = what.to_string();
    for (k, v) in entries {
        let val = v.to_json();
        match k.as_str() {
            "import_tasks"
            | "ansible.builtin.import_tasks"
            | "include_tasks"
            | "ansible.builtin.include_tasks"
            | "include"
            | "ansible.builtin.include" => {
                action_key = k.clone();
                rel = match &val {
                    Value::Object(m) => {
                        // `apply` (keywords for the included tasks, include_tasks only); any
                        // other option would otherwise be dropped without a word
                        if let (false, Some(Value::Object(a))) = (is_import, m.get("apply")) {
                            apply = Some(a.clone());
                        }
                        if let Some(other) = m
                            .keys()
                            .find(|k| *k != "file" && (is_import || *k != "apply"))
                        {
                            if other == "apply" {
                                // ansible-core's words
                                return Err(syntax(format!(
                                    "{}: Invalid options for {what}: apply",
                                    at(file, v)
                                )));
                            }
                            return Err(syntax(format!(
                                "{}: option '{other}' of {what} is not supported by etcd-agent",
                                at(file, v)
                            )));
                        }
                        m.get("file").map(scalar_string).unwrap_or_default()
                    }
                    // the file may come in `args`
                    Value::Null => rel.clone(),
                    other => scalar_string(other),
                }
            }
            "name" => name = Some(scalar_string(&val)),
            "when" => when = list_of(&val),
            "tags" => tags = tag_list(&val),
            "vars" => {
                if let Value::Object(m) = val {
                    vars = m
                }
            }
            "ignore_errors" | "no_log" | "register" | "timeout" | "run_once" if !is_import => {
                own.push((k.clone(), val))
            }
            // a handler that is an include listens to topics as any handler does (a role's
            // also to them prefixed with the role's name)
            "listen" if !is_import => {
                own.push((k.clone(), Value::from(listen_topics(&val, inherit))))
            }
            // the include's options given as `args` (`file`, `apply`)
            "args" if !is_import => {
                let Value::Object(m) = val else {
                    return Err(syntax(format!(
                        "{}: args of {what} must be a mapping",
                        at(file, v)
                    )));
                };
                for (arg, value) in m {
                    match (arg.as_str(), value) {
                        ("apply", Value::Object(a)) => apply = Some(a),
                        ("file", f) if rel.is_empty() => rel = scalar_string(&f),
                        ("file", _) => {}
                        (other, _) => {
                            return Err(syntax(format!(
                                "{}: Invalid options for {what}: {other}",
                                at(file, v)
                            )))
                        }
                    }
                }
            }
            // no debugger: only its "off" values are accepted
            "debugger" if !is_import && (val.is_null() || val == "never") => {}
            // an import's keywords are its tasks', as a block's
            "notify" if is_import => imported_notify = tag_list(&val),
            k if is_import && INHERITED.contains(&k) => imported.push((k.to_string(), val)),
            other if !is_import && loop_key(other, &val, v, file, &mut looping)? => {}
            other if is_import && (other == "loop" || other.starts_with("with_")) => {
                return Err(syntax(format!(
                    "{}: You cannot use loops on 'import_tasks' statements. You should use 'include_tasks' instead.",
                    at(file, v)
                )))
            }
            other => {
                return Err(syntax(format!(
                    "{}: keyword '{other}' on {what} is not supported by etcd-agent",
                    at(file, v)
                )))
            }
        }
    }
    if rel.trim().is_empty() {
        // ansible-core's words
        return Err(syntax(format!(
            "{}: No file specified for {action_key}",
            at(file, node)
        )));
    }
    let mut inner = inherit.clone();
    // an include's `vars` are include params (above set_fact and include_vars); an import's
    // are its tasks' vars
    if is_import {
        inner.vars.extend(vars.clone());
        // an import's tags are its tasks'; an include's select the include only (its
        // tasks are selected by their own tags, or by `apply`'s)
        inner.tags.extend(tags.clone());
    } else {
        inner.params.extend(vars.clone());
    }
    // a templated file name or a loop: the file is found and parsed when a host reaches the
    // include, once per distinct file and item (Ansible's IncludedFile)
    if !is_import
        && (crate::jinja::value::is_template(&rel)
            || looping.loop_items.is_some()
            || apply.is_some())
    {
        let vars_passed = vars.clone();
        let name = name.unwrap_or_else(|| "include_tasks".into());
        // a dynamic include hands its tasks its vars, not its own tags or `when` (they
        // select and gate the include), as ansible-core's parent lookup skips it
        let mut passed = inherit.clone();
        passed.params.extend(vars_passed);
        if let Some(apply) = &apply {
            passed = applied(passed, apply, file, node)?;
        }
        let deferred = Deferred {
            file: file.clone(),
            inherit: passed,
            depth: depth + 1,
            after: Mutex::new(After::default()),
            role: None,
        };
        return Ok(vec![deferred_item(
            ("include_tasks", &name, &rel),
            (node, file),
            inherit,
            (when, vars, tags),
            (&own, looping),
            deferred,
        )]);
    }
    if is_import {
        // an import's templated name takes what is known when the play loads
        rel = static_vars::resolve(&rel, &inner, "import_tasks file", &at(file, node))?;
    }
    let loaded = load_tasks_file(
        &rel,
        file,
        node,
        what,
        (inherit.role.as_deref(), playbook_dir(inherit).as_deref()),
    );
    if is_import {
        let (inner_file, nodes) = loaded?;
        inner.when.extend(when);
        for (k, v) in imported {
            inner.keywords.retain(|(x, _)| *x != k);
            inner.keywords.push((k, v));
        }
        if !imported_notify.is_empty() {
            inner.notify = imported_notify;
        }
        return parse_items(&nodes, &inner_file, &inner, depth + 1);
    }
    // the include itself runs as a task; its `when` gates the included tasks. Its file is
    // Ansible's to load when a host reaches it: a literal name that cannot be loaded (missing,
    // not a list of tasks) fails the include on the hosts that run it, not the whole playbook
    let (items, load_error) = match loaded {
        // what the file holds is loaded with it: a parser error in it is the run's, any other
        // (a file it imports that is not there) fails the include where it runs
        Ok((inner_file, nodes)) => match parse_items(&nodes, &inner_file, &inner, depth + 1) {
            Ok(items) => (items, None),
            Err(e) if !crate::error::is_parser_error(&e) => (Vec::new(), Some(format!("{e:#}"))),
            Err(e) => return Err(e),
        },
        Err(e) if !rel.is_empty() && !crate::jinja::value::is_template(&rel) => {
            (Vec::new(), Some(format!("{e:#}")))
        }
        Err(e) => return Err(e),
    };
    let name = name.unwrap_or_else(|| "include_tasks".into());
    let mut item = include_item(
        ("include_tasks", &name, &rel),
        (node, file),
        inherit,
        (when, vars, tags),
        items,
    );
    if let Item::Include { step, .. } = &mut item {
        set_own_keywords(step, &own);
    }
    if let (Some(why), Item::Include { step, .. }) = (load_error, &mut item) {
        Arc::make_mut(&mut step.task)
            .args
            .insert("_load_error".into(), Value::String(why));
    }
    Ok(vec![item])
}

/// A handler's `listen` topics; a role's handler also listens to them prefixed with the
/// role's name.
fn listen_topics(val: &Value, inherit: &Inherit) -> Vec<String> {
    let mut topics = tag_list(val);
    if let Some(role) = &inherit.role {
        let plain = topics.clone();
        for p in role.notify_prefixes() {
            topics.extend(plain.iter().map(|t| format!("{p}{t}")));
        }
    }
    topics
}

/// `include_tasks`' `apply`: keywords its tasks get as if a block around them set them
/// (`when`, `vars`, `tags`, `notify` and the keywords blocks hand down).
pub(super) fn applied(
    mut inner: Inherit,
    apply: &Map<String, Value>,
    file: &Path,
    node: &Node,
) -> Result<Inherit> {
    for (k, val) in apply {
        match k.as_str() {
            "when" => inner.when.extend(list_of(val)),
            "vars" => {
                if let Value::Object(m) = val {
                    inner.vars.extend(m.clone());
                }
            }
            "tags" => inner.tags.extend(tag_list(val)),
            "notify" => inner.notify = tag_list(val),
            k if INHERITED.contains(&k) => {
                inner.keywords.retain(|(x, _)| x != k);
                inner.keywords.push((k.to_string(), val.clone()));
            }
            other => {
                return Err(syntax(format!(
                    "{}: keyword '{other}' in include_tasks apply is not supported by etcd-agent",
                    at(file, node)
                )))
            }
        }
    }
    Ok(inner)
}

/// The keywords an `include_tasks` takes for itself (`ignore_errors`, `no_log`, `register`,
/// `timeout`).
pub(super) fn set_own_keywords(step: &mut Step, own: &[(String, Value)]) {
    let task = Arc::make_mut(&mut step.task);
    for (k, v) in own {
        match k.as_str() {
            "ignore_errors" => task.ignore_errors = v.clone(),
            "no_log" => task.no_log = ansible_boolean(v),
            "register" => task.register = Some(scalar_string(v)),
            "timeout" => task.timeout = Some(v.clone()),
            "run_once" => task.run_once = ansible_boolean(v),
            "listen" => step.extra.listen = tag_list(v),
            _ => {}
        }
    }
}

/// The item of an `include_tasks` or `include_role`: the include itself, a task whose `when`
/// gates `items`.
pub(super) fn include_item(
    (action, name, what): (&str, &str, &str),
    (node, file): (&Node, &Arc<PathBuf>),
    inherit: &Inherit,
    (when, vars, tags): (Vec<Value>, Map<String, Value>, Vec<String>),
    items: Vec<Item>,
) -> Item {
    Item::Include {
        step: include_step(
            (action, name, what),
            (node, file),
            inherit,
            (when, vars, tags),
        ),
        items,
    }
}

/// The deferred item of an `include_tasks`/`include_role` with a loop or a templated name:
/// the include step with its own keywords (`own`) and loop keywords (`looping`), and what
/// parsing its file or role later needs.
pub(super) fn deferred_item(
    (action, name, what): (&str, &str, &str),
    (node, file): (&Node, &Arc<PathBuf>),
    inherit: &Inherit,
    (when, vars, tags): (Vec<Value>, Map<String, Value>, Vec<String>),
    (own, looping): (&[(String, Value)], Extra),
    deferred: Deferred,
) -> Item {
    let mut step = include_step(
        (action, name, what),
        (node, file),
        inherit,
        (when, vars, tags),
    );
    set_own_keywords(&mut step, own);
    step.extra = Extra {
        tags: step.extra.tags,
        ..looping
    };
    Item::Deferred {
        step,
        deferred: Arc::new(deferred),
    }
}

/// The include pseudo-task of [`include_item`] and [`deferred_item`].
fn include_step(
    (action, name, what): (&str, &str, &str),
    (node, file): (&Node, &Arc<PathBuf>),
    inherit: &Inherit,
    (when, vars, tags): (Vec<Value>, Map<String, Value>, Vec<String>),
) -> Step {
    let mut task = Task::synthetic(
        action,
        name,
        crate::yaml::TaskOrigin {
            file: file.clone(),
            line: node.line,
            col: node.col,
        },
    );
    task.args
        .insert("_raw_params".into(), Value::String(what.to_string()));
    task.role = inherit.role.clone();
    task.role_instance = inherit.role_instance;
    task.role_run = inherit.role_run;
    task.parent_roles = inherit.parent_roles.clone();
    task.when = inherit.when.clone();
    task.when.extend(when);
    let mut v = inherit.vars.clone();
    v.extend(vars);
    task.vars = v;
    task.params = inherit.params.clone();
    let mut all_tags = inherit.tags.clone();
    all_tags.extend(tags);
    Step {
        task: Arc::new(task),
        extra: Extra {
            tags: all_tags,
            loop_var: "item".into(),
            ..Extra::default()
        },
    }
}

/// Reads a loop keyword (`loop`, `with_items`, `with_list`, `with_dict`, `with_sequence`,
/// `loop_control`) into `extra`; false for any other key.
pub(super) fn loop_key(
    k: &str,
    val: &Value,
    v: &Node,
    file: &Path,
    extra: &mut Extra,
) -> Result<bool> {
    let val = val.clone();
    match k {
        "loop" => extra.loop_items = Some(val),
        // the list lookup: a value that is not a list is one item, unlike `loop`
        "with_list" => {
            extra.loop_items = Some(val);
            extra.lookup = Some("list".into());
        }
        "with_items" => {
            extra.loop_items = Some(val);
            extra.flatten_items = true;
        }
        "with_dict" => {
            extra.loop_items = Some(val);
            extra.dict_items = true;
        }
        "with_sequence" => {
            extra.loop_items = Some(val);
            extra.sequence_items = true;
        }
        k if k.strip_prefix("with_").is_some_and(is_loop_lookup) => {
            extra.loop_items = Some(val);
            extra.lookup = k.strip_prefix("with_").map(str::to_string);
        }
        "loop_control" => {
            let Value::Object(m) = val else {
                return Err(syntax(format!(
                    "{}: loop_control must be a mapping",
                    at(file, v)
                )));
            };
            for (ck, cv) in m {
                match ck.as_str() {
                    "loop_var" => extra.loop_var = scalar_string(&cv),
                    "index_var" => extra.index_var = Some(scalar_string(&cv)),
                    "label" => extra.label = Some(cv),
                    "pause" => extra.pause = Some(cv),
                    "extended" => extra.extended = Some(cv),
                    "extended_allitems" => extra.extended_allitems = Some(cv),
                    "break_when" => extra.break_when = list_of(&cv),
                    other => {
                        return Err(syntax(format!(
                            "{}: loop_control '{other}' is not supported by etcd-agent (loop_var, index_var, label, pause, extended, extended_allitems, break_when)",
                            at(file, v)
                        )))
                    }
                }
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Keys taken off the task before [`task::parse`] sees it.
fn is_extra_key(k: &str) -> bool {
    matches!(
        k,
        "loop"
            | "loop_control"
            | "with_items"
            | "with_dict"
            | "with_sequence"
            | "with_list"
            | "notify"
            | "listen"
            | "tags"
            | "throttle"
    ) || k.strip_prefix("with_").is_some_and(is_loop_lookup)
}

/// Whether `with_<name>` names a lookup the agent implements (`with_X: terms` loops over
/// `query('X', *terms)`, as Ansible's rule is).
fn is_loop_lookup(name: &str) -> bool {
    crate::jinja::list_lookups::short(name).is_some()
        || (crate::jinja::lookups::SUPPORTED.contains(&name) && name != "config")
}

fn parse_step(
    node: &Node,
    entries: &[(String, Node)],
    file: &Arc<PathBuf>,
    inherit: &Inherit,
) -> Result<Step> {
    let mut extra = Extra {
        loop_var: "item".into(),
        tags: inherit.tags.clone(),
        ..Extra::default()
    };
    let mut kept = Vec::new();
    for (k, v) in entries {
        if !is_extra_key(k) {
            kept.push((k.clone(), v.clone()));
            continue;
        }
        let val = v.to_json();
        if loop_key(k, &val, v, file, &mut extra)? {
            continue;
        }
        match k.as_str() {
            "notify" => extra.notify = tag_list(&val),
            "listen" => extra.listen = listen_topics(&val, inherit),
            "tags" => extra.tags.extend(tag_list(&val)),
            "throttle" => extra.throttle = Some(val),
            _ => {}
        }
    }
    // a block's or play's `throttle` unless the task has its own (ansible-core's inheritance)
    if extra.throttle.is_none() {
        extra.throttle = inherit
            .keywords
            .iter()
            .rev()
            .find(|(k, _)| k == "throttle")
            .map(|(_, v)| v.clone());
    }
    for (k, _) in &kept {
        if k.starts_with("with_") {
            return Err(syntax(format!(
                "{}: '{k}' is not supported by etcd-agent (loop, with_items, with_list, with_dict, with_sequence, with_indexed_items, with_together, with_nested, with_subelements, with_first_found, with_fileglob, with_lines, with_pipe, with_env, with_file)",
                at(file, node)
            )));
        }
    }
    if extra.notify.is_empty() {
        extra.notify = inherit.notify.clone();
    }
    let stripped = Node {
        line: node.line,
        col: node.col,
        kind: NodeKind::Map(kept),
    };
    let mut t = task::parse(&stripped, file)?;
    if t.module() == "meta" {
        let action = t
            .args
            .get("_raw_params")
            .map(scalar_string)
            .unwrap_or_default();
        // ansible-core refuses it when it loads the tasks
        if action.trim() == "end_role" && inherit.role.is_none() {
            return Err(syntax(format!(
                "Cannot execute 'end_role' from outside of a role\nOrigin: {}",
                at(file, node)
            )));
        }
        if !matches!(
            action.trim(),
            "noop"
                | "flush_handlers"
                | "end_play"
                | "end_host"
                | "end_batch"
                | "clear_host_errors"
                | "reset_connection"
                | "refresh_inventory"
                | "end_role"
                | "role_complete"
        ) {
            return Err(syntax(format!(
                "{}: meta: {action} is not supported by etcd-agent (noop, flush_handlers, end_play, end_host, end_batch, end_role, clear_host_errors, reset_connection, refresh_inventory)",
                at(file, node)
            )));
        }
        if extra.loop_items.is_some() {
            return Err(syntax(format!(
                "{}: meta tasks cannot loop",
                at(file, node)
            )));
        }
    }
    apply_inherit(&mut t, inherit, entries);
    Ok(Step {
        task: Arc::new(t),
        extra,
    })
}

/// Gives `t` what it inherits from its play, blocks and role (`own`: the keywords it sets).
pub(crate) fn apply_inherit(t: &mut Task, inherit: &Inherit, own: &[(String, Node)]) {
    t.role = inherit.role.clone();
    t.role_instance = inherit.role_instance;
    t.role_run = inherit.role_run;
    t.parent_roles = inherit.parent_roles.clone();
    t.collections = if own.iter().any(|(k, _)| k == "collections") {
        inherit.own_collections(std::mem::take(&mut t.collections))
    } else {
        inherit.collections.clone()
    };
    let mut when = inherit.when.clone();
    when.append(&mut t.when);
    t.when = when;
    let mut vars = inherit.vars.clone();
    for (k, v) in std::mem::take(&mut t.vars) {
        vars.insert(k, v);
    }
    t.vars = vars;
    t.params = inherit.params.clone();
    for (k, v) in &inherit.keywords {
        if own.iter().any(|(o, _)| o == k) {
            continue;
        }
        match k.as_str() {
            "become" => t.r#become = Some(ansible_boolean(v)),
            "become_user" => t.become_user = Some(scalar_string(v)),
            "become_method" => t.become_method = Some(scalar_string(v)),
            "ignore_errors" => t.ignore_errors = v.clone(),
            "environment" => t.environment = Some(v.clone()),
            "no_log" => t.no_log = ansible_boolean(v),
            "check_mode" => t.check_mode = Some(ansible_boolean(v)),
            "diff" => t.diff = Some(ansible_boolean(v)),
            "delegate_to" => t.delegate_to = Some(scalar_string(v)),
            "run_once" => t.run_once = ansible_boolean(v),
            "ignore_unreachable" => t.ignore_unreachable = v.clone(),
            "connection" => t.connection = Some(scalar_string(v)),
            "timeout" => t.timeout = Some(v.clone()),
            "any_errors_fatal" => t.any_errors_fatal = Some(ansible_boolean(v)),
            "delegate_facts" => t.delegate_facts = ansible_boolean(v),
            "remote_user" => {
                t.vars.entry("ansible_user").or_insert(v.clone());
            }
            _ => {}
        }
    }
}

/// Parses `handlers:`.
pub fn parse_handlers(node: &Node, file: &Arc<PathBuf>, inherit: &Inherit) -> Result<Vec<Item>> {
    if node.is_null() {
        return Ok(Vec::new());
    }
    let Some(seq) = node.as_seq() else {
        return Err(syntax(format!(
            "{}: handlers must be a list of tasks",
            at(file, node)
        )));
    };
    handler_items(seq, file, inherit)
}

/// Parses a list of handlers (a play's, or a role's `handlers/main.yml`).
pub fn handler_items(seq: &[Node], file: &Arc<PathBuf>, inherit: &Inherit) -> Result<Vec<Item>> {
    // ansible-core refuses it when it loads the handlers, before anything else about them
    for node in seq {
        let NodeKind::Map(entries) = &node.kind else {
            continue;
        };
        let ends_role = entries.iter().any(|(k, v)| {
            matches!(
                k.as_str(),
                "meta" | "ansible.builtin.meta" | "ansible.legacy.meta"
            ) && scalar_string(&v.to_json()).trim() == "end_role"
        });
        if ends_role {
            // ansible-core 2.19's layout: the message, then where
            return Err(syntax(format!(
                "Cannot execute 'end_role' from a handler\nOrigin: {}",
                at(file, node)
            )));
        }
        // nor roles (the action as written), whatever else the entry says
        let role_action = entries.iter().find_map(|(k, _)| {
            let short = k
                .as_str()
                .strip_prefix("ansible.builtin.")
                .or_else(|| k.as_str().strip_prefix("ansible.legacy."))
                .unwrap_or(k.as_str());
            matches!(short, "include_role" | "import_role").then(|| k.as_str())
        });
        if let Some(action) = role_action {
            return Err(syntax(format!(
                "Using '{action}' as a handler is not supported.\nOrigin: {}",
                at(file, node)
            )));
        }
    }
    // each entry is loaded as a block of handlers: a block in a block is refused (in an
    // imported file too; in an included one when it is included)
    let blocks_in = |nodes: &[Node], path: &Path| {
        nested_handler_block(nodes, path).map(|origin| {
            syntax(format!(
                "Using a block as a handler is not supported.\nOrigin: {origin}"
            ))
        })
    };
    if let Some(e) = blocks_in(seq, file) {
        return Err(e);
    }
    for node in seq {
        if let Some((path, nodes)) = static_file_of(node, file, "import_tasks") {
            if let Some(e) = blocks_in(&nodes, &path) {
                return Err(e);
            }
        }
    }
    let mut items = parse_items(seq, file, inherit, 0)?;
    for (i, node) in items.iter_mut().zip(seq) {
        if let Item::Task(step) | Item::Include { step, .. } | Item::Deferred { step, .. } = i {
            // an `include_tasks` handler runs its file's tasks when notified
            step.extra.handler = true;
            if let Some((path, nodes)) = static_file_of(node, file, "include_tasks") {
                step.extra.handler_file_error = nested_handler_block(&nodes, &path);
            }
        } else {
            return Err(syntax(format!(
                "{}: only plain tasks are supported as handlers by etcd-agent",
                at(file, node)
            )));
        }
    }
    Ok(items)
}

/// Where the first block nested in a block of handlers `seq` (read from `file`) is.
fn nested_handler_block(seq: &[Node], file: &Path) -> Option<String> {
    let is_block = |n: &Node| match &n.kind {
        NodeKind::Map(e) => e.iter().any(|(k, _)| k.as_str() == "block"),
        _ => false,
    };
    seq.iter().find_map(|node| {
        let NodeKind::Map(entries) = &node.kind else {
            return None;
        };
        entries
            .iter()
            .filter(|(k, _)| matches!(k.as_str(), "block" | "rescue" | "always"))
            .filter_map(|(_, v)| v.as_seq())
            .flatten()
            .find(|n| is_block(n))
            .map(|n| at(file, n))
    })
}

/// The task file a handler entry names with `action` (`import_tasks`, `include_tasks`, also
/// as `ansible.builtin.`), when the name is no template and the file reads.
fn static_file_of(node: &Node, file: &Path, action: &str) -> Option<(PathBuf, Vec<Node>)> {
    let NodeKind::Map(entries) = &node.kind else {
        return None;
    };
    let (_, v) = entries.iter().find(|(k, _)| {
        let k = k.as_str();
        k == action || k.strip_prefix("ansible.builtin.") == Some(action)
    })?;
    let name = match v.to_json() {
        Value::String(s) => s,
        Value::Object(m) => m.get("file").and_then(Value::as_str)?.to_string(),
        _ => return None,
    };
    if crate::jinja::value::is_template(&name) {
        return None;
    }
    let path = file.parent()?.join(name);
    let nodes = task_nodes(&path).ok()?;
    Some((path, nodes))
}

/// Tags selection (`--tags`, `--skip-tags`) as Ansible applies it to a task's tags.
pub fn selected(tags: &[String], only: &[String], skip: &[String]) -> bool {
    let has = |t: &str| tags.iter().any(|x| x == t);
    let always = has("always");
    let never = has("never");
    if !skip.is_empty() {
        let skips_always = skip.iter().any(|s| s == "always");
        if skip.iter().any(|s| s == "all") && (!always || skips_always) {
            return false;
        }
        if skip.iter().any(|s| has(s)) {
            return false;
        }
        if skip.iter().any(|s| s == "tagged") && !tags.is_empty() && !always {
            return false;
        }
        if skip.iter().any(|s| s == "untagged") && tags.is_empty() {
            return false;
        }
    }
    if only.is_empty() || only.iter().any(|o| o == "all") {
        return !never || only.iter().any(|o| has(o) && o != "all");
    }
    if always {
        return true;
    }
    if only.iter().any(|o| has(o)) {
        return true;
    }
    if only.iter().any(|o| o == "tagged") && !tags.is_empty() && !never {
        return true;
    }
    only.iter().any(|o| o == "untagged") && tags.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn tag_selection() {
        assert!(selected(&[], &[], &[]));
        assert!(!selected(&s(&["never"]), &[], &[]));
        assert!(selected(&s(&["never", "x"]), &s(&["x"]), &[]));
        assert!(selected(&s(&["web"]), &s(&["web"]), &[]));
        assert!(!selected(&s(&["db"]), &s(&["web"]), &[]));
        assert!(!selected(&[], &s(&["web"]), &[]));
        assert!(selected(&s(&["always"]), &s(&["web"]), &[]));
        assert!(!selected(&s(&["always"]), &s(&["web"]), &s(&["always"])));
        assert!(!selected(&s(&["db", "x"]), &[], &s(&["db"])));
        assert!(selected(&[], &[], &s(&["db"])));
        assert!(selected(&[], &s(&["untagged"]), &[]));
        assert!(!selected(&s(&["a"]), &s(&["untagged"]), &[]));
        assert!(selected(&s(&["a"]), &s(&["tagged"]), &[]));
    }

    #[test]
    fn tag_lists() {
        assert_eq!(tag_list(&Value::String("a, b".into())), s(&["a", "b"]));
        assert_eq!(
            tag_list(&serde_json::json!(["a", "b,c"])),
            s(&["a", "b", "c"])
        );
    }
}
