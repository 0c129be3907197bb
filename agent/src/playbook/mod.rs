//! Playbooks: YAML -> typed plays and tasks, each remembering its `file:line`.

pub mod blocks;
pub mod kv;
pub mod role;
pub mod tag_template;
pub mod task;

pub use task::Task;

use crate::error::syntax;
use crate::jinja::value::{ansible_boolean, scalar_string};
use crate::yaml::{Node, NodeKind, TaskOrigin};
use anyhow::Result;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How a play splits its hosts into batches.
#[derive(Debug, Clone, PartialEq)]
pub enum Serial {
    /// A fixed number of hosts.
    Count(usize),
    /// A percentage of the play's hosts (at least one).
    Percent(f64),
}

/// A play.
#[derive(Debug, Clone)]
pub struct Play {
    /// `name`, or the host pattern when absent.
    pub name: String,
    /// True when the play had an explicit name.
    pub named: bool,
    /// The host pattern (lists joined with `,`).
    pub hosts: String,
    /// `gather_facts` (defaults to true; a small fact set is gathered).
    pub gather_facts: bool,
    /// Whether the play sets `gather_facts` itself (else `gathering` in ansible.cfg decides).
    pub gather_facts_set: bool,
    /// `vars_files` with a templated entry or a list of alternatives: every entry, in order,
    /// each host's files found when the play starts ([`vars_files_for`]). Empty when every
    /// entry is a literal file name (those are read into `vars` at parse time).
    pub vars_files: Vec<Value>,
    /// `serial` batch sizes; the last one repeats.
    pub serial: Vec<Serial>,
    /// `any_errors_fatal`.
    pub any_errors_fatal: bool,
    /// `max_fail_percentage`.
    pub max_fail_percentage: Option<f64>,
    /// `forks` is not a play keyword in Ansible, but `throttle`-like limits come from here.
    pub vars: Map<String, Value>,
    /// `become` for all tasks.
    pub r#become: Option<bool>,
    /// `become_method` (templated when used).
    pub become_method: Option<String>,
    /// `force_handlers` (above `--force-handlers`).
    pub force_handlers: Option<bool>,
    /// `remote_user` for all tasks.
    pub remote_user: Option<String>,
    /// `connection` (`ssh` or `local`): a host's `ansible_connection` variable wins over it.
    pub connection: Option<String>,
    /// `strategy` as written (templated before the play runs; see `executor/play.rs`).
    pub strategy: Option<String>,
    /// The play's roles (`roles:`, `import_role`): their defaults and vars are the play's.
    pub roles: Vec<Arc<role::Role>>,
    /// `environment` for all tasks.
    pub environment: Option<Value>,
    /// `pre_tasks`, `tasks`, then `post_tasks`, in run order (flattened: blocks, imports and
    /// includes expanded), for listing and checks.
    pub tasks: Vec<Task>,
    /// The task tree the executor runs (blocks, includes, handler flush points).
    pub body: Vec<blocks::Item>,
    /// `handlers`.
    pub handlers: Vec<blocks::Item>,
    /// Where in `handlers` those an `include_role` brings begin: ansible-core loads them when
    /// the include runs, so they answer notifications once a task of their role has run.
    pub include_handlers_at: usize,
    /// What the play's parse found of its roles, shared with the includes expanded while it
    /// runs: the handlers of roles those bring are added there (see [`Play::runtime_handlers`]).
    pub play_roles: Option<Arc<std::sync::Mutex<blocks::roles::PlayRoles>>>,
    /// Play `tags` (also given to every task of the play).
    pub tags: Vec<String>,
    /// Where the play starts.
    pub origin: TaskOrigin,
    /// The implicit "Gathering Facts" task, with the play keywords tasks inherit
    /// (`ignore_unreachable`, `ignore_errors`, ...).
    pub gather_task: Arc<Task>,
}

/// A parsed playbook file.
#[derive(Debug, Clone)]
pub struct Playbook {
    /// Plays in order.
    pub plays: Vec<Play>,
    /// The directories of the playbook files read (the imported ones too), in the order
    /// read: their `library/` joins the module search, as ansible-core adds each loaded
    /// playbook's plugin directories.
    pub dirs: Vec<PathBuf>,
}

