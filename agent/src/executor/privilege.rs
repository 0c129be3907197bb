//! `become` for a host job: as in Ansible, `ansible_become*` variables override the keywords
//! (task, block, play), which override the command line (`--become`, `--become-user`,
//! `--become-method`, `--become-password-file`/`-K`); all are templated. They are connection
//! variables, so a delegated task takes them from the delegated host.

use super::host_job::HostJob;
use super::shared::Shared;
use crate::jinja::value::scalar_string;
use crate::secret::Secret;
use crate::transport::{BecomeMethod, ConnSpec, Escalation};
use minijinja::Value as JValue;
use serde_json::{Map, Value};

/// How the job's commands become another user, `None` when `become` is off or names the
/// user the connection already is; `conn_vars` and `conn_spec`: the connection variables
/// and settings of the host the action runs on.
pub fn escalation(
    shared: &Shared,
    job: &HostJob,
    conn_vars: &Map<String, Value>,
    conn_spec: &ConnSpec,
    vars: &JValue,
) -> Result<Option<Escalation>, String> {
    let templar = &shared.templar;
    let task = &job.task;
    let opts = &shared.opts;
    let become_var = |names: &[&str]| {
        names.iter().find_map(|name| {
            conn_vars
                .get(*name)
                .map(|v| templar.render_value(v, vars).unwrap_or_else(|_| v.clone()))
        })
    };
    let keyword = |name: &str, value: &str| match templar
        .render_value(&Value::String(value.to_string()), vars)
    {
        Ok(v) => Ok(scalar_string(&v)),
        Err(e) => Err(format!("Task failed: {name}: {e:#}")),
    };
    let become_on = become_var(&["ansible_become"])
        .map(|v| crate::jinja::value::ansible_boolean(&v))
        .or(task.r#become)
        .or(job.play_become)
        .unwrap_or(opts.r#become);
    if !become_on {
        return Ok(None);
    }
    let user = match become_var(&["ansible_become_user"]) {
        Some(v) => scalar_string(&v),
        None => match &task.become_user {
            Some(u) => keyword("become_user", u)?,
            None => opts.become_user.clone().unwrap_or_else(|| "root".into()),
        },
    };
    let method = match become_var(&["ansible_become_method"]) {
        Some(v) => BecomeMethod::parse(&scalar_string(&v)).map_err(|e| e.to_string())?,
        None => match task
            .become_method
            .as_deref()
            .or(job.play_become_method.as_deref())
        {
            Some(m) => {
                BecomeMethod::parse(&keyword("become_method", m)?).map_err(|e| e.to_string())?
            }
            None => opts.become_method,
        },
    };
    // ansible-core's `_low_level_execute_command`: no escalation to the user the connection
    // already is (the ssh user, or the controller's user for a local connection), unless
    // `become_allow_same_user`; checked after the method, so that a bad method is still an
    // error, as ansible-core loads the become plugin first
    let connection_user = match conn_spec {
        ConnSpec::Local => current_user(),
        ConnSpec::Ssh(ssh) => ssh.user.clone(),
        ConnSpec::Plugin(_) => None,
    };
    if connection_user.as_deref() == Some(user.as_str()) && !opts.become_allow_same_user {
        return Ok(None);
    }
    let own_password = match method {
        BecomeMethod::Sudo => "ansible_sudo_pass",
        BecomeMethod::Su => "ansible_su_pass",
    };
    let password = become_var(&[
        "ansible_become_password",
        "ansible_become_pass",
        own_password,
    ])
    .map(|v| Secret::new(scalar_string(&v)))
    .or_else(|| opts.become_password.clone());
    Ok(Some(Escalation {
        user,
        method,
        password,
    }))
}

/// The name of the user this process runs as (what a local connection is).
fn current_user() -> Option<String> {
    // SAFETY: getpwuid_r writes only into the buffers given; the result is copied out.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            libc::geteuid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        );
        if rc != 0 || found.is_null() {
            return std::env::var("USER").ok();
        }
        Some(
            std::ffi::CStr::from_ptr(pwd.pw_name)
                .to_string_lossy()
                .into_owned(),
        )
    }
}
