//! Running an ansible-core payload on a target: uploaded once per connection, run with the
//! host's Python, its `{"ANSIBLE_MODULE_ARGS": ...}` on stdin (never in argv or in a file
//! another user can read), its result read as Ansible reads it.

use super::AnsibleModule;
use crate::builtins::{args_file, become_files, failed, module_result, ActionCtx, ResultMap};
use crate::jinja::value::ansible_boolean;
use crate::transport::{quote, Connection, TransportError};
use serde_json::{Map, Value};

/// ansible-core's `INTERPRETER_PYTHON_FALLBACK`, the order interpreter discovery tries.
const FALLBACK: &[&str] = &[
    "python3.13",
    "python3.12",
    "python3.11",
    "python3.10",
    "python3.9",
    "python3.8",
    "/usr/bin/python3",
    "python3",
];

/// Runs `module` on the task's target.
pub async fn run(ctx: &ActionCtx<'_>, module: &AnsibleModule) -> Result<ResultMap, TransportError> {
    if let Some(msg) = action_plugin_refusal(module, &ctx.args) {
        return Ok(failed(msg));
    }
    let conn = ctx.connection().await?;
    let path = conn.ensure_module(&module.file).await?;
    let (python, discovered) = match configured_python(ctx) {
        Some(p) => (p, false),
        None => (discover_python(&conn).await?, true),
    };
    let tmpdir = conn.tmpdir().await?;
    let out = match ctx.become_user().filter(|u| *u != "root") {
        Some(user) => {
            let params = params(ctx, module, None);
            // the payload and its arguments go to a directory of the become user's own
            let dir = format!("{tmpdir}/become-{}", unique());
            let name = path.rsplit('/').next().unwrap_or("module");
            if let Err(failed) = become_files(&conn, &path, &dir, name, user, &params).await? {
                return Ok(failed);
            }
            let cmd = format!(
                "{py} {m} < {a}",
                py = quote(&python),
                m = quote(&format!("{dir}/{name}")),
                a = quote(&format!("{dir}/args")),
            );
            let cleanup = format!("rm -rf {}", quote(&dir));
            ctx.exec_then(&conn, &cmd, Some(&cleanup), None, None)
                .await?
        }
        None => {
            let params = params(ctx, module, Some(&tmpdir));
            let cmd = format!("{} {}", quote(&python), quote(&path));
            ctx.exec(&conn, &cmd, Some(&params)).await?
        }
    };
    let mut result = module_result(&out);
    decode_summaries(&mut result);
    if discovered {
        // as Ansible returns it, so later tasks on the host use it without asking again
        let facts = result
            .entry("ansible_facts")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(f) = facts {
            f.insert("discovered_interpreter_python".into(), python.into());
        }
    }
    Ok(result)
}

