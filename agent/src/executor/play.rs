//! Running one play: its hosts (less those failed earlier in the run), the implicit fact
//! gathering, and its `serial` batches one after another.

use super::batches::batches;
use super::flow::{Flow, PlayRun};
use super::hosts::unmatched_terms;
use super::Engine;
use crate::playbook::blocks::{Item, Step};
use crate::playbook::{Play, Task};
use std::collections::HashMap;
use std::sync::Arc;

impl Engine {
    /// Checks the play's (templated) `strategy`: `linear` (Ansible's default), `free` and
    /// `host_pinned` (see `free.rs`); any other name is Ansible's error. `--step` with a free
    /// play of more than one host in a batch is refused.
    pub(super) fn check_strategy(&self, play: &Play) -> Result<(), String> {
        let Some(written) = play.strategy.as_deref() else {
            return Ok(());
        };
        let short = written.strip_prefix("ansible.builtin.").unwrap_or(written);
        match short {
            "linear" => Ok(()),
            "free" | "host_pinned" => {
                let hosts: Vec<String> = self
                    .play_hosts(play)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|h| !self.dead.contains(h))
                    .collect();
                let several = batches(&hosts, &play.serial).iter().any(|b| b.len() > 1);
                if several && self.shared.opts.step {
                    Err(format!(
                        "--step with play strategy '{written}' is not supported by etcd-agent"
                    ))
                } else {
                    Ok(())
                }
            }
            _ => Err(format!("Invalid play strategy specified: {written}")),
        }
    }

    /// Runs one play; false stops the playbook.
    pub(super) async fn run_play(&mut self, play: &Play) -> bool {
        self.reporter.play_start(&play.name, &play.origin);
        self.public_roles.clear();
        let hosts = match self.play_hosts(play) {
            Ok(h) => h,
            Err(e) => {
                self.reporter.warning(&format!("{e:#}"));
                Vec::new()
            }
        };
        if hosts.is_empty() {
            for bare in unmatched_terms(&self.inv, &play.hosts) {
                self.reporter.warning(&format!(
                    "Could not match supplied host pattern, ignoring: {bare}"
                ));
            }
        }
        let all_hosts = hosts.clone();
        let hosts: Vec<String> = hosts
            .into_iter()
            .filter(|h| !self.dead.contains(h))
            .collect();
        if hosts.is_empty() {
            self.reporter.no_hosts();
            return true;
        }
        self.ended.clear();
        if let Err(e) = self.read_vars_files(play, &all_hosts, &hosts) {
            self.reporter.warning(&e);
            self.any_failed = true;
            return false;
        }
        self.step.new_play(self.shared.opts.step);
        let whole = play_body(play, usize::from(play.gather_facts), &play.body);
        let all_batches = batches(&hosts, &play.serial);
        for (i, batch) in all_batches.iter().cloned().enumerate() {
            if let Some(next) = all_batches.get(i + 1) {
                let opening = super::batches::open_next_batch(&self.shared, play, &batch, next);
                self.opening_next.extend(opening);
            }
            if i > 0 {
                // Ansible announces the play again for every serial batch
                self.reporter.play_start(&play.name, &play.origin);
            }
            // `--start-at-task`: until a task matched, each batch looks for it (ansible-core
            // builds a play iterator per batch) and runs nothing without it
            let started;
            let body = match self.start_at.clone() {
                Some(name) => {
                    let start = super::start_at::start(play, &name);
                    if start.is_some() {
                        self.start_at = None;
                    }
                    started = start
                        .map(|s| play_body(play, s.gather, &s.body))
                        .unwrap_or_default();
                    &started
                }
                None => &whole,
            };
            let (flow, collateral) = if super::free::is_free(play) && batch.len() > 1 {
                self.run_free(play, body, &batch, &all_hosts).await
            } else {
                self.unreachable_at.clear();
                self.revived.clear();
                let mut active = batch.clone();
                let mut run = PlayRun::new(&all_hosts, &batch);
                let mut flow = self.run_items(play, body, &mut active, &mut run).await;
                // hosts `clear_host_errors` brought back from unreachable run the rest of
                // the tasks from where they stopped, as ansible-core's lockstep picks them up
                // once the others are through the play's tasks
                while matches!(flow, Flow::Continue) && !self.revived.is_empty() {
                    let revived = std::mem::take(&mut self.revived);
                    let task = revived[0].1;
                    let hosts: Vec<String> = revived
                        .iter()
                        .filter(|(_, t)| *t == task)
                        .map(|(h, _)| h.clone())
                        .collect();
                    self.revived
                        .extend(revived.into_iter().filter(|(_, t)| *t != task));
                    let Some(rest) = super::start_at::after(body, task) else {
                        continue;
                    };
                    let mut active = hosts.clone();
                    let mut again = PlayRun::new(&all_hosts, &hosts);
                    flow = self.run_items(play, &rest, &mut active, &mut again).await;
                    run.collateral_all.extend(again.collateral_all);
                }
                (flow, run.collateral_all)
            };
            // hosts failed by another host's run_once task stay failed for the run
            for h in &collateral {
                self.dead.insert(h.clone());
                self.any_failed = true;
            }
            match flow {
                Flow::Continue => {}
                Flow::EndPlay => return true,
                Flow::Abort => return false,
            }
            if batch.iter().all(|h| self.dead.contains(h)) {
                self.reporter.no_more_hosts();
                return false;
            }
        }
        true
    }
}

impl Engine {
    /// Reads the play's templated `vars_files` for each of `hosts` (see
    /// [`crate::playbook::vars_files_for`]); a file none of whose names exists is an error.
    fn read_vars_files(
        &mut self,
        play: &Play,
        all_hosts: &[String],
        hosts: &[String],
    ) -> Result<(), String> {
        self.vars_files.clear();
        if play.vars_files.is_empty() {
            return Ok(());
        }
        let task = Arc::new(Task::synthetic(
            "vars_files",
            "vars_files",
            play.origin.clone(),
        ));
        let hostvars = self.hostvars();
        let scope = super::job_vars::Scope {
            play_hosts: all_hosts,
            active: hosts,
            hostvars: &hostvars,
        };
        let mut read = HashMap::new();
        for h in hosts {
            let job = self.job(play, &task, h, &scope);
            let vars = job.ctx.value();
            let templar = &self.shared.templar;
            let files = crate::playbook::vars_files_for(play, &|v| {
                templar.render_value(v, &vars).map_err(|e| format!("{e:#}"))
            })?;
            read.insert(h.clone(), files);
        }
        self.vars_files = read;
        Ok(())
    }
}

/// The items a play runs: "Gathering Facts" `gather` times (once when `gather_facts` is on),
/// then `items` (its body, or what `--start-at-task` leaves of it).
fn play_body(play: &Play, gather: usize, items: &[Item]) -> Vec<Item> {
    let mut body: Vec<Item> = Vec::new();
    for _ in 0..gather {
        body.push(Item::Task(Step {
            task: play.gather_task.clone(),
            extra: Default::default(),
        }));
    }
    body.extend(items.iter().cloned());
    body
}
