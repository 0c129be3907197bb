//! Connection settings for a host from its variables (Ansible's connection variables), with
//! the command line's as defaults: `-c` below `ansible_connection` (and the `connection`
//! keyword, which the caller puts in as that variable when the host has none),
//! `--ssh-common-args`/`--ssh-extra-args` below `ansible_ssh_common_args`/`_extra_args`.

use super::options::RunOptions;
use crate::jinja::value::{ansible_boolean, scalar_string};
use crate::transport::{ConnSpec, SshSpec};
use serde_json::{Map, Value};

fn var<'a>(vars: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .find_map(|n| vars.get(*n).filter(|v| !v.is_null()))
}

/// Builds the connection spec for `host` from its (templated) variables.
pub fn spec_for(
    host: &str,
    vars: &Map<String, Value>,
    play_user: Option<&str>,
    opts: &RunOptions,
) -> Result<ConnSpec, String> {
    let connection = var(vars, &["ansible_connection"])
        .map(scalar_string)
        .or_else(|| opts.connection.clone())
        .unwrap_or_else(|| "ssh".into());
    match connection.as_str() {
        "local" => return Ok(ConnSpec::Local),
        "ssh" | "smart" | "openssh" => {}
        // any other connection plugin runs through ansible-core when it is on the controller
        other => {
            let python = crate::ansible_modules::controller_python().map_err(|why| {
                format!(
                    "connection type '{other}' is not supported by etcd-agent (ssh, local), and \
                     ansible-core is not available on the controller to run it ({why})"
                )
            })?;
            let options: Map<String, Value> = vars
                .iter()
                .filter(|(k, _)| k.starts_with("ansible_"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            // as ansible-playbook adds them: beside the playbook, in the task's role
            let role = vars
                .get("role_path")
                .map(|d| std::path::PathBuf::from(scalar_string(d)));
            let dirs = role
                .into_iter()
                .chain([opts.playbook_dir.clone()])
                .map(|d| d.join("connection_plugins"))
                .collect();
            return Ok(ConnSpec::Plugin(crate::transport::PluginSpec {
                plugin: other.to_string(),
                host: host.to_string(),
                vars: Value::Object(options).to_string(),
                python,
                dirs,
            }));
        }
    }
    let address = var(vars, &["ansible_host", "ansible_ssh_host"])
        .map(scalar_string)
        .unwrap_or_else(|| host.to_string());
    let port = match var(vars, &["ansible_port", "ansible_ssh_port"]) {
        Some(v) => Some(
            scalar_string(v)
                .trim()
                .parse::<u16>()
                .map_err(|_| format!("invalid ansible_port {v} for host {host}"))?,
        ),
        None => None,
    };
    let user = var(vars, &["ansible_user", "ansible_ssh_user"])
        .map(scalar_string)
        .or_else(|| play_user.map(str::to_string))
        .or_else(|| opts.remote_user.clone());
    let key = var(
        vars,
        &["ansible_ssh_private_key_file", "ansible_private_key_file"],
    )
    .map(|v| std::path::PathBuf::from(scalar_string(v)))
    .or_else(|| opts.private_key.clone());
    // as ssh.py builds the command line: `ssh_args`, then the common args, then the extra
    // args; a host variable replaces the command line's value
    let mut extra_args = opts.ssh_args.clone();
    for (name, cli) in [
        ("ansible_ssh_common_args", &opts.ssh_common_args),
        ("ansible_ssh_extra_args", &opts.ssh_extra_args),
    ] {
        let text = match vars.get(name) {
            Some(v) => Some(scalar_string(v)),
            None => cli.clone(),
        };
        if let Some(text) = text {
            let words = shlex::split(&text)
                .ok_or_else(|| format!("cannot split {name} {text:?} for host {host}"))?;
            extra_args.extend(words);
        }
    }
    let host_key_checking = var(
        vars,
        &["ansible_ssh_host_key_checking", "ansible_host_key_checking"],
    )
    .map(ansible_boolean)
    .unwrap_or(opts.host_key_checking);
    let timeout = var(vars, &["ansible_ssh_timeout", "ansible_timeout"])
        .and_then(|v| scalar_string(v).parse().ok())
        .unwrap_or(opts.timeout);
    Ok(ConnSpec::Ssh(SshSpec {
        host: address,
        port,
        user,
        key,
        extra_args,
        host_key_checking,
        timeout,
    }))
}
