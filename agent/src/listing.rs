//! `--list-hosts`, `--list-tasks` and `--list-tags` of `etcd-agent playbook`, printed as
//! `ansible-playbook` prints them (`PlaybookCLI.run`), and `--list-hosts` of `etcd-agent
//! adhoc` as `ansible` prints it.

use crate::inventory::{pattern, Inventory};
use crate::playbook::blocks::{Item, Step};
use crate::playbook::Playbook;
use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::PathBuf;

/// What to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lists {
    /// `--list-hosts`.
    pub hosts: bool,
    /// `--list-tasks`.
    pub tasks: bool,
    /// `--list-tags`.
    pub tags: bool,
}

/// The listing of `books` (each with the path it was given as), tags already selected;
/// `inv` has the implicit localhost.
pub fn playbooks(
    books: &[(Playbook, PathBuf)],
    inv: &Inventory,
    limit: Option<&str>,
    lists: Lists,
) -> anyhow::Result<String> {
    let mut out = String::new();
    for (pb, path) in books {
        let _ = writeln!(out, "\nplaybook: {}", path.display());
        for (i, play) in pb.plays.iter().enumerate() {
            let play_tags: BTreeSet<&str> = play.tags.iter().map(String::as_str).collect();
            let _ = writeln!(
                out,
                "\n  play #{} ({}): {}\tTAGS: [{}]",
                i + 1,
                play.hosts,
                play.name,
                play_tags.iter().copied().collect::<Vec<_>>().join(",")
            );
            if lists.hosts {
                let hosts = crate::executor::play_hosts(inv, &play.hosts, limit)?;
                let terms: Vec<String> = pattern::split(&play.hosts)
                    .iter()
                    .map(|t| format!("'{t}'"))
                    .collect();
                let _ = writeln!(out, "    pattern: [{}]", terms.join(", "));
                let _ = writeln!(out, "    hosts ({}):", hosts.len());
                for h in hosts {
                    let _ = writeln!(out, "      {h}");
                }
            }
            if !(lists.tasks || lists.tags) {
                continue;
            }
            if lists.tasks {
                out.push_str("    tasks:\n");
            }
            let mut tasks = Vec::new();
            block_tasks(&play.body, &mut tasks);
            let mut all_tags: BTreeSet<String> = play.tags.iter().cloned().collect();
            for step in tasks {
                all_tags.extend(step.extra.tags.iter().cloned());
                if lists.tasks {
                    let tags: BTreeSet<&str> = play_tags
                        .iter()
                        .copied()
                        .chain(step.extra.tags.iter().map(String::as_str))
                        .collect();
                    // an unnamed task is listed by its action alone
                    let name = match &step.task.name {
                        // an `!unsafe` name is listed as its text
                        Some(n) => match crate::jinja::value::unsafe_text(n) {
                            Some(text) => match &step.task.role {
                                Some(role) => format!("{} : {text}", role.name),
                                None => text,
                            },
                            None => step.task.display_name(),
                        },
                        None => step.task.action.clone(),
                    };
                    let _ = writeln!(
                        out,
                        "      {name}\tTAGS: [{}]",
                        tags.into_iter().collect::<Vec<_>>().join(", ")
                    );
                }
            }
            if lists.tags {
                let _ = writeln!(
                    out,
                    "      TASK TAGS: [{}]",
                    all_tags.into_iter().collect::<Vec<_>>().join(", ")
                );
            }
        }
    }
    Ok(out)
}

/// The tasks `ansible-playbook` lists: those of each block's `block` section, nested blocks
/// included (not `rescue`/`always`), includes as the include task itself.
fn block_tasks<'a>(items: &'a [Item], out: &mut Vec<&'a Step>) {
    for i in items {
        match i {
            // the implicit end of a role is never listed
            Item::Task(s) if s.task.is_role_complete() => {}
            Item::Task(s) => out.push(s),
            Item::Include { step, .. } | Item::Deferred { step, .. } => out.push(step),
            Item::Block(b) => block_tasks(&b.block, out),
            Item::Flush => {}
        }
    }
}

/// `ansible PATTERN --list-hosts`: the hosts the pattern matches after `--limit`.
pub fn adhoc_hosts(hosts: &[String]) -> String {
    let mut out = format!("  hosts ({}):\n", hosts.len());
    for h in hosts {
        let _ = writeln!(out, "    {h}");
    }
    out
}
