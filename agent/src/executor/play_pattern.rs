//! A play's `hosts:` pattern (and its name: the pattern's when the play has none), its
//! `name` and its `strategy` templated before the play
//! runs, as ansible-core templates a play's keywords with its `vars`, its roles' defaults and
//! vars, the extra vars and `groups` (no host's variables: the hosts are not known yet).

use super::vars::{self, Layers};
use crate::inventory::Vars;
use crate::jinja::value::{is_template, python_repr, scalar_string};
use crate::jinja::Templar;
use crate::playbook::Play;
use minijinja::Value as JValue;
use serde_json::Value;

/// A play's host pattern could not be templated.
#[derive(Debug, thiserror::Error)]
#[error("Error templating the play's {what} {pattern:?}: {why}")]
pub struct PatternError {
    /// The keyword (`hosts`, `strategy`).
    pub what: &'static str,
    /// The pattern as written.
    pub pattern: String,
    /// Why templating failed.
    pub why: String,
}

/// The play with `hosts` templated (a list result joined with `,`) and, for an unnamed play,
/// the name following it (a list in Python's `repr`); the play unchanged when its pattern holds no template.
pub fn templated(
    play: &Play,
    extra: &Vars,
    groups: &JValue,
    templar: &Templar,
) -> Result<Play, PatternError> {
    let strategy_templated = play.strategy.as_deref().is_some_and(is_template);
    let name_templated = play.named && is_template(&play.name);
    if !is_template(&play.hosts) && !strategy_templated && !name_templated {
        return Ok(play.clone());
    }
    let role_defaults: Vec<&Vars> = play.roles.iter().map(|r| &r.defaults).collect();
    let role_vars: Vec<&Vars> = play.roles.iter().map(|r| &r.vars).collect();
    let empty = Vars::new();
    let layers = Layers {
        role_defaults: &role_defaults,
        inventory: &empty,
        play: &play.vars,
        role_vars: &role_vars,
        task: &empty,
        included: &empty,
        cached_facts: &empty,
        facts: &empty,
        params: &empty,
        extra,
    };
    let (_, ctx) = vars::build(&layers, &[("groups", groups.clone())], templar);
    let mut out = play.clone();
    // the name the play is announced by, templated as its keywords are (kept as written
    // when it cannot be)
    if name_templated {
        if let Ok(v) = templar.render_str(&play.name, &ctx.value()) {
            out.name = scalar_string(&v);
        }
    }
    if let Some(strategy) = play.strategy.as_deref().filter(|s| is_template(s)) {
        let value = templar
            .render_str(strategy, &ctx.value())
            .map_err(|e| PatternError {
                what: "strategy",
                pattern: strategy.to_string(),
                why: format!("{e:#}"),
            })?;
        out.strategy = Some(scalar_string(&value));
    }
    if !is_template(&play.hosts) {
        return Ok(out);
    }
    let rendered = templar
        .render_str(&play.hosts, &ctx.value())
        .map_err(|e| PatternError {
            what: "hosts",
            pattern: play.hosts.clone(),
            why: format!("{e:#}"),
        })?;
    let (hosts, name) = match &rendered {
        Value::Array(items) => (
            items
                .iter()
                .map(scalar_string)
                .collect::<Vec<_>>()
                .join(","),
            // Ansible names the play after the templated value: a list as Python shows it
            python_repr(&rendered),
        ),
        other => (scalar_string(other), scalar_string(other)),
    };
    if !out.named {
        out.name = name;
    }
    out.hosts = hosts;
    Ok(out)
}