/// ansible-core 2.19 modules send `warnings` and `deprecations` as tagged summaries
/// (`{"__ansible_type": "WarningSummary", "event": {"msg": ...}}`); the controller turns
/// them back into what a registered result shows: a warning's text, a deprecation's `msg`
/// with its `version`/`date`, `deprecator` and `collection_name`.
fn decode_summaries(result: &mut ResultMap) {
    let event_msg = |v: &Value| {
        v.get("event")
            .and_then(|e| e.get("msg"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    if let Some(Value::Array(list)) = result.get_mut("warnings") {
        for w in list.iter_mut() {
            if let Some(msg) = event_msg(w) {
                *w = Value::String(msg);
            }
        }
    }
    if let Some(Value::Array(list)) = result.get_mut("deprecations") {
        for d in list.iter_mut() {
            if let Some(msg) = event_msg(d) {
                let mut m = Map::new();
                m.insert("msg".into(), msg.into());
                for k in ["version", "date"] {
                    if let Some(v) = d.get(k).filter(|v| !v.is_null()) {
                        m.insert(k.into(), v.clone());
                    }
                }
                // who deprecates: the module (`ansible.legacy.noisy`, type `module`) or a
                // collection; its collection is `collection_name`
                if let Some(p) = d.get("deprecator").filter(|p| p.is_object()) {
                    // a tagged `PluginType` (`{"value": "module"}`) is its value
                    let kind = match p.get("type") {
                        Some(Value::Object(t)) => t.get("value").cloned().unwrap_or(Value::Null),
                        Some(v) => v.clone(),
                        None => Value::Null,
                    };
                    let name = p.get("resolved_name").cloned().unwrap_or(Value::Null);
                    if let Some(name) = name.as_str() {
                        let parts: Vec<&str> = name.split('.').collect();
                        let collection = match kind {
                            Value::String(_) if parts.len() > 2 => parts[..2].join("."),
                            _ => name.to_string(),
                        };
                        m.insert("collection_name".into(), collection.into());
                    }
                    let mut plugin = Map::new();
                    plugin.insert("resolved_name".into(), name);
                    plugin.insert("type".into(), kind);
                    m.insert("deprecator".into(), Value::Object(plugin));
                }
                *d = Value::Object(m);
            }
        }
    }
}

/// The payload's stdin: the arguments with the `_ansible_*` keys ansible-core 2.19's
/// `_update_module_args` adds.
fn params(ctx: &ActionCtx<'_>, module: &AnsibleModule, tmpdir: Option<&str>) -> Vec<u8> {
    let mut args = args_file(ctx, tmpdir);
    if let Value::Object(m) = &mut args {
        m.remove("_ansible_string_conversion_action");
        m.insert("_ansible_tracebacks_for".into(), Value::Array(Vec::new()));
        m.insert("_ansible_version".into(), module.version.clone().into());
    }
    let body = serde_json::json!({ "ANSIBLE_MODULE_ARGS": args });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// `ansible_python_interpreter`, or the interpreter discovered on this host earlier in the run
/// (`ansible_facts.discovered_interpreter_python`); `None`: discover it (`auto` modes too).
fn configured_python(ctx: &ActionCtx<'_>) -> Option<String> {
    let text = |v: minijinja::Value| v.as_str().map(str::to_string);
    let set = ctx
        .vars
        .get_attr("ansible_python_interpreter")
        .ok()
        .and_then(text)
        .map(|s| match ctx.templar.render_str(&s, ctx.vars) {
            Ok(Value::String(r)) => r,
            _ => s,
        })
        .filter(|s| !s.is_empty() && !s.starts_with("auto"));
    set.or_else(|| {
        ctx.vars
            .get_attr("ansible_facts")
            .ok()?
            .get_attr("discovered_interpreter_python")
            .ok()
            .and_then(text)
    })
}

/// Ansible's interpreter discovery: the first of [`FALLBACK`] the target's shell finds,
/// `/usr/bin/python3` when none is.
async fn discover_python(conn: &Connection) -> Result<String, TransportError> {
    let probes: Vec<String> = FALLBACK
        .iter()
        .map(|p| format!("command -v {}", quote(p)))
        .collect();
    let cmd = format!("echo FOUND; {}; echo ENDFOUND", probes.join("; "));
    let out = conn.exec(&cmd, None, None).await?;
    let stdout = out.stdout_text();
    let found = stdout
        .split("FOUND")
        .nth(1)
        .and_then(|rest| rest.lines().map(str::trim).find(|l| l.starts_with('/')))
        .unwrap_or("/usr/bin/python3");
    Ok(found.to_string())
}

/// A task that needs its module's action plugin to do controller-side work: the message
/// refusing it. `unarchive` runs with `remote_src: true`; `uri` without `src` (or with
/// `remote_src: true`).
fn action_plugin_refusal(module: &AnsibleModule, args: &Map<String, Value>) -> Option<String> {
    let flag = |k: &str| args.get(k).is_some_and(ansible_boolean);
    match module.fqcn.as_str() {
        "ansible.builtin.unarchive" if !flag("remote_src") && !args.contains_key("copy") => Some(
            "unarchive of a file from the controller (remote_src: false) is not supported by etcd-agent; copy the archive to the host first and use remote_src: true".into(),
        ),
        "ansible.builtin.unarchive" if args.contains_key("copy") => Some(
            "unarchive option 'copy' is not supported by etcd-agent; use remote_src: true".into(),
        ),
        "ansible.builtin.uri" if args.contains_key("src") && !flag("remote_src") => Some(
            "uri with src from the controller is not supported by etcd-agent; use body, or remote_src: true".into(),
        ),
        _ => None,
    }
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
