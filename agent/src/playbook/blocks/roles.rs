//! Role expansion, a part of the block parser: a play's `roles:`, `import_role` and
//! `include_role` tasks become items, each role after its `meta/main.yml` dependencies. The
//! role itself (finding and loading it) is [`crate::playbook::role`].

use super::{
    at, handler_items, include_item, list_of, parse_items, tag_list, task_nodes, Inherit, Item,
    INHERITED,
};
use crate::error::syntax;
use crate::playbook::role::{reference_name, Role};
use crate::yaml::{Node, NodeKind};
use anyhow::Result;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The roles of a play as its parse meets them (`roles:`, then `import_role` tasks): their
/// defaults and vars are visible to every task of the play, their handlers are the play's.
#[derive(Debug, Default)]
pub struct PlayRoles {
    /// The play's roles, in the order they were met.
    pub roles: Vec<Arc<Role>>,
    /// Their handlers (`roles:` and `import_role`): before the play's own.
    pub handlers: Vec<Item>,
    /// The handlers of roles an `include_role` brings: after the play's own, as ansible-core
    /// adds them when the include runs.
    pub late_handlers: Vec<Item>,
    /// The play's playbook directory, where roles are looked for.
    pub playbook_dir: PathBuf,
    /// The role references met so far (role and parameters), each with its instance id: a
    /// reference met again is the same instance, which a host runs once.
    run: Vec<((PathBuf, Value), usize)>,
    /// The roles whose handlers are in [`PlayRoles::handlers`].
    handled: Vec<PathBuf>,
    /// The handlers of roles brought by includes expanded while the play runs.
    pub runtime_handlers: Vec<Item>,
}

impl PlayRoles {
    /// For a play of the playbook in `playbook_dir`.
    pub fn new(playbook_dir: PathBuf) -> Self {
        PlayRoles {
            playbook_dir,
            ..PlayRoles::default()
        }
    }
}

/// Parses a play's `roles:` list into the items to run (each role after its dependencies; a
/// role already run in the play with the same keywords and parameters is not run again).
pub fn play_roles(node: &Node, file: &Arc<PathBuf>, inherit: &Inherit) -> Result<Vec<Item>> {
    if node.is_null() {
        return Ok(Vec::new());
    }
    let Some(entries) = node.as_seq() else {
        return Err(syntax(format!("{}: roles must be a list", at(file, node))));
    };
    let mut items = Vec::new();
    for entry in entries {
        let (entry, at) = (entry.to_json(), at(file, entry));
        // a play's roles are public unless `private_role_vars` says otherwise
        let public = crate::config::private_role_vars() != Some(true);
        items.extend(
            expand(
                &entry,
                &at,
                inherit,
                (None, &RoleFiles::default()),
                Once::UnlessAllowed,
                public,
            )?
            .0,
        );
    }
    Ok(items)
}

/// `vars_from`, `defaults_from` and `handlers_from` of an `include_role`/`import_role`: the
/// role's files read instead of `main`.
#[derive(Debug, Clone, Default)]
pub(crate) struct RoleFiles {
    pub(crate) vars: Option<String>,
    pub(crate) defaults: Option<String>,
    pub(crate) handlers: Option<String>,
}

