//! `loop` / `with_items` / `loop_control` for one host: the task runs once per item (each item
//! evaluates `when` itself) and the results are folded into one result with `results`, as
//! Ansible registers and reports it.

use super::host_job::{HostJob, HostOutcome};
use super::host_task;
use super::outcome::ignores_errors;
use super::shared::Shared;
use crate::output::Status;
use crate::playbook::blocks::Extra;
use serde_json::{Map, Value};
use std::sync::Arc;

fn failed(shared: &Shared, job: &HostJob, msg: String) -> HostOutcome {
    let m = super::outcome::failed(msg);
    HostOutcome {
        host: job.host.clone(),
        status: Status::Failed,
        ignored: ignores_errors(shared, &job.task, &job.ctx),
        delegated_to: None,
        result: m,
        retries: Vec::new(),
        item_delegates: Vec::new(),
    }
}

/// Why a host's loop items could not be made.
enum ItemsError {
    /// An undefined value in them: the task fails unless its `when` skips it.
    Undefined(String),
    /// Anything else: the task fails.
    Other(String),
}

impl From<String> for ItemsError {
    fn from(msg: String) -> Self {
        ItemsError::Other(msg)
    }
}

/// The loop items for this host (templated; `with_items` flattens one level).
fn items(shared: &Shared, job: &HostJob, extra: &Extra) -> Result<Vec<Value>, ItemsError> {
    let Some(spec) = &extra.loop_items else {
        return Ok(Vec::new());
    };
    let rendered = shared
        .templar
        .render_value(spec, &job.ctx.value())
        .map_err(|e| {
            let undefined = e
                .chain()
                .any(|c| c.is::<crate::jinja::undefined::UndefinedVariable>());
            // ansible-core 2.19's words: the undefined value as a task failure, other errors
            // as they are
            if undefined {
                ItemsError::Undefined(format!("Task failed: {e:#}"))
            } else {
                ItemsError::Other(format!("{e:#}"))
            }
        })?;
    if let Some(name) = &extra.lookup {
        // `with_<lookup>: terms`: a list is the lookup's terms, anything else one term
        let terms = match rendered {
            Value::Array(terms) => terms,
            one => vec![one],
        };
        if crate::jinja::list_lookups::short(name).is_none() {
            // a lookup that reads the run's state (search path, playbook dir): through the
            // templates' own `query`
            let ctx = minijinja::context! { __etcd_agent_with_terms => terms, ..job.ctx.value() };
            return match shared
                .templar
                .eval(&format!("query('{name}', *__etcd_agent_with_terms)"), &ctx)
            {
                Ok(Value::Array(items)) => Ok(items),
                Ok(other) => Ok(vec![other]),
                Err(e) => Err(ItemsError::Other(format!("Task failed: {e:#}"))),
            };
        }
        return crate::jinja::list_lookups::run(name, &terms, &Map::new())
            .map_err(|e| ItemsError::Other(format!("Task failed: {e}")));
    }
    if extra.sequence_items {
        let terms = match rendered {
            Value::Array(terms) => terms,
            one => vec![one],
        };
        let mut out = Vec::new();
        for term in &terms {
            let text = crate::jinja::value::scalar_string(term);
            let numbers = crate::jinja::sequence::items(&text)
                .map_err(|e| format!("The lookup plugin 'sequence' failed: {e}"))?;
            out.extend(numbers.into_iter().map(Value::String));
        }
        return Ok(out);
    }
    if extra.dict_items {
        // with_dict: the dict lookup over the one term
        return crate::jinja::list_lookups::run("dict", &[rendered], &Map::new())
            .map_err(|e| ItemsError::Other(format!("Task failed: {e}")));
    }
    let list = match rendered {
        Value::Array(a) => a,
        Value::Null => Vec::new(),
        // `with_items` makes a list of anything
        other if extra.flatten_items => vec![other],
        other => {
            let kind = match &other {
                Value::Object(_) => "dict",
                Value::String(_) => "str",
                Value::Bool(_) => "bool",
                Value::Number(n) if n.is_f64() => "float",
                _ => "int",
            };
            return Err(ItemsError::Other(format!(
                "The `loop` value must resolve to a 'list', not '{kind}'."
            )));
        }
    };
    if !extra.flatten_items {
        return Ok(list);
    }
    Ok(list
        .into_iter()
        .flat_map(|v| match v {
            Value::Array(inner) => inner,
            other => vec![other],
        })
        .collect())
}

/// Per item of the loop, whether a template made it: an item written in the task's list as a
/// template other than one variable (a constant, a concatenation), whose text is then the
/// template's output, never trusted as an expression (see `jinja::trust`). A loop written as
/// one template keeps its items' own trust.
fn made_items(extra: &Extra, count: usize) -> Vec<bool> {
    match &extra.loop_items {
        Some(Value::Array(written)) if !extra.flatten_items && written.len() == count => written
            .iter()
            .map(|w| {
                crate::executor::vars::has_template(w)
                    && !w
                        .as_str()
                        .is_some_and(crate::jinja::template::reads_a_variable)
            })
            .collect(),
        _ => vec![false; count],
    }
}

