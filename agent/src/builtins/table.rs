//! The builtins, declared once: one [`Builtin`] per module (its names and aliases, where it
//! runs, the arguments left untemplated, its argument spec and its run function). Every
//! question about builtins (`is_builtin`, `is_controller_only`, `uses_target`,
//! `untemplated_args`) and [`run_builtin`] are answered from [`TABLE`].

use super::spec::{Arg, Check};
use super::{
    assert, async_job, command, debug, facts, file, files, include_vars, lineinfile, pause, raw,
    script, simple, systemd, wait_for, ActionCtx, Params, ResultMap,
};
use crate::transport::TransportError;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;

/// What a builtin's run returns: `Err` only for unreachable targets.
pub type Outcome = Result<ResultMap, TransportError>;

/// A running builtin.
pub type RunFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// A builtin's run function: the context (its `args` validated) and the typed arguments.
pub type RunFn = for<'a> fn(&'a ActionCtx<'a>, &'a Params) -> RunFuture<'a>;

/// Where a builtin does its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    /// On the target: it needs the target's connection.
    OnTarget,
    /// On the controller only: it changes nothing on the target.
    OnController,
    /// By the executor (`meta`, includes): the builtin only reports.
    ByExecutor,
}

/// One builtin.
pub struct Builtin {
    /// Its short names (the first is the module's own, the others aliases).
    pub names: &'static [&'static str],
    /// Where it runs.
    pub runs: Runs,
    /// Arguments passed as written, not templated before the run (`debug: var`,
    /// `assert: that`).
    pub untemplated: &'static [&'static str],
    /// Its arguments and Ansible's rule for unknown keys.
    pub check: Check,
    /// Whether a refused argument's result says `changed: false` (all but `debug`, whose
    /// action validates before it builds its result).
    pub bad_args_changed: bool,
    /// Runs it.
    pub run: RunFn,
}

/// A builtin returning its result at once.
macro_rules! now {
    ($f:path) => {
        |ctx, p| Box::pin(async move { Ok($f(ctx, p)) })
    };
}

/// A builtin that awaits its work.
macro_rules! later {
    ($f:path) => {
        |ctx, p| Box::pin($f(ctx, p))
    };
}

/// Every builtin.
pub static TABLE: &[Builtin] = &[
    Builtin {
        names: &["command"],
        runs: Runs::OnTarget,
        untemplated: &[],
        check: command::ARGS,
        bad_args_changed: true,
        run: later!(command::run),
    },
    Builtin {
        names: &["shell"],
        runs: Runs::OnTarget,
        untemplated: &[],
        check: command::ARGS,
        bad_args_changed: true,
        run: later!(command::run),
    },
    Builtin {
        names: &["debug"],
        runs: Runs::OnController,
        untemplated: &["var"],
        check: debug::ARGS,
        bad_args_changed: false,
        run: now!(debug::run),
    },
    Builtin {
        names: &["assert"],
        runs: Runs::OnController,
        untemplated: &["that"],
        check: assert::ARGS,
        bad_args_changed: true,
        run: now!(assert::run),
    },
    Builtin {
        names: &["fail"],
        runs: Runs::OnController,
        untemplated: &[],
        check: simple::FAIL_ARGS,
        bad_args_changed: true,
        run: now!(simple::fail),
    },
    Builtin {
        names: &["set_fact"],
        runs: Runs::OnController,
        untemplated: &[],
        check: simple::SET_FACT_ARGS,
        bad_args_changed: true,
        run: now!(simple::set_fact),
    },
    Builtin {
        names: &["pause"],
        runs: Runs::OnController,
        untemplated: &[],
        check: pause::ARGS,
        bad_args_changed: true,
        run: later!(pause::run),
    },
    Builtin {
        names: &["add_host"],
        runs: Runs::OnController,
        untemplated: &[],
        check: simple::ADD_HOST_ARGS,
        bad_args_changed: true,
        run: now!(simple::add_host),
    },
    Builtin {
        names: &["group_by"],
        runs: Runs::OnController,
        untemplated: &[],
        check: simple::GROUP_BY_ARGS,
        bad_args_changed: true,
        run: now!(simple::group_by),
    },
    Builtin {
        names: &["wait_for"],
        runs: Runs::OnTarget,
        untemplated: &[],
        check: wait_for::ARGS,
        bad_args_changed: true,
        run: later!(wait_for::run),
    },
    Builtin {
        names: &["systemd", "systemd_service"],
        runs: Runs::OnTarget,
        untemplated: &[],
        check: systemd::SYSTEMD_ARGS,
        bad_args_changed: true,
        run: later!(systemd::run),
    },
    Builtin {
        names: &["service"],
        runs: Runs::OnTarget,
        untemplated: &[],
        check: systemd::SERVICE_ARGS,
        bad_args_changed: true,
        run: later!(systemd::run),
    },
    Builtin {
        names: &["setup"],
        runs: Runs::OnTarget,
        untemplated: &[],
        check: facts::ARGS,
        bad_args_changed: true,
        run: later!(facts::run),
    },
    Builtin {
        names: &["include_vars"],
        runs: Runs::OnController,
        untemplated: &[],
        check: include_vars::ARGS,
        bad_args_changed: true,
        run: now!(include_vars::run),
    },
    Builtin {
        names: &["raw"],
        runs: Runs::OnTarget,
        untemplated: &[],
        check: raw::ARGS,
        bad_args_changed: true,
        run: later!(raw::run),
    },
    Builtin {
        names: &["async_status"],
        runs: Runs::OnTarget,
        untemplated: &[],
        check: async_job::ARGS,
        bad_args_changed: true,
        run: later!(async_job::status),
    },
    Builtin {
        names: &["script"],
        runs: Runs::OnTarget,
        untemplated: &[],
        check: script::ARGS,
        bad_args_changed: true,
        run: later!(script::run),
    },
    Builtin {
        names: &["ping"],
        runs: Runs::OnTarget,
        untemplated: &[],
        check: simple::PING_ARGS,
        bad_args_changed: true,
        run: later!(simple::ping),
    },
    Builtin {
        names: &["meta"],
        runs: Runs::ByExecutor,
        untemplated: &[],
        check: Check::Any(&[]),
        bad_args_changed: true,
        run: now!(meta),
    },
    Builtin {
        names: &["include_tasks", "include_role"],
        runs: Runs::ByExecutor,
        untemplated: &[],
        // the file name is raw params: a template there names the file, not the arguments
        check: Check::Any(&[Arg::raw("_raw_params")]),
        bad_args_changed: true,
        run: now!(super::include_result),
    },
    Builtin {
        names: &["copy"],
        runs: Runs::OnTarget,
        untemplated: &[],
        check: files::copy::ARGS,
        bad_args_changed: true,
        run: later!(files::copy::run),
    },
    Builtin {
        names: &["template"],
        runs: Runs::OnTarget,
        untemplated: &[],
        check: files::template::ARGS,
        bad_args_changed: true,
        run: later!(files::template::run),
    },
    Builtin {
        names: &["fetch"],
        runs: Runs::OnTarget,
        untemplated: &[],
        check: files::fetch::ARGS,
        bad_args_changed: true,
        run: later!(files::fetch::run),
    },
    Builtin {
        names: &["file"],
        runs: Runs::OnTarget,
        untemplated: &[],
        check: file::ARGS,
        bad_args_changed: true,
        run: later!(file::run),
    },
    Builtin {
        names: &["stat"],
        runs: Runs::OnTarget,
        untemplated: &[],
        check: files::stat::ARGS,
        bad_args_changed: true,
        run: later!(files::stat::run),
    },
    Builtin {
        names: &["lineinfile"],
        runs: Runs::OnTarget,
        untemplated: &[],
        check: lineinfile::ARGS,
        bad_args_changed: true,
        run: later!(lineinfile::run),
    },
];