/// An `import_role` task: the role's tasks (`tasks_from`, default `main`), with the task's
/// `when`, `tags`, `vars` and keywords, its defaults and vars the play's. Or, with `include`,
/// an `include_role` task: the include, whose `when` gates the role's tasks and whose `vars`
/// they get; its defaults and vars are the role's own unless `public: true`.
pub fn import_role(
    node: &Node,
    entries: &[(String, Node)],
    file: &Arc<PathBuf>,
    inherit: &Inherit,
    include: bool,
) -> Result<Vec<Item>> {
    let what = if include {
        "include_role"
    } else {
        "import_role"
    };
    let mut reference = Map::new();
    let mut tasks_from = None;
    let mut files = RoleFiles::default();
    let mut public: Option<bool> = None;
    // `allow_duplicates: false` makes the reference run once per host, as a `roles:` entry
    let mut allow_duplicates: Option<bool> = None;
    let mut include_args = Map::new();
    let mut apply: Option<Map<String, Value>> = None;
    let (mut when, mut vars, mut tags, mut task_name) = (Vec::new(), Map::new(), Vec::new(), None);
    let mut looping = super::Extra {
        loop_var: "item".into(),
        ..super::Extra::default()
    };
    let mut own: Vec<(String, Value)> = Vec::new();
    for (k, v) in entries {
        let val = v.to_json();
        match k.as_str() {
            "import_role" | "ansible.builtin.import_role" | "include_role"
            | "ansible.builtin.include_role" => {
                let args = match val {
                    Value::Object(args) => args,
                    // free-form `name=x tasks_from=y`, as Ansible splits it
                    Value::String(text) if text.contains('=') => {
                        crate::playbook::kv::parse_kv(&text, false)
                    }
                    _ => {
                        return Err(syntax(format!(
                            "{}: {what} needs a mapping with `name`",
                            at(file, v)
                        )))
                    }
                };
                include_args = args.clone();
                for (arg, value) in args {
                    match arg.as_str() {
                        "name" => {
                            reference.insert("role".into(), value);
                        }
                        // `role` is another name for `name`, which wins when both are given
                        "role" => {
                            if !include_args.contains_key("name") {
                                reference.insert("role".into(), value);
                            }
                        }
                        "tasks_from" => tasks_from = Some(crate::jinja::value::scalar_string(&value)),
                        "vars_from" | "defaults_from" | "handlers_from" => {
                            let Value::String(text) = value else {
                                return Err(syntax(format!(
                                    "{}: Expected a string for {arg} but got <class '{}'> instead",
                                    at(file, v),
                                    crate::jinja::value::python_type(
                                        &minijinja::Value::from_serialize(&value)
                                    )
                                )));
                            };
                            if crate::jinja::value::is_template(&text) {
                                return Err(syntax(format!(
                                    "{}: a templated {arg} is not supported by etcd-agent",
                                    at(file, v)
                                )));
                            }
                            let slot = match arg.as_str() {
                                "vars_from" => &mut files.vars,
                                "defaults_from" => &mut files.defaults,
                                _ => &mut files.handlers,
                            };
                            *slot = Some(text);
                        }
                        // booleans an include templates when the play loads
                        "public" => {
                            public = Some(static_bool(&value, inherit, &arg, &at(file, v))?)
                        }
                        "allow_duplicates" => {
                            allow_duplicates =
                                Some(static_bool(&value, inherit, &arg, &at(file, v))?)
                        }
                        // checked, though etcd-agent does not validate role argument specs
                        // (`meta/argument_specs.yml`) either way
                        "rolespec_validate" => {
                            static_bool(&value, inherit, &arg, &at(file, v))?;
                        }
                        "apply" if include => match value {
                            Value::Object(m) => apply = Some(m),
                            _ => {
                                return Err(syntax(format!(
                                    "{}: Expected a dict for apply but got {}",
                                    at(file, v),
                                    crate::jinja::value::python_type(
                                        &minijinja::Value::from_serialize(&value)
                                    )
                                )))
                            }
                        },
                        "apply" => {
                            return Err(syntax(format!(
                                "{}: Invalid options for {what}: apply",
                                at(file, v)
                            )))
                        }
                        other => {
                            return Err(syntax(format!(
                                "{}: {what} option '{other}' is not supported by etcd-agent (name, role, tasks_from, vars_from, defaults_from, handlers_from, public, allow_duplicates, rolespec_validate, apply)",
                                at(file, v),
                            )))
                        }
                    }
                }
            }
            "name" => task_name = Some(crate::jinja::value::scalar_string(&val)),
            "when" if include => when = list_of(&val),
            "vars" if include => {
                if let Value::Object(m) = val {
                    vars = m;
                }
            }
            "tags" if include => tags = tag_list(&val),
            "ignore_errors" | "no_log" | "register" | "timeout" if include => {
                own.push((k.clone(), val))
            }
            other if include && super::loop_key(other, &val, v, file, &mut looping)? => {}
            other if include => {
                return Err(syntax(format!(
                    "{}: keyword '{other}' on include_role is not supported by etcd-agent (name, when, vars, tags)",
                    at(file, v)
                )))
            }
            other => {
                reference.insert(other.to_string(), val);
            }
        }
    }
    let role_name = reference_name(&Value::Object(reference.clone())).unwrap_or_default();
    let entry = Value::Object(reference);
    // privacy (ansible-core's rule): `public` when given; else an import is public unless
    // `private_role_vars` is on, an include private unless it is explicitly off
    let private = crate::config::private_role_vars();
    if !include {
        let public = public.unwrap_or(private != Some(true));
        return expand(
            &entry,
            &at(file, node),
            inherit,
            (tasks_from.as_deref(), &files),
            Once::given(allow_duplicates),
            public,
        )
        .map(|(items, _)| items);
    }
    let public = public.unwrap_or(private == Some(false));
    let mut inner = inherit.clone();
    // the include's `vars` are include params: above set_fact and include_vars
    inner.params.extend(vars.clone());
    // `apply`: keywords the role's tasks get as if a block around them set them
    if let Some(apply) = &apply {
        inner = super::applied(inner, apply, file, node)?;
    }
    // a templated role name or `tasks_from`, or a loop: the role is found and expanded when a
    // host reaches the include, once per distinct name, file and item
    let templated_from = tasks_from
        .as_deref()
        .is_some_and(crate::jinja::value::is_template);
    if crate::jinja::value::is_template(&role_name)
        || templated_from
        || looping.loop_items.is_some()
    {
        // a role named literally is known now: its handlers join the play's (once), so a
        // looped include can notify them
        if !crate::jinja::value::is_template(&role_name) {
            join_handlers(&role_name, &at(file, node), &inner, &files)?;
        }
        if public {
            return Err(syntax(format!(
                "{}: include_role with public: true and a loop or a templated name is not supported by etcd-agent",
                at(file, node)
            )));
        }
        let name = task_name.unwrap_or_else(|| format!("include_role : {role_name}"));
        let deferred = super::Deferred {
            file: file.clone(),
            inherit: inner,
            depth: 0,
            after: std::sync::Mutex::new(super::After::default()),
            role: Some(super::RoleInclude {
                tasks_from,
                files,
                once: Once::given(allow_duplicates),
                at: at(file, node),
            }),
        };
        let mut item = super::deferred_item(
            ("include_role", &name, &role_name),
            (node, file),
            inherit,
            (when, vars, tags),
            (&own, looping),
            deferred,
        );
        if let Item::Deferred { step, .. } = &mut item {
            if let Some(task) = Arc::get_mut(&mut step.task) {
                task.args
                    .insert("_include_args".into(), Value::Object(include_args));
            }
        }
        return Ok(vec![item]);
    }
    let handlers_before = inherit
        .play_roles
        .as_ref()
        .map(|r| lock(r).handlers.len())
        .unwrap_or(0);
    let expanded = expand(
        &entry,
        &at(file, node),
        &inner,
        (tasks_from.as_deref(), &files),
        Once::given(allow_duplicates),
        false,
    );
    // the handlers it brought are an include's: after the play's own
    if let Some(r) = &inherit.play_roles {
        let mut roles = lock(r);
        let at = handlers_before.min(roles.handlers.len());
        let added = roles.handlers.split_off(at);
        roles.late_handlers.extend(added);
    }
    // a role that cannot be loaded (not there) fails the include where a host runs it (a
    // `when` may skip it), as ansible-core loads an included role then; a parser error in it
    // is the run's
    let (items, role, load_error) = match expanded {
        Ok((items, role)) => (items, Some(role), None),
        Err(e) if !crate::error::is_parser_error(&e) => (Vec::new(), None, Some(format!("{e:#}"))),
        Err(e) => return Err(e),
    };
    let name = task_name.unwrap_or_else(|| format!("include_role : {role_name}"));
    let mut item = include_item(
        ("include_role", &name, &role_name),
        (node, file),
        inherit,
        (when, vars, tags),
        items,
    );
    if let Item::Include { step, .. } = &mut item {
        super::set_own_keywords(step, &own);
        let task = Arc::make_mut(&mut step.task);
        task.exposes = role.filter(|_| public);
        task.args
            .insert("_include_args".into(), Value::Object(include_args));
        if let Some(why) = load_error {
            task.args.insert("_load_error".into(), Value::String(why));
        }
    }
    Ok(vec![item])
}