const PLAY_KEYS: &[&str] = &[
    "name",
    "hosts",
    "gather_facts",
    "serial",
    "any_errors_fatal",
    "max_fail_percentage",
    "vars",
    "become",
    "become_user",
    "become_method",
    "force_handlers",
    "remote_user",
    "environment",
    "pre_tasks",
    "tasks",
    "post_tasks",
    "tags",
    "connection",
    "handlers",
    "vars_files",
    "roles",
    "collections",
    "strategy",
];

impl Play {
    /// The handlers of roles that includes expanded while the play runs brought (a looped or
    /// templated `include_role`), in the order they came: after the play's own, as
    /// ansible-core adds them when the include runs.
    pub fn runtime_handlers(&self) -> Vec<blocks::Item> {
        self.play_roles
            .as_ref()
            .map(|r| {
                r.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .runtime_handlers
                    .clone()
            })
            .unwrap_or_default()
    }
}

/// Reads and parses a playbook file.
pub fn load(path: &Path) -> Result<Playbook> {
    load_from(path, None)
}

/// Reads and parses a playbook file; `collection` is the collection it belongs to when it was
/// named by FQCN (`etcd_agent.etcd.etcd_healthy`): its modules and roles are found first.
pub fn load_from(path: &Path, collection: Option<&str>) -> Result<Playbook> {
    load_with(path, collection, &Map::new())
}

/// [`load_from`] with the run's extra vars, which names the parser templates (an
/// `import_playbook`'s file, an `import_role`'s role, an `import_tasks`' file) may use, as
/// ansible-core templates them with what it knows before any host: see [`ParseVars`].
pub fn load_with(
    path: &Path,
    collection: Option<&str>,
    extra_vars: &Map<String, Value>,
) -> Result<Playbook> {
    let known = ParseVars {
        extra: extra_vars.clone(),
        imported: Map::new(),
    };
    load_inner(path, collection, &known)
}

/// The variables a play's names can be templated with while it is parsed.
#[derive(Clone, Debug, Default)]
pub struct ParseVars {
    /// `-e`: above everything.
    pub extra: Map<String, Value>,
    /// The `vars` of the `import_playbook`s that brought the play, the outermost last (it
    /// wins, as ansible-core applies them).
    pub imported: Map<String, Value>,
}

fn load_inner(path: &Path, collection: Option<&str>, known: &ParseVars) -> Result<Playbook> {
    if !path.is_file() {
        return Err(crate::error::Fatal::Other(format!(
            "the playbook: {} could not be found",
            path.display()
        ))
        .into());
    }
    let path = &std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let docs = crate::yaml::load_file(path)?;
    let file = Arc::new(path.to_path_buf());
    // ansible-playbook's words and exit code (4) for a playbook with no play in it
    if docs.iter().all(Node::is_null) {
        return Err(syntax(format!(
            "Empty playbook, nothing to do: {}",
            path.display()
        )));
    }
    if docs
        .iter()
        .all(|d| d.is_null() || d.as_seq().is_some_and(|s| s.is_empty()))
    {
        return Err(syntax(format!(
            "A playbook must contain at least one play: {}",
            path.display()
        )));
    }
    let mut plays = Vec::new();
    let mut dirs: Vec<PathBuf> = path.parent().map(Path::to_path_buf).into_iter().collect();
    for doc in &docs {
        if doc.is_null() {
            continue;
        }
        let Some(items) = doc.as_seq() else {
            return Err(syntax(format!(
                "{}:{}: a playbook must be a list of plays",
                path.display(),
                doc.line
            )));
        };
        for item in items {
            if let Some(imported) = import_playbook(item, path, collection, known)? {
                plays.extend(imported.plays);
                for d in imported.dirs {
                    if !dirs.contains(&d) {
                        dirs.push(d);
                    }
                }
                continue;
            }
            plays.push(parse_play(item, &file, collection, known)?);
        }
    }
    Ok(Playbook { plays, dirs })
}

