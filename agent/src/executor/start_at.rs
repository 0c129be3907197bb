//! `--start-at-task NAME`: what a play runs when the run starts at a task, as ansible-core's
//! `PlayIterator` does it.
//!
//! Until a task has matched, each play (each `serial` batch) looks through its tasks in the
//! order a host would reach them without failing: the `block` sections of blocks (inside
//! roles too), then their `always` sections; a dynamic include is a task of its own (its file
//! is not looked into). A task matches when its name, or its name with the role in front
//! (`role : name`, or the action for an unnamed task), is `NAME` or matches it as a glob
//! (`fnmatch`). A play without a match runs nothing, not even fact gathering. The play that
//! matches runs from that task on (the rest of its block, then the block's `always`, then the
//! items after the block); later batches and plays run whole.
//!
//! Fact gathering there follows ansible-core's iterator too: facts are gathered as the play
//! says, except that starting at the play's very first task gathers them once whatever
//! `gather_facts` says, and matching "Gathering Facts" itself gathers them twice.

use crate::inventory::pattern::glob_match;
use crate::playbook::blocks::{Block, Item};
use crate::playbook::{Play, Task};
use std::sync::Arc;

/// The name of the implicit fact gathering task.
const GATHERING_FACTS: &str = "Gathering Facts";

/// What a play runs when the run starts at a task.
#[derive(Debug, Clone)]
pub(super) struct Start {
    /// How many times facts are gathered first.
    pub gather: usize,
    /// The play's items from the matching task on.
    pub body: Vec<Item>,
}

/// Whether `task` is the one `--start-at-task NAME` asks for.
fn matches(task: &Task, name: &str) -> bool {
    let full = task.display_name();
    let own = task.name.as_deref().unwrap_or("");
    own == name
        || (!own.is_empty() && glob_match(name, own))
        || full == name
        || glob_match(name, &full)
}

/// Where `play` starts when the run starts at the task named `name`; `None` when no task of
/// the play matches.
pub(super) fn start(play: &Play, name: &str) -> Option<Start> {
    if play.gather_facts && (name == GATHERING_FACTS || glob_match(name, GATHERING_FACTS)) {
        return Some(Start {
            gather: 2,
            body: play.body.clone(),
        });
    }
    let (body, task) = from_match(&play.body, name)?;
    let first = first_task(&play.body).is_some_and(|t| Arc::ptr_eq(&t, &task));
    Some(Start {
        gather: usize::from(first || play.gather_facts),
        body,
    })
}

/// `items` from the first task matching `name` on (blocks entered), and that task.
fn from_match(items: &[Item], name: &str) -> Option<(Vec<Item>, Arc<Task>)> {
    from_task(items, &|t| matches(t, name), true)
}

/// What a host runs of `items` after the task at address `task` (see `Engine::revived`);
/// `None` when it is not one of them (a task an include brought).
pub(super) fn after(items: &[Item], task: usize) -> Option<Vec<Item>> {
    from_task(items, &|t| std::ptr::eq(t, task as *const Task), false).map(|(rest, _)| rest)
}

/// The items from the first task `found` picks on (`inclusive`: with that task, else from
/// the one after it), in the order a host reaches them without failing: the rest of its
/// block, then the block's `always`, then the items after the block.
fn from_task(
    items: &[Item],
    found: &dyn Fn(&Task) -> bool,
    inclusive: bool,
) -> Option<(Vec<Item>, Arc<Task>)> {
    for (i, item) in items.iter().enumerate() {
        let hit = match item {
            Item::Task(step) | Item::Include { step, .. } | Item::Deferred { step, .. } => {
                found(&step.task).then(|| {
                    let first = if inclusive {
                        vec![item.clone()]
                    } else {
                        Vec::new()
                    };
                    (first, step.task.clone())
                })
            }
            Item::Block(b) => from_task(&b.block, found, inclusive)
                .map(|(block, task)| {
                    let rest = Block { block, ..b.clone() };
                    (vec![Item::Block(rest)], task)
                })
                .or_else(|| {
                    // a host that does not fail goes on to the block's `always`
                    from_task(&b.always, found, inclusive).map(|(always, task)| {
                        let rest = Block {
                            block: Vec::new(),
                            rescue: Vec::new(),
                            always,
                        };
                        (vec![Item::Block(rest)], task)
                    })
                }),
            Item::Flush => None,
        };
        if let Some((mut out, task)) = hit {
            out.extend(items[i + 1..].iter().cloned());
            return Some((out, task));
        }
    }
    None
}