/// The items of an `include_role` deferred to run time ([`super::Deferred`]): the role `name`
/// and `tasks_from` (as rendered for the host; the include's own when not given) with
/// `inherit` (the include's vars and the loop variables). The role's handlers, the first time
/// it comes, join the play's ([`PlayRoles::runtime_handlers`]).
pub(super) fn expand_included(
    name: &str,
    tasks_from: Option<&str>,
    include: &super::RoleInclude,
    inherit: &Inherit,
) -> Result<Vec<Item>> {
    let entry = serde_json::json!({ "role": name });
    let handlers_before = inherit
        .play_roles
        .as_ref()
        .map(|r| r.lock().unwrap_or_else(|e| e.into_inner()).handlers.len())
        .unwrap_or(0);
    let (items, _) = expand(
        &entry,
        &include.at,
        inherit,
        // (a templated one the host's rendering omitted stays omitted)
        (
            tasks_from.or(include
                .tasks_from
                .as_deref()
                .filter(|t| !crate::jinja::value::is_template(t))),
            &include.files,
        ),
        include.once,
        false,
    )?;
    // the handlers it brought join the play's now, after the others (ansible-core adds an
    // included role's handlers when the include runs)
    if let Some(r) = &inherit.play_roles {
        let mut roles = lock(r);
        let at = handlers_before.min(roles.handlers.len());
        let added = roles.handlers.split_off(at);
        roles.runtime_handlers.extend(added);
    }
    Ok(items)
}