/// `meta` is run by the executor; reaching the builtin is a bug reported as a failure.
fn meta(_ctx: &ActionCtx<'_>, _p: &Params) -> ResultMap {
    super::failed("meta actions are run by the executor")
}

/// The builtin with short name (or alias) `name`.
pub fn lookup(name: &str) -> Option<&'static Builtin> {
    TABLE.iter().find(|b| b.names.contains(&name))
}

/// Every builtin's short names and aliases.
pub fn names() -> impl Iterator<Item = &'static str> {
    TABLE.iter().flat_map(|b| b.names.iter().copied())
}

/// Whether `name` is a builtin's short name.
pub fn is_builtin(name: &str) -> bool {
    lookup(name).is_some()
}

/// Whether builtin `name` changes nothing on the target (and so needs no connection; its
/// result is shown without a delegation arrow).
pub fn is_controller_only(name: &str) -> bool {
    lookup(name).is_some_and(|b| b.runs == Runs::OnController)
}

/// Whether builtin `name` runs on the target, and so needs its connection (the executor opens
/// it before the task takes a fork slot).
pub fn uses_target(name: &str) -> bool {
    lookup(name).is_some_and(|b| b.runs == Runs::OnTarget)
}

/// Whether the action takes free-form text (`_raw_params`), as `command` does; for any other
/// action (and every module that is not a builtin) a free-form value that is one template is
/// its arguments as a mapping (`add_host: "{{ host_data }}"`), as in ansible-core 2.19.
pub fn takes_raw_params(name: &str) -> bool {
    lookup(name).is_some_and(|b| b.check.declares("_raw_params"))
}

/// The arguments of builtin `name` passed as written, not templated before the run.
pub fn untemplated_args(name: &str) -> &'static [&'static str] {
    lookup(name).map_or(&[], |b| b.untemplated)
}

/// The arguments of a task for validation: the templated ones and the untemplated ones as
/// written.
fn task_args(b: &Builtin, ctx: &ActionCtx<'_>) -> serde_json::Map<String, Value> {
    let mut all = ctx.args.clone();
    for key in b.untemplated {
        if let Some(v) = ctx.raw_args.get(*key) {
            all.insert((*key).to_string(), v.clone());
        }
    }
    all
}