/// Runs the job once per item and folds the outcomes.
pub async fn run(shared: Arc<Shared>, job: HostJob, extra: Extra) -> HostOutcome {
    let list = match items(&shared, &job, &extra) {
        Ok(l) => l,
        // ansible-core keeps an undefined value in the loop items for after `when`: a task its
        // condition skips is skipped, not failed
        Err(ItemsError::Undefined(msg)) => {
            let vars = job.ctx.value();
            return match super::when::gate(&shared.templar, &job.task, &vars) {
                super::when::Gate::Skip(result) => {
                    HostOutcome::new(&job, Status::Skipped, result, None)
                }
                _ => failed(&shared, &job, msg),
            };
        }
        Err(ItemsError::Other(msg)) => return failed(&shared, &job, msg),
    };
    let made = made_items(&extra, list.len());
    // `loop_var`/`index_var` may be templates of the task's variables
    let name = |written: &str| -> Result<String, String> {
        if !crate::jinja::value::is_template(written) {
            return Ok(written.to_string());
        }
        shared
            .templar
            .render_str(written, &job.ctx.value())
            .map(|v| crate::jinja::value::scalar_string(&v))
            .map_err(|e| format!("Task failed: loop_control: {e:#}"))
    };
    let var = match name(&extra.loop_var) {
        Ok(v) => v,
        Err(e) => return failed(&shared, &job, e),
    };
    let index_var = match extra.index_var.as_deref().map(name).transpose() {
        Ok(v) => v,
        Err(e) => return failed(&shared, &job, e),
    };
    let control = |v: &Option<Value>| -> Result<Option<Value>, String> {
        v.as_ref()
            .map(|v| shared.templar.render_value(v, &job.ctx.value()))
            .transpose()
            .map_err(|e| format!("{e:#}"))
    };
    let (pause, extended, allitems) = match (
        control(&extra.pause),
        control(&extra.extended),
        control(&extra.extended_allitems),
    ) {
        (Ok(p), Ok(e), Ok(a)) => (p, e, a),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return failed(&shared, &job, e),
    };
    let pause = match pause.as_ref().map(seconds) {
        Some(Err(e)) => return failed(&shared, &job, e),
        Some(Ok(p)) => p,
        None => 0.0,
    };
    let extended = extended
        .as_ref()
        .is_some_and(crate::jinja::value::python_truth);
    let allitems = allitems
        .as_ref()
        .is_none_or(crate::jinja::value::python_truth);
    let mut results = Vec::new();
    let (mut any_changed, mut any_failed, mut all_skipped, mut ignored) =
        (false, false, true, false);
    // ansible-core's rule: the task is unreachable when an item is; it is ignored as the
    // first unreachable item's `ignore_unreachable` says, unless a later one says no
    let mut unreachable: Option<bool> = None;
    let mut delegated_to = None;
    let mut item_delegates = Vec::new();
    // facts an item sets are seen by the next items (Ansible updates the loop's variables)
    let mut running = job.ctx.clone();
    for (i, item) in list.iter().enumerate() {
        if pause > 0.0 && i > 0 {
            tokio::time::sleep(std::time::Duration::from_secs_f64(pause)).await;
        }
        let mut ctx = running.clone();
        ctx.set(&var, item);
        if made[i] {
            ctx.set(
                crate::jinja::MADE_VARS_KEY,
                &serde_json::json!({ var.as_str(): true }),
            );
        }
        ctx.set("ansible_loop_var", &Value::String(var.clone()));
        if let Some(iv) = &index_var {
            ctx.set(iv, &Value::from(i));
            ctx.set("ansible_index_var", &Value::String(iv.clone()));
        }
        let place = extended.then(|| loop_place(&list, i, allitems));
        if let Some(place) = &place {
            ctx.set("ansible_loop", place);
        }
        // variables made from the loop's variables render now
        ctx.resolve_deferred(&shared.templar);
        let label_ctx = ctx.clone();
        let one = HostJob {
            host: job.host.clone(),
            task: job.task.clone(),
            vars: job.vars.clone(),
            ctx,
            play_become: job.play_become,
            play_become_method: job.play_become_method.clone(),
            play_user: job.play_user.clone(),
            connection_keyword: job.connection_keyword.clone(),
            play_env: job.play_env.clone(),
        };
        let o = host_task::run(shared.clone(), one, None).await;
        delegated_to = o.delegated_to.clone();
        item_delegates.push(o.delegated_to);
        let mut r = o.result;
        if let Some(Value::Object(facts)) = r.get("ansible_facts") {
            if o.status != Status::Failed {
                for (k, v) in facts {
                    running.set(k, v);
                }
            }
        }
        r.insert(var.clone(), item.clone());
        r.insert("ansible_loop_var".into(), Value::String(var.clone()));
        if let Some(iv) = &index_var {
            r.insert("ansible_index_var".into(), Value::String(iv.clone()));
            r.insert(iv.clone(), Value::from(i));
        }
        if let Some(place) = place {
            r.insert("ansible_loop".into(), place);
        }
        let mut status = o.status;
        // As ansible-core: the registered variable holds each item's result as soon as it is
        // known (the label and the next items see it), and the label is templated after the
        // item ran; a label that cannot be templated fails the item.
        if let Some(name) = &job.task.register {
            running.set(name, &Value::Object(r.clone()));
        }
        let label = match &extra.label {
            None => item.clone(),
            Some(l) => {
                let mut seen = label_ctx;
                if let Some(name) = &job.task.register {
                    seen.set(name, &Value::Object(r.clone()));
                }
                match shared.templar.render_value(l, &seen.value()) {
                    Ok(v) => v,
                    Err(e) => {
                        r.insert("failed".into(), Value::Bool(true));
                        r.insert(
                            "msg".into(),
                            Value::String(format!("Failed to template loop_control.label: {e:#}")),
                        );
                        status = Status::Failed;
                        item.clone()
                    }
                }
            }
        };
        r.insert("_ansible_item_label".into(), label);
        let stop = if extra.break_when.is_empty() || status == Status::Skipped {
            Ok(false)
        } else {
            let mut seen = running.clone();
            seen.set(&var, item);
            if let Some(name) = &job.task.register {
                seen.set(name, &Value::Object(r.clone()));
            }
            let vars = seen.value();
            extra.break_when.iter().try_fold(false, |any, c| {
                Ok::<bool, String>(
                    any || shared
                        .templar
                        .condition(c, &vars)
                        .map_err(|e| format!("{e:#}"))?,
                )
            })
        };
        match status {
            Status::Skipped => {}
            Status::Unreachable => {
                all_skipped = false;
                r.insert("unreachable".into(), Value::Bool(true));
                unreachable = Some(unreachable.unwrap_or(true) && o.ignored);
            }
            Status::Failed => {
                all_skipped = false;
                any_failed = true;
                ignored |=
                    o.ignored || super::outcome::ignores_errors(&shared, &job.task, &job.ctx);
            }
            Status::Changed => {
                all_skipped = false;
                any_changed = true;
            }
            _ => all_skipped = false,
        }
        results.push(Value::Object(r));
        match stop {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => return failed(&shared, &job, e),
        }
    }
    let mut m = Map::new();
    m.insert("changed".into(), Value::Bool(any_changed));
    let status = if list.is_empty() {
        m.insert("skipped".into(), Value::Bool(true));
        m.insert(
            "skipped_reason".into(),
            Value::String("No items in the list".into()),
        );
        Status::Skipped
    } else if any_failed {
        m.insert("failed".into(), Value::Bool(true));
        m.insert(
            "msg".into(),
            Value::String("One or more items failed".into()),
        );
        Status::Failed
    } else if unreachable.is_some() {
        m.insert("unreachable".into(), Value::Bool(true));
        m.insert("msg".into(), Value::String("All items completed".into()));
        Status::Unreachable
    } else if all_skipped {
        m.insert("skipped".into(), Value::Bool(true));
        m.insert("msg".into(), Value::String("All items skipped".into()));
        Status::Skipped
    } else {
        m.insert("msg".into(), Value::String("All items completed".into()));
        if any_changed {
            Status::Changed
        } else {
            Status::Ok
        }
    };
    m.insert("results".into(), Value::Array(results));
    HostOutcome {
        host: job.host.clone(),
        status,
        ignored: match status {
            Status::Failed => ignored,
            Status::Unreachable => unreachable == Some(true),
            _ => false,
        },
        delegated_to,
        result: m,
        retries: Vec::new(),
        item_delegates,
    }
}