/// `- import_playbook: other.yml`, relative to the importing playbook (or a collection's
/// playbook by name); the name may be a template of the import's own `vars`. The import's
/// `vars` override the imported plays' own, its `tags` join theirs and its `when` gates
/// every task of them, as ansible-core's PlaybookInclude applies them.
fn import_playbook(
    node: &Node,
    path: &Path,
    collection: Option<&str>,
    known: &ParseVars,
) -> Result<Option<Playbook>> {
    let Some(entries) = node.as_map() else {
        return Ok(None);
    };
    let names = [
        "import_playbook",
        "ansible.builtin.import_playbook",
        "ansible.legacy.import_playbook",
    ];
    let Some((_, target)) = entries.iter().find(|(k, _)| names.contains(&k.as_str())) else {
        return Ok(None);
    };
    let at = format!("{}:{}", path.display(), node.line);
    let (mut vars, mut tags, mut when) = (Map::new(), Vec::new(), Vec::new());
    for (k, v) in entries {
        match k.as_str() {
            k if names.contains(&k) => {}
            "name" => {}
            "vars" => match v.to_json() {
                Value::Object(m) => vars = m,
                Value::Null => {}
                _ => {
                    return Err(syntax(format!(
                        "{at}: import_playbook vars must be a mapping"
                    )))
                }
            },
            "tags" => tags = blocks::tag_list(&v.to_json()),
            "when" => when = list_of_values(&v.to_json()),
            other => {
                return Err(syntax(format!(
                    "{at}: '{other}' on import_playbook is not supported by etcd-agent"
                )))
            }
        }
    }
    let mut rel = node_str(target).unwrap_or_default();
    if crate::jinja::value::is_template(&rel) {
        // the import's own vars, under the outer imports' and the extra vars
        let mut context = vars.clone();
        context.extend(known.imported.clone());
        context.extend(known.extra.clone());
        rel = blocks::static_vars::render(&rel, &context)
            .map_err(|e| syntax(format!("{at}: import_playbook name {rel:?}: {e:#}")))?;
    }
    if rel.is_empty() || crate::jinja::value::is_template(&rel) {
        return Err(syntax(format!("{at}: import_playbook needs a file name")));
    }
    let base = path.parent().map(PathBuf::from).unwrap_or_default();
    let target = base.join(&rel);
    let mut inner = known.clone();
    let mut imported = vars.clone();
    imported.extend(known.imported.clone());
    inner.imported = imported;
    let mut book = if target.is_file() {
        load_inner(&target, collection, &inner)?
    } else {
        // a collection's playbook by its fully qualified name
        let roots = crate::collections::roots(Some(&base), &crate::config::collections_path());
        match crate::collections::find_playbook(&roots, &rel) {
            Some((found, coll)) => load_inner(&found, Some(&coll), &inner)?,
            None => {
                return Err(syntax(format!(
                    "{at}: import_playbook: cannot find {}",
                    target.display()
                )))
            }
        }
    };
    for play in &mut book.plays {
        play.vars.extend(vars.clone());
        if !tags.is_empty() {
            add_tags(&mut play.body, &tags);
            play.tags.extend(tags.iter().cloned());
        }
        if !when.is_empty() {
            add_when(&mut play.body, &when);
        }
    }
    Ok(Some(book))
}

/// Puts `when` before every task's own conditions (an import's `when`).
fn add_when(items: &mut [blocks::Item], when: &[Value]) {
    let gate = |task: &mut Arc<Task>| {
        let t = Arc::make_mut(task);
        let mut all = when.to_vec();
        all.append(&mut t.when);
        t.when = all;
    };
    for i in items {
        match i {
            blocks::Item::Task(s) => gate(&mut s.task),
            blocks::Item::Block(b) => {
                add_when(&mut b.block, when);
                add_when(&mut b.rescue, when);
                add_when(&mut b.always, when);
            }
            blocks::Item::Include { step, items } => {
                gate(&mut step.task);
                add_when(items, when);
            }
            blocks::Item::Deferred { step, deferred } => {
                gate(&mut step.task);
                deferred.after(|a| a.when.extend(when.iter().cloned()));
            }
            blocks::Item::Flush => {}
        }
    }
}