/// Runs a builtin: its arguments are validated first (a bad one fails the task in Ansible's
/// words, after the target is reached for a builtin that runs there, as Ansible's module
/// would); `Err` only for unreachable targets.
pub async fn run_builtin(ctx: &ActionCtx<'_>) -> Outcome {
    let Some(b) = lookup(&ctx.module) else {
        return Ok(super::failed(format!("unknown builtin {}", ctx.module)));
    };
    let params = match Params::validate(&ctx.module, b.check, &task_args(b, ctx)) {
        Ok(p) => p,
        Err(msg) => {
            if b.runs == Runs::OnTarget {
                ctx.connection().await?;
            }
            let mut m = super::failed(msg);
            if b.bad_args_changed {
                m.insert("changed".into(), Value::Bool(false));
            }
            return Ok(m);
        }
    };
    let mut args = params.given().clone();
    for key in b.untemplated {
        args.remove(*key);
    }
    let ctx = ctx.with_args(args);
    let mut result = (b.run)(&ctx, &params).await?;
    // a module's result says what it was called with, as AnsibleModule's does (the output
    // shows it from -vvv on, a registered result always has it)
    if INVOCATION.contains(&b.names[0]) && !result.contains_key("invocation") {
        let mut invocation = serde_json::Map::new();
        invocation.insert("module_args".into(), Value::Object(params.module_args()));
        result.insert("invocation".into(), Value::Object(invocation));
    }
    Ok(result)
}

/// The builtins that are plain modules in Ansible, whose declared arguments are the module's
/// whole `argument_spec`: their results carry `invocation.module_args`. (Action plugins
/// such as `debug` or `set_fact` have none.)
const INVOCATION: &[&str] = &["ping", "stat", "file", "lineinfile", "wait_for"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_queries_agree() {
        let all: Vec<&str> = names().collect();
        let mut dedup = all.clone();
        dedup.sort_unstable();
        dedup.dedup();
        assert_eq!(all.len(), dedup.len(), "a name is declared twice");
        for alias in ["systemd", "systemd_service"] {
            assert!(uses_target(alias));
        }
        assert!(is_controller_only("debug") && !uses_target("debug"));
        assert!(!is_controller_only("meta") && !uses_target("meta"));
        assert_eq!(untemplated_args("debug"), &["var"]);
        assert_eq!(untemplated_args("assert"), &["that"]);
        assert!(untemplated_args("command").is_empty());
        assert!(untemplated_args("no_such").is_empty());
        assert!(!is_builtin("no_such"));
    }

    #[test]
    fn declarations_are_consistent() {
        for b in TABLE {
            let args = b.check.args();
            for a in args.clone() {
                let clash = args
                    .clone()
                    .filter(|o| o.name == a.name || o.aliases.contains(&a.name))
                    .count();
                assert_eq!(clash, 1, "{}: {} declared twice", b.names[0], a.name);
                if let Some(d) = a.default.value() {
                    if !a.choices.is_empty() {
                        assert!(
                            a.choices.contains(&d.as_str().unwrap_or_default()),
                            "{}: default of {} not a choice",
                            b.names[0],
                            a.name
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn real_specs_refuse_what_the_agent_does_not_do() {
        let check = |name: &str, args: serde_json::Value| {
            let b = lookup(name).expect("builtin");
            Params::validate(name, b.check, args.as_object().expect("object"))
        };
        let e = check(
            "stat",
            serde_json::json!({"path": "/x", "checksum_algorithm": "md5"}),
        )
        .unwrap_err();
        assert!(
            e.contains("'checksum_algorithm' with value 'md5' is not supported by etcd-agent"),
            "{e}"
        );
        assert!(check("stat", serde_json::json!({"path": "/x", "follow": "no"})).is_ok());
        let e = check(
            "copy",
            serde_json::json!({"dest": "/x", "content": "a", "directory_mode": "0755"}),
        )
        .unwrap_err();
        assert!(
            e.contains("'directory_mode' is not supported by etcd-agent"),
            "{e}"
        );
        let e = check(
            "template",
            serde_json::json!({"src": "a", "dest": "b", "foo": 1}),
        )
        .unwrap_err();
        assert!(
            e.starts_with("Unsupported parameters for (ansible.legacy.copy) module: foo."),
            "{e}"
        );
        assert!(
            !e.contains("trim_blocks"),
            "action options are not listed: {e}"
        );
        assert!(check(
            "fetch",
            serde_json::json!({"src": "a", "dest": "b", "foo": 1})
        )
        .is_ok());
        let p = check(
            "systemd_service",
            serde_json::json!({"unit": "u", "daemon-reload": "yes"}),
        )
        .expect("aliases");
        assert_eq!(p.str("name").as_deref(), Some("u"));
        assert!(p.bool("daemon_reload"));
        let e = check(
            "service",
            serde_json::json!({"name": "u", "use": "sysvinit"}),
        )
        .unwrap_err();
        assert!(
            e.contains("'use' with value 'sysvinit' is not supported"),
            "{e}"
        );
    }
}