/// What marks a role's handlers file as joined to the play's handlers: the role (its
/// `handlers/main`) or, with `handlers_from`, that file.
fn handlers_key(role: &Role, files: &RoleFiles) -> PathBuf {
    match &files.handlers {
        Some(h) => role.path.join("handlers").join(h),
        None => role.path.clone(),
    }
}

/// The handlers of role `name` (`handlers/main` or `handlers_from`) join the play's, if they
/// have not yet: for an `include_role` expanded per host later (a loop, a templated
/// `tasks_from`), whose role is known when the play is parsed.
fn join_handlers(name: &str, at: &str, inherit: &Inherit, files: &RoleFiles) -> Result<()> {
    let Some(collector) = inherit.play_roles.clone() else {
        return Ok(());
    };
    let playbook_dir = lock(&collector).playbook_dir.clone();
    // a role that cannot be loaded is the include's error when a host reaches it, as in
    // ansible-core (it may never run: a `when`, an empty loop)
    let Ok(role) = Role::load(name, &playbook_dir, &inherit.collections, at) else {
        return Ok(());
    };
    let key = handlers_key(&role, files);
    if lock(&collector).handled.contains(&key) {
        return Ok(());
    }
    let Some(path) = role.handlers_file(files.handlers.as_deref()) else {
        return Ok(());
    };
    let mut inner = inherit.clone();
    inner.collections = role.search_list(inherit.default_collection.as_deref());
    if let Some(parent) = &inherit.role {
        inner.parent_roles.insert(0, parent.clone());
    }
    inner.role = Some(role.clone());
    let handlers = handler_items(&task_nodes(&path)?, &Arc::new(path), &inner)?;
    let mut roles = lock(&collector);
    roles.handled.push(key);
    roles.late_handlers.extend(handlers);
    Ok(())
}