/// `loop_control.pause` in seconds (an int or a float, maybe as text).
fn seconds(v: &Value) -> Result<f64, String> {
    let text = crate::jinja::value::scalar_string(v);
    match text.trim().parse::<f64>() {
        Ok(s) if s >= 0.0 && s.is_finite() => Ok(s),
        _ => Err(format!(
            "loop_control.pause must be a number of seconds, not {text:?}"
        )),
    }
}

/// `ansible_loop` for item `i` of `list` (`loop_control.extended`).
fn loop_place(list: &[Value], i: usize, allitems: bool) -> Value {
    let n = list.len();
    let mut m = Map::new();
    if allitems {
        m.insert("allitems".into(), Value::Array(list.to_vec()));
    }
    m.insert("index".into(), Value::from(i + 1));
    m.insert("index0".into(), Value::from(i));
    m.insert("first".into(), Value::Bool(i == 0));
    m.insert("last".into(), Value::Bool(i + 1 == n));
    m.insert("length".into(), Value::from(n));
    m.insert("revindex".into(), Value::from(n - i));
    m.insert("revindex0".into(), Value::from(n - i - 1));
    if i > 0 {
        m.insert("previtem".into(), list[i - 1].clone());
    }
    if i + 1 < n {
        m.insert("nextitem".into(), list[i + 1].clone());
    }
    Value::Object(m)
}