/// The first task a host reaches in `items`.
fn first_task(items: &[Item]) -> Option<Arc<Task>> {
    items.iter().find_map(|item| match item {
        Item::Task(step) | Item::Include { step, .. } | Item::Deferred { step, .. } => {
            Some(step.task.clone())
        }
        Item::Block(b) => first_task(&b.block).or_else(|| first_task(&b.always)),
        Item::Flush => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn play(text: &str) -> Play {
        let dir = tempfile::tempdir().unwrap();
        let role = dir.path().join("roles/r/tasks");
        std::fs::create_dir_all(&role).unwrap();
        std::fs::write(
            role.join("main.yml"),
            "- name: r1\n  debug: msg=1\n- name: r2\n  debug: msg=2\n",
        )
        .unwrap();
        let pb = dir.path().join("p.yml");
        std::fs::write(&pb, text).unwrap();
        crate::playbook::load(&pb).unwrap().plays.remove(0)
    }

    fn names(items: &[Item], out: &mut Vec<String>) {
        for i in items {
            match i {
                Item::Task(s) => out.push(s.task.display_name()),
                Item::Block(b) => {
                    names(&b.block, out);
                    names(&b.rescue, out);
                    names(&b.always, out);
                }
                _ => {}
            }
        }
    }

    fn started(p: &Play, name: &str) -> Option<(usize, Vec<String>)> {
        start(p, name).map(|s| {
            let mut n = Vec::new();
            names(&s.body, &mut n);
            (s.gather, n)
        })
    }

    #[test]
    fn starts_inside_blocks_roles_and_always() {
        let p = play(
            "- hosts: a\n  gather_facts: false\n  roles: [r]\n  tasks:\n    - name: t1\n      debug: msg=1\n    - block:\n        - name: b1\n          debug: msg=1\n        - name: b2\n          debug: msg=1\n      rescue:\n        - name: res\n          debug: msg=1\n      always:\n        - name: al\n          debug: msg=1\n    - name: last\n      debug: msg=1\n",
        );
        assert_eq!(
            started(&p, "b2"),
            Some((
                0,
                vec!["b2".into(), "res".into(), "al".into(), "last".into()]
            ))
        );
        assert_eq!(
            started(&p, "al"),
            Some((0, vec!["al".into(), "last".into()]))
        );
        // the name alone, with its role, or a glob
        for name in ["r2", "r : r2", "r : r[2]", "*r2"] {
            assert_eq!(started(&p, name).unwrap().1[0], "r : r2", "{name}");
        }
        // the play's very first task gathers facts once, whatever gather_facts says
        assert_eq!(started(&p, "r1").unwrap().0, 1);
        assert!(started(&p, "res").is_none());
        assert!(started(&p, "nothing").is_none());
        // "Gathering Facts" exists only when the play gathers facts
        assert!(started(&p, "Gathering Facts").is_none());
    }

    #[test]
    fn gathering_facts_itself_gathers_twice() {
        let p = play("- hosts: a\n  tasks:\n    - name: t1\n      debug: msg=1\n    - name: t2\n      debug: msg=1\n");
        assert_eq!(started(&p, "Gathering Facts").unwrap().0, 2);
        assert_eq!(started(&p, "t1"), Some((1, vec!["t1".into(), "t2".into()])));
        assert_eq!(started(&p, "t2"), Some((1, vec!["t2".into()])));
    }
}