fn list_of_values(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// A play's templated `vars_files` for one host, as Ansible reads them: each entry rendered
/// with `render` (the host's variables), a list entry being the first of its files that
/// exists; relative names are found beside the playbook. A missing file is Ansible's error.
pub fn vars_files_for(
    play: &Play,
    render: &dyn Fn(&Value) -> std::result::Result<Value, String>,
) -> std::result::Result<Map<String, Value>, String> {
    let base = play
        .origin
        .file
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let mut out = Map::new();
    for entry in &play.vars_files {
        let choices: Vec<Value> = match entry {
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        let mut found = None;
        let mut tried = Vec::new();
        for choice in &choices {
            let name = scalar_string(&render(choice)?);
            let p = base.join(&name);
            if p.is_file() {
                found = Some(p);
                break;
            }
            tried.push(name);
        }
        let Some(p) = found else {
            return Err(format!("vars file {} was not found", tried.join(", ")));
        };
        let data = crate::yaml::load_value(&p).map_err(|e| format!("{e:#}"))?;
        out.extend(vars_file_data(data, &p)?);
    }
    Ok(out)
}

/// A vars file's variables, as Ansible's `preprocess_vars` takes them: a mapping, or a list
/// of mappings merged in order.
fn vars_file_data(data: Value, path: &Path) -> std::result::Result<Map<String, Value>, String> {
    let parts = match data {
        Value::Null => Vec::new(),
        Value::Object(m) => vec![Value::Object(m)],
        Value::Array(a) => a,
        other => vec![other],
    };
    let mut out = Map::new();
    for part in parts {
        match part {
            Value::Object(m) => out.extend(m),
            other => {
                return Err(format!(
                    "{}: variable files must contain either a dictionary of variables, or a list of dictionaries. Got: {}",
                    path.display(),
                    crate::jinja::value::python_repr(&other)
                ))
            }
        }
    }
    Ok(out)
}

/// `vars_files`: each file's mapping, in order (literal paths relative to the playbook).
fn vars_files(v: &Value, file: &Path, line: usize) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    let base = file.parent().map(PathBuf::from).unwrap_or_default();
    for entry in list_of_values(v) {
        // templated entries and lists of alternatives are read per host (`vars_files_for`)
        let rel = scalar_string(&entry);
        let p = base.join(&rel);
        if !p.is_file() {
            return Err(syntax(format!(
                "{}:{line}: vars_files: cannot find {}",
                file.display(),
                p.display()
            )));
        }
        out.extend(vars_file_data(crate::yaml::load_value(&p)?, &p).map_err(syntax)?);
    }
    Ok(out)
}

fn parse_play(
    node: &Node,
    file: &Arc<PathBuf>,
    default_collection: Option<&str>,
    known: &ParseVars,
) -> Result<Play> {
    let origin = TaskOrigin {
        file: file.clone(),
        line: node.line,
        col: node.col,
    };
    let err = |line: usize, msg: String| syntax(format!("{}:{line}: {msg}", file.display()));
    let Some(entries) = node.as_map() else {
        return Err(err(node.line, "a play must be a mapping".into()));
    };
    let mut play = Play {
        name: String::new(),
        named: false,
        hosts: String::new(),
        gather_facts: true,
        gather_facts_set: false,
        vars_files: Vec::new(),
        serial: Vec::new(),
        any_errors_fatal: false,
        max_fail_percentage: None,
        vars: Map::new(),
        r#become: None,
        become_method: None,
        force_handlers: None,
        remote_user: None,
        connection: None,
        strategy: None,
        roles: Vec::new(),
        environment: None,
        tasks: Vec::new(),
        body: Vec::new(),
        handlers: Vec::new(),
        include_handlers_at: 0,
        play_roles: None,
        tags: Vec::new(),
        gather_task: Arc::new(Task::synthetic("setup", "Gathering Facts", origin.clone())),
        origin,
    };
    let mut section_nodes: [Vec<&[Node]>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    let mut handlers = None;
    let mut roles_node = None;
    let mut inherited = Vec::new();
    let mut play_collections = Vec::new();
    let mut files_vars = Map::new();
    let mut play_tags = Vec::new();
    let mut play_become_user = None;
    let mut has_hosts = false;
    for (key, value) in entries {
        let v = value.to_json();
        match key.as_str() {
            "name" => {
                play.name = scalar_string(&v);
                play.named = true;
            }
            "hosts" => {
                has_hosts = true;
                play.hosts = match &v {
                    Value::Array(items) => items
                        .iter()
                        .map(scalar_string)
                        .collect::<Vec<_>>()
                        .join(","),
                    other => scalar_string(other),
                };
            }
            "gather_facts" => {
                play.gather_facts = ansible_boolean(&v);
                play.gather_facts_set = true;
            }
            "serial" => play.serial = parse_serial(&v).map_err(|m| err(value.line, m))?,
            "any_errors_fatal" => play.any_errors_fatal = ansible_boolean(&v),
            "max_fail_percentage" => {
                play.max_fail_percentage = Some(
                    scalar_string(&v)
                        .trim_end_matches('%')
                        .parse()
                        .map_err(|_| {
                            err(value.line, "max_fail_percentage must be a number".into())
                        })?,
                )
            }
            "vars" => match v {
                Value::Object(m) => play.vars = m,
                Value::Null => {}
                _ => return Err(err(value.line, "play vars must be a mapping".into())),
            },
            "become" => play.r#become = Some(ansible_boolean(&v)),
            "force_handlers" => play.force_handlers = Some(ansible_boolean(&v)),
            "become_user" => play_become_user = Some(scalar_string(&v)),
            "become_method" => {
                let m = scalar_string(&v);
                task::check_become_method(&m).map_err(|e| err(value.line, e))?;
                play.become_method = Some(m);
            }
            "remote_user" => play.remote_user = Some(scalar_string(&v)),
            "environment" => play.environment = Some(v),
            "tags" => play_tags = blocks::tag_list(&v),
            "handlers" => handlers = Some(value),
            "roles" => roles_node = Some(value),
            "vars_files" => {
                let entries = list_of_values(&v);
                let dynamic = entries
                    .iter()
                    .any(|e| e.is_array() || crate::jinja::value::is_template(&scalar_string(e)));
                if dynamic {
                    play.vars_files = entries;
                } else {
                    files_vars = vars_files(&v, file, value.line)?
                }
            }
            "collections" => {
                play_collections =
                    crate::collections::keyword_list(&v).map_err(|e| err(value.line, e))?;
            }
            "strategy" => play.strategy = Some(scalar_string(&v)),
            "connection" => {
                play.connection =
                    Some(task::connection_keyword(&v).map_err(|e| err(value.line, e))?);
            }
            "pre_tasks" | "tasks" | "post_tasks" => {
                let idx = match key.as_str() {
                    "pre_tasks" => 0,
                    "tasks" => 1,
                    _ => 2,
                };
                if value.is_null() {
                    continue;
                }
                let Some(items) = value.as_seq() else {
                    return Err(err(value.line, format!("{key} must be a list of tasks")));
                };
                // parsed once every play keyword is known: tasks inherit some of them
                section_nodes[idx].push(items);
            }
            k if blocks::PLAY_INHERITED.contains(&k) => {
                inherited.push((k.to_string(), v));
            }
            "import_playbook" => {
                return Err(err(
                    node.line,
                    "import_playbook is not supported yet by etcd-agent".into(),
                ))
            }
            other => {
                let hint = if PLAY_KEYS.contains(&other) {
                    ""
                } else {
                    " (unknown or unsupported play keyword)"
                };
                return Err(err(
                    value.line,
                    format!("'{other}' is not a valid attribute for a Play{hint}"),
                ));
            }
        }
    }
    if !has_hosts || play.hosts.is_empty() {
        return Err(err(
            node.line,
            "the field 'hosts' is required but was not set".into(),
        ));
    }
    if !play.named {
        play.name = play.hosts.clone();
    }
    // vars_files take precedence over play vars
    play.vars.extend(files_vars);
    let playbook_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut play_vars = play.vars.clone();
    play_vars.extend(known.imported.clone());
    let collector = Arc::new(std::sync::Mutex::new(blocks::roles::PlayRoles::new(
        playbook_dir,
    )));
    let inherit = blocks::Inherit::from_play(
        inherited,
        collector.clone(),
        (play_collections, default_collection.map(str::to_string)),
        (play_vars, known.extra.clone()),
    );
    let mut gather = Task::synthetic("setup", "Gathering Facts", play.origin.clone());
    blocks::apply_inherit(&mut gather, &inherit, &[]);
    play.gather_task = Arc::new(gather);
    for (i, section) in section_nodes.into_iter().enumerate() {
        if i == 1 {
            // roles run after pre_tasks (and their handlers), before tasks
            if let Some(node) = roles_node {
                play.body
                    .extend(blocks::roles::play_roles(node, file, &inherit)?);
            }
        }
        for items in section {
            play.body
                .extend(blocks::parse_items(items, file, &inherit, 0)?);
        }
        play.body.push(blocks::Item::Flush);
    }
    if let Some(node) = handlers {
        play.handlers = blocks::parse_handlers(node, file, &inherit)?;
    }
    // the roles' handlers and the exposed roles are the play's; the rest (the playbook's
    // directory, the role instances and handlers met) stays for includes expanded at run time
    let (role_handlers, mut late_handlers, roles) = {
        let mut found = collector.lock().unwrap_or_else(|e| e.into_inner());
        (
            std::mem::take(&mut found.handlers),
            std::mem::take(&mut found.late_handlers),
            found.roles.clone(),
        )
    };
    // the handlers of `roles:` and `import_role` come before the play's own, those an
    // `include_role` brings after them, as Ansible lists them
    let mut all_handlers = role_handlers;
    all_handlers.append(&mut play.handlers);
    play.include_handlers_at = all_handlers.len();
    all_handlers.append(&mut late_handlers);
    play.handlers = all_handlers;
    play.roles = roles;
    play.play_roles = Some(collector);
    if !play_tags.is_empty() {
        add_tags(&mut play.body, &play_tags);
    }
    play.tags = play_tags;
    if let Some(user) = &play_become_user {
        // a play keyword: tasks, blocks and handlers that set their own keep it
        default_become_user(&mut play.body, user);
        default_become_user(&mut play.handlers, user);
    }
    blocks::Item::flatten(&play.body, &mut play.tasks);
    Ok(play)
}

/// `gathering` of ansible.cfg: whether plays that do not say `gather_facts` gather facts.
pub fn default_gathering(books: &mut [Playbook], gather_by_default: bool) {
    for play in books.iter_mut().flat_map(|b| b.plays.iter_mut()) {
        if !play.gather_facts_set {
            play.gather_facts = gather_by_default;
        }
    }
}

/// Applies `--tags`/`--skip-tags` (comma-separated values allowed) to every play's tasks.
pub fn select_tags(
    books: &mut [Playbook],
    only: &[String],
    skip: &[String],
    extra_vars: &Map<String, Value>,
) {
    let split = |v: &[String]| -> Vec<String> {
        v.iter()
            .flat_map(|t| t.split(',').map(|x| x.trim().to_string()))
            .filter(|t| !t.is_empty())
            .collect()
    };
    let (only, skip) = (split(only), split(skip));
    let templar = crate::jinja::Templar::new();
    for play in books.iter_mut().flat_map(|b| b.plays.iter_mut()) {
        play.tags = tag_template::render(&play.tags, &[&play.vars, extra_vars], &templar);
        // Ansible tags its Gathering Facts task `always` unless the play has tags, which
        // it then inherits; it is selected like any task (`--skip-tags always` drops it)
        let gather_tags = if play.tags.is_empty() {
            vec!["always".to_string()]
        } else {
            play.tags.clone()
        };
        if play.gather_facts && !blocks::selected(&gather_tags, &only, &skip) {
            play.gather_facts = false;
        }
        let play_vars = &play.vars;
        // templated tags take the play's variables, as ansible-core's selection (and its
        // --list-tasks / --list-tags) sees them
        render_tags(&mut play.body, &[play_vars, extra_vars], &templar);
        blocks::Item::retain(&mut play.body, &|s: &blocks::Step| {
            blocks::selected(&s.extra.tags, &only, &skip)
        });
        if !only.is_empty() || !skip.is_empty() {
            let mut vars = extra_vars.clone();
            for (k, v) in play_vars {
                vars.entry(k.clone()).or_insert_with(|| v.clone());
            }
            let selection = blocks::TagSelection {
                only: only.clone(),
                skip: skip.clone(),
                vars,
            };
            for_each_deferred(&play.body, &mut |d| {
                d.after(|a| a.select = Some(selection.clone()))
            });
        }
        play.tasks.clear();
        blocks::Item::flatten(&play.body, &mut play.tasks);
    }
}

/// Calls `f` on every deferred include of the tree (not those inside one: they are parsed
/// later, with what their include recorded).
fn for_each_deferred(items: &[blocks::Item], f: &mut dyn FnMut(&blocks::Deferred)) {
    for i in items {
        match i {
            blocks::Item::Deferred { deferred, .. } => f(deferred),
            blocks::Item::Block(b) => {
                for_each_deferred(&b.block, f);
                for_each_deferred(&b.rescue, f);
                for_each_deferred(&b.always, f);
            }
            blocks::Item::Include { items, .. } => for_each_deferred(items, f),
            blocks::Item::Task(_) | blocks::Item::Flush => {}
        }
    }
}

/// What the play applied to its own tasks ([`blocks::After`]), applied to the tasks a deferred
/// include loaded: the play's tags, its `become_user`, then `--tags`/`--skip-tags`.
pub(crate) fn finish_loaded(items: &mut Vec<blocks::Item>, after: &blocks::After) {
    if !after.when.is_empty() {
        add_when(items, &after.when);
    }
    if !after.tags.is_empty() {
        add_tags(items, &after.tags);
    }
    if let Some(user) = &after.become_user {
        default_become_user(items, user);
    }
    if let Some(selection) = &after.select {
        let templar = crate::jinja::Templar::new();
        blocks::Item::retain(items, &|s: &blocks::Step| {
            let tags = tag_template::render(&s.extra.tags, &[&selection.vars], &templar);
            blocks::selected(&tags, &selection.only, &selection.skip)
        });
        for_each_deferred(items, &mut |d| {
            d.after(|a| a.select = Some(selection.clone()))
        });
    }
}

/// Gives the play's `become_user` to every task that has none of its own.
fn default_become_user(items: &mut [blocks::Item], user: &str) {
    for i in items {
        match i {
            blocks::Item::Task(s) => {
                if s.task.become_user.is_none() {
                    Arc::make_mut(&mut s.task).become_user = Some(user.to_string());
                }
            }
            blocks::Item::Block(b) => {
                default_become_user(&mut b.block, user);
                default_become_user(&mut b.rescue, user);
                default_become_user(&mut b.always, user);
            }
            blocks::Item::Include { step, items } => {
                if step.task.become_user.is_none() {
                    Arc::make_mut(&mut step.task).become_user = Some(user.to_string());
                }
                default_become_user(items, user);
            }
            blocks::Item::Deferred { step, deferred } => {
                if step.task.become_user.is_none() {
                    Arc::make_mut(&mut step.task).become_user = Some(user.to_string());
                }
                deferred.after(|a| a.become_user = Some(user.to_string()));
            }
            blocks::Item::Flush => {}
        }
    }
}

/// Renders the templated tags of every task, include and block task of `items` (not inside
/// deferred includes: their tasks are read later) against `layers`.
fn render_tags(
    items: &mut [blocks::Item],
    layers: &[&Map<String, Value>],
    templar: &crate::jinja::Templar,
) {
    for i in items {
        match i {
            blocks::Item::Task(s) | blocks::Item::Deferred { step: s, .. } => {
                s.extra.tags = tag_template::render(&s.extra.tags, layers, templar)
            }
            blocks::Item::Block(b) => {
                render_tags(&mut b.block, layers, templar);
                render_tags(&mut b.rescue, layers, templar);
                render_tags(&mut b.always, layers, templar);
            }
            blocks::Item::Include { step, items } => {
                step.extra.tags = tag_template::render(&step.extra.tags, layers, templar);
                render_tags(items, layers, templar);
            }
            blocks::Item::Flush => {}
        }
    }
}

fn add_tags(items: &mut [blocks::Item], tags: &[String]) {
    for i in items {
        match i {
            blocks::Item::Task(s) => s.extra.tags.extend(tags.iter().cloned()),
            blocks::Item::Block(b) => {
                add_tags(&mut b.block, tags);
                add_tags(&mut b.rescue, tags);
                add_tags(&mut b.always, tags);
            }
            blocks::Item::Include { step, items } => {
                step.extra.tags.extend(tags.iter().cloned());
                add_tags(items, tags);
            }
            blocks::Item::Deferred { step, deferred } => {
                step.extra.tags.extend(tags.iter().cloned());
                deferred.after(|a| a.tags.extend(tags.iter().cloned()));
            }
            blocks::Item::Flush => {}
        }
    }
}

fn parse_serial(v: &Value) -> std::result::Result<Vec<Serial>, String> {
    let one = |v: &Value| -> std::result::Result<Serial, String> {
        let s = scalar_string(v);
        if let Some(p) = s.strip_suffix('%') {
            p.trim()
                .parse::<f64>()
                .map(Serial::Percent)
                .map_err(|_| format!("bad serial value {s:?}"))
        } else {
            s.trim()
                .parse::<usize>()
                .map(Serial::Count)
                .map_err(|_| format!("bad serial value {s:?}"))
        }
    };
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

/// Returns the text of a scalar node, if it is one.
pub fn node_str(node: &Node) -> Option<String> {
    match &node.kind {
        NodeKind::Scalar(v) => Some(scalar_string(v)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plays_tasks_lines_and_import_tasks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tasks")).unwrap();
        std::fs::write(
            dir.path().join("tasks/inner.yml"),
            "- name: inner\n  command: echo {{ x }}\n  when: b\n",
        )
        .unwrap();
        let pb = dir.path().join("site.yml");
        std::fs::write(
            &pb,
            "- hosts: [a, b]\n  serial: [1, '50%']\n  gather_facts: no\n  tasks:\n    - name: first\n      ansible.builtin.shell: echo hi chdir=/tmp\n    - import_tasks: tasks/inner.yml\n      when: a\n      vars: {x: 1}\n",
        )
        .unwrap();
        let book = load(&pb).unwrap();
        let play = &book.plays[0];
        assert_eq!(play.hosts, "a,b");
        assert_eq!(play.name, "a,b");
        assert!(!play.gather_facts);
        assert_eq!(play.serial, vec![Serial::Count(1), Serial::Percent(50.0)]);
        let t = &play.tasks[0];
        assert_eq!((t.origin.line, t.origin.col), (5, 7));
        assert_eq!(t.module(), "shell");
        assert_eq!(t.args["_raw_params"], "echo hi");
        assert_eq!(t.args["chdir"], "/tmp");
        let inner = &play.tasks[1];
        assert_eq!(inner.display_name(), "inner");
        assert_eq!(inner.when, vec![Value::from("a"), Value::from("b")]);
        assert_eq!(inner.vars["x"], 1);
        assert!(inner.origin.file.ends_with("tasks/inner.yml"));
    }

    #[test]
    fn play_become_user_goes_to_tasks_without_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let pb = dir.path().join("site.yml");
        std::fs::write(
            &pb,
            "- hosts: a\n  tasks:\n    - command: id\n    - command: id\n      become_user: root\n    - block:\n        - command: id\n      become_user: b\n  handlers:\n    - name: h\n      command: id\n  become: true\n  become_user: nobody\n  become_method: sudo\n",
        )
        .unwrap();
        let play = &load(&pb).unwrap().plays[0];
        let users: Vec<_> = play.tasks.iter().map(|t| t.become_user.clone()).collect();
        assert_eq!(
            users,
            [Some("nobody".into()), Some("root".into()), Some("b".into())]
        );
        assert_eq!(play.r#become, Some(true));
        let blocks::Item::Task(h) = &play.handlers[0] else {
            panic!("handler is a task")
        };
        assert_eq!(h.task.become_user.as_deref(), Some("nobody"));
        for bad in [
            "- hosts: a\n  become_method: doas\n  tasks: []\n",
            "- hosts: a\n  tasks:\n    - block:\n        - command: id\n      become_method: doas\n",
            "- hosts: a\n  tasks:\n    - command: id\n      become_method: doas\n",
        ] {
            std::fs::write(&pb, bad).unwrap();
            let e = format!("{:#}", load(&pb).unwrap_err());
            assert!(
                e.contains("become_method \"doas\" is not supported") && e.contains("site.yml:"),
                "{e}"
            );
        }
        std::fs::write(
            &pb,
            "- hosts: a\n  become_method: su\n  tasks:\n    - block:\n        - command: id\n      become_method: sudo\n    - command: id\n      become_method: su\n",
        )
        .unwrap();
        let play = &load(&pb).unwrap().plays[0];
        assert_eq!(play.become_method.as_deref(), Some("su"));
        let methods: Vec<_> = play.tasks.iter().map(|t| t.become_method.clone()).collect();
        assert_eq!(methods, [Some("sudo".into()), Some("su".into())]);
    }
}
