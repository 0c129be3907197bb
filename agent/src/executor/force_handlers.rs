//! `--force-handlers` (also `force_handlers` in ansible.cfg and the play keyword, which wins):
//! handlers notified on a host run at the end of the play section (`pre_tasks`, roles and
//! `tasks`, `post_tasks`) even when the host failed after the notification, as ansible-core
//! compiles each section into a block whose `always` flushes handlers. Hosts that are
//! unreachable or were ended by `meta: end_host`/`end_play` do not run them; a host that
//! fails in a handler runs no more handlers.

use super::flow::{Flow, PlayRun};
use super::Engine;
use crate::playbook::Play;

impl Engine {
    /// Whether `play` runs handlers on hosts that failed.
    pub(super) fn forcing_handlers(&self, play: &Play) -> bool {
        play.force_handlers
            .unwrap_or(self.shared.opts.force_handlers)
    }

    /// The handler flush at the end of a play section: the notified hosts in `active`, and
    /// with forced handlers the batch's hosts that failed in this play too. Those stay
    /// failed afterwards; `active` loses the hosts that failed in a handler.
    pub(super) async fn flush_section(
        &mut self,
        play: &Play,
        active: &mut Vec<String>,
        run: &mut PlayRun<'_>,
    ) -> Flow {
        if crate::config::debug() {
            // ansible-core's debug line of the implicit `meta: flush_handlers`, for each
            // host with handlers to run
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            for h in active.iter() {
                if run.notified.iter().any(|(_, hosts)| hosts.contains(h)) {
                    self.reporter.verbose_line(
                        0,
                        &format!(
                            "{:6} {now:.5}: META: triggered running handlers for {h}",
                            std::process::id()
                        ),
                    );
                }
            }
        }
        if !self.forcing_handlers(play) {
            return self.flush_handlers(play, active, run).await;
        }
        let failed: Vec<String> = run
            .batch
            .iter()
            .filter(|h| {
                self.dead.contains(*h)
                    && !active.contains(h)
                    && !self.ended.contains(*h)
                    && self.stats.get(*h).is_none_or(|s| s.unreachable == 0)
            })
            .cloned()
            .collect();
        if failed.is_empty() {
            return self.flush_handlers(play, active, run).await;
        }
        for h in &failed {
            self.dead.remove(h);
        }
        let mut targets: Vec<String> = run
            .batch
            .iter()
            .filter(|h| active.contains(h) || failed.contains(h))
            .cloned()
            .collect();
        let flow = self.flush_handlers(play, &mut targets, run).await;
        for h in failed {
            self.dead.insert(h);
        }
        active.retain(|h| targets.contains(h));
        flow
    }
}