/// Whether a role reference already run for a host (with the same parameters) runs again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Once {
    /// It runs every time (an include or import without `allow_duplicates: false`).
    Never,
    /// Once, unless the role's `meta/main.yml` sets `allow_duplicates` (`roles:`,
    /// dependencies).
    UnlessAllowed,
    /// Once, whatever the role's meta says (`allow_duplicates: false` on the include).
    Always,
}

impl Once {
    /// For an include or import whose `allow_duplicates` is `given`.
    fn given(given: Option<bool>) -> Self {
        match given {
            Some(false) => Once::Always,
            _ => Once::Never,
        }
    }
}

/// One role reference (a name, or a mapping with `role` and keywords or parameters).
/// `once`: whether it runs again for a host that ran it (see [`Once`]);
/// `expose`: its defaults and vars become the play's.
fn expand(
    entry: &Value,
    at: &str,
    inherit: &Inherit,
    (tasks_from, files): (Option<&str>, &RoleFiles),
    once: Once,
    expose: bool,
) -> Result<(Vec<Item>, Arc<Role>)> {
    let name = reference_name(entry)
        .ok_or_else(|| syntax(format!("{at}: a role needs a name (`role:`)")))?;
    let mut inner = inherit.clone();
    if let Value::Object(m) = entry {
        for (k, v) in m {
            match k.as_str() {
                "role" | "name" => {}
                "when" => inner.when.extend(list_of(v)),
                "tags" => inner.tags.extend(tag_list(v)),
                "vars" => {
                    if let Value::Object(vars) = v {
                        inner.vars.extend(vars.clone());
                    }
                }
                k if INHERITED.contains(&k) => {
                    inner.keywords.retain(|(x, _)| x != k);
                    inner.keywords.push((k.to_string(), v.clone()));
                }
                // anything else is a role parameter: a variable of the role's tasks (and of
                // its dependencies), above facts
                _ => {
                    inner.params.insert(k.clone(), v.clone());
                }
            }
        }
    }
    let collector = inherit
        .play_roles
        .clone()
        .ok_or_else(|| syntax(format!("{at}: roles are only known inside a play")))?;
    // a templated name or `tasks_from` takes what is known before any host, with the
    // reference's own vars (see `static_vars`)
    let name = super::static_vars::resolve(&name, &inner, "role name", at)?;
    let tasks_from = tasks_from
        .map(|f| super::static_vars::resolve(f, &inner, "tasks_from", at))
        .transpose()?;
    let tasks_from = tasks_from.as_deref();
    let playbook_dir = lock(&collector).playbook_dir.clone();
    let role = Role::load(&name, &playbook_dir, &inner.collections, at)?;
    let role = if files.vars.is_some() || files.defaults.is_some() {
        Arc::new(
            role.with_files(files.vars.as_deref(), files.defaults.as_deref())
                .map_err(|e| syntax(format!("{at}: {e}")))?,
        )
    } else {
        role
    };
    // the role's tasks and dependencies search the role's own collections (Ansible's rule)
    inner.collections = role.search_list(inherit.default_collection.as_deref());
    let mut params = match entry {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    params.remove("role");
    params.remove("name");
    // other files make another instance of the role
    for (k, v) in [
        ("vars_from", &files.vars),
        ("defaults_from", &files.defaults),
        ("handlers_from", &files.handlers),
    ] {
        if let Some(v) = v {
            params.insert(k.into(), Value::String(v.clone()));
        }
    }
    let instance = (role.path.clone(), Value::Object(params));
    // as ansible-core: a role reference met again runs again, but each host runs it once
    // (a host for which it was skipped or failed before the end runs it the next time)
    let once = match once {
        Once::Never => false,
        Once::UnlessAllowed => !role.allow_duplicates,
        Once::Always => true,
    };
    let instance_id = once.then(|| {
        let mut roles = lock(&collector);
        match roles.run.iter().find(|(i, _)| *i == instance) {
            Some((_, id)) => *id,
            None => {
                let id = NEXT_INSTANCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                roles.run.push((instance.clone(), id));
                id
            }
        }
    });
    let first_time = {
        let mut roles = lock(&collector);
        if expose && !roles.roles.iter().any(|r| r.path == role.path) {
            roles.roles.push(role.clone());
        }
        // each handlers file of the role joins once
        let key = handlers_key(&role, files);
        let first_time = !roles.handled.contains(&key);
        if first_time {
            roles.handled.push(key);
        }
        first_time
    };
    let mut items = Vec::new();
    let mut deps = inner.clone();
    deps.role = None;
    deps.role_instance = None;
    for dep in &role.dependencies {
        items.extend(
            expand(
                dep,
                at,
                &deps,
                (None, &RoleFiles::default()),
                Once::UnlessAllowed,
                expose,
            )?
            .0,
        );
    }
    // a role included or imported by another role's task has it as its nearest parent
    if let Some(parent) = &inherit.role {
        inner.parent_roles.insert(0, parent.clone());
    }
    inner.role = Some(role.clone());
    inner.role_instance = instance_id;
    inner.role_run = Some(NEXT_INSTANCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    if first_time {
        // a role's handlers join the play's once, however often the role runs
        match role.handlers_file(files.handlers.as_deref()) {
            Some(path) => {
                let handlers = handler_items(&task_nodes(&path)?, &Arc::new(path), &inner)?;
                lock(&collector).handlers.extend(handlers);
            }
            None => {
                if let Some(h) = &files.handlers {
                    return Err(syntax(format!(
                        "{at}: Could not find specified file in role: handlers/{h}"
                    )));
                }
            }
        }
    }
    if let Some(why) = tasks_from.and_then(|f| role.outside_tasks(f)) {
        return Err(syntax(format!("{at}: {why}")));
    }
    match role.tasks_file(tasks_from) {
        Some(path) => {
            let nodes = task_nodes(&path)?;
            items.extend(parse_items(&nodes, &Arc::new(path), &inner, 1)?);
        }
        None if tasks_from.is_some() => {
            return Err(syntax(format!(
                "{at}: the role '{name}' has no tasks file {:?}",
                tasks_from.unwrap_or_default()
            )))
        }
        None => {}
    }
    if instance_id.is_some() {
        // the implicit end of the role (ansible-core's `role_complete`, tagged `always`,
        // under the role's conditions): the hosts it runs for have completed the reference
        let at = |line| Node {
            line,
            col: 1,
            kind: NodeKind::Scalar(Value::Null),
        };
        let scalar = |text: &str| Node {
            kind: NodeKind::Scalar(Value::String(text.into())),
            ..at(0)
        };
        let marker = Node {
            kind: NodeKind::Map(vec![
                ("meta".into(), scalar("role_complete")),
                (
                    "tags".into(),
                    Node {
                        kind: NodeKind::Seq(vec![scalar("always")]),
                        ..at(0)
                    },
                ),
            ]),
            ..at(0)
        };
        let origin = Arc::new(role.path.join("tasks"));
        items.extend(parse_items(&[marker], &origin, &inner, 1)?);
    }
    Ok((items, role))
}

/// Instance ids of role references, unique in the run.
static NEXT_INSTANCE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

fn lock(collector: &Mutex<PlayRoles>) -> std::sync::MutexGuard<'_, PlayRoles> {
    collector.lock().unwrap_or_else(|e| e.into_inner())
}

/// A boolean option of a role include, templated (when it is a template) with what is known
/// when the play loads, as ansible-core templates `public` and `allow_duplicates`.
fn static_bool(value: &Value, inherit: &Inherit, what: &str, place: &str) -> Result<bool> {
    let value = match value {
        Value::String(text) if crate::jinja::value::is_template(text) => {
            Value::String(super::static_vars::resolve(text, inherit, what, place)?)
        }
        other => other.clone(),
    };
    Ok(crate::jinja::value::ansible_boolean(&value))
}
