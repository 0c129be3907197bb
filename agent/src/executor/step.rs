//! `--step`: before each task (and handler) of a play, ask `Perform task: TASK: NAME
//! (N)o/(y)es/(c)ontinue: ` and read the answer from stdin, as ansible-core's strategy does
//! (`_take_step`): `y`/`yes` runs it, `c`/`continue` runs it and stops asking for the rest of
//! the play, anything else skips it (no banner, no result). `meta` tasks are never asked
//! about. Every play asks again. The end of stdin ends the run (exit 250), as it crashes
//! ansible-playbook.

use super::flow::Flow;
use super::Engine;
use crate::playbook::blocks::{Item, Step};

/// Whether the current play still asks before each task.
#[derive(Debug, Default)]
pub(super) struct StepMode {
    asking: bool,
}

impl StepMode {
    /// A play starts: it asks when `--step` was given.
    pub fn new_play(&mut self, step: bool) {
        self.asking = step;
    }
}

/// The end of stdin while asking, as ansible-playbook reports it.
#[derive(Debug, thiserror::Error)]
#[error("EOF when reading a line (--step reads its answers from stdin)")]
pub(super) struct NoAnswer;

/// Reads one answer line from stdin off the async runtime; `None` at the end of input.
async fn read_answer() -> Option<String> {
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        match std::io::stdin().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_string()),
        }
    })
    .await
    .ok()
    .flatten()
}

impl Engine {
    /// Asks whether to run the task `step` (a handler when `handler`); `Err` when stdin
    /// ended.
    async fn take_step(&mut self, step: &Step, handler: bool) -> Result<bool, NoAnswer> {
        if !self.step.asking || step.task.module() == "meta" {
            return Ok(true);
        }
        let kind = if handler { "HANDLER" } else { "TASK" };
        let prompt = format!(
            "Perform task: {kind}: {} (N)o/(y)es/(c)ontinue: ",
            step.task.display_name()
        );
        self.reporter.step_prompt(&prompt);
        let answer = read_answer().await.ok_or(NoAnswer)?;
        let run = match answer.to_lowercase().as_str() {
            "y" | "yes" => true,
            "c" | "continue" => {
                self.step.asking = false;
                true
            }
            _ => false,
        };
        self.reporter.step_answered(&prompt);
        Ok(run)
    }

    /// The `--step` gate before an item of a task list: `None` runs it, `Some(flow)` skips
    /// it (`Flow::Continue`) or ends the run (`Flow::Abort`, stdin ended).
    pub(super) async fn step_gate(&mut self, item: &Item) -> Option<Flow> {
        match item {
            Item::Task(step) if step.task.is_role_complete() => None,
            Item::Task(step) | Item::Include { step, .. } | Item::Deferred { step, .. } => {
                self.step_gate_for(step, false).await
            }
            Item::Block(_) | Item::Flush => None,
        }
    }

    /// [`Engine::step_gate`] for one task (a handler when `handler`).
    pub(super) async fn step_gate_for(&mut self, step: &Step, handler: bool) -> Option<Flow> {
        if !self.step.asking {
            return None;
        }
        match self.take_step(step, handler).await {
            Ok(true) => None,
            Ok(false) => Some(Flow::Continue),
            Err(e) => {
                // the prompt's line ends, as ansible-playbook leaves it
                self.reporter.step_prompt("\n");
                eprintln!("[ERROR]: {e}");
                self.fatal = Some(250);
                Some(Flow::Abort)
            }
        }
    }
}
