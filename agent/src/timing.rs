//! Where a run's time goes: with `ETCD_AGENT_TIMING=1` the agent times the phases of every
//! host's task (connection, fork slot, remote shell, module upload, module run, report) and
//! prints one table of them to stderr at the end of the run. Off (nothing recorded, one
//! check of a flag per phase) otherwise.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A timed phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// A new SSH master: `ssh` handshake and login (bounded by the handshakes in flight).
    Handshake,
    /// Reusing a master an earlier run left (`ControlPersist`): one check of its socket.
    Reuse,
    /// Waiting for the connection, once the host's job wanted it (includes the above).
    ConnectWait,
    /// Waiting for a fork slot once connected.
    ForkWait,
    /// Starting a remote `/bin/sh` loop (a session over the master).
    ShellStart,
    /// Looking for the module in the remote cache of a kept master.
    CacheCheck,
    /// Sending a module's bytes.
    Upload,
    /// Running a module: args file, the module, its output back.
    ModuleRun,
    /// One host's whole task, from its job's start to its outcome.
    HostTask,
    /// Printing one host's result.
    Report,
    /// Closing the run's connections (remote shells' exit, masters that end with the run).
    Close,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Handshake => "ssh handshake (new master)",
            Phase::Reuse => "reuse kept master (check)",
            Phase::ConnectWait => "wait for connection",
            Phase::ForkWait => "wait for fork slot",
            Phase::ShellStart => "remote shell start",
            Phase::CacheCheck => "module cache check",
            Phase::Upload => "module upload",
            Phase::ModuleRun => "module run",
            Phase::HostTask => "host task (total)",
            Phase::Report => "report result",
            Phase::Close => "close connections",
        }
    }
}

type Records = Mutex<Vec<(Phase, Duration)>>;

fn records() -> Option<&'static Records> {
    static RECORDS: OnceLock<Option<Records>> = OnceLock::new();
    RECORDS
        .get_or_init(|| {
            std::env::var_os("ETCD_AGENT_TIMING")
                .filter(|v| !v.is_empty() && v != "0")
                .map(|_| Mutex::new(Vec::new()))
        })
        .as_ref()
}

/// Whether phases are being timed (`ETCD_AGENT_TIMING` set, not `0`).
pub fn enabled() -> bool {
    records().is_some()
}

/// Records that `phase` took from `start` until now.
pub fn record(phase: Phase, start: Instant) {
    if let Some(r) = records() {
        let took = start.elapsed();
        if let Ok(mut r) = r.lock() {
            r.push((phase, took));
        }
    }
}

/// Times a phase until dropped.
pub struct Span {
    phase: Phase,
    start: Instant,
}

/// Starts timing `phase`; the time is recorded when the returned guard is dropped.
pub fn span(phase: Phase) -> Span {
    Span {
        phase,
        start: Instant::now(),
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        record(self.phase, self.start);
    }
}

/// The table of the phases recorded so far, with the run's wall time: per phase how many
/// times it ran, the sum over hosts (phases of different hosts overlap, so sums can exceed
/// the wall time), the median and the slowest.
pub fn summary(wall: Duration) -> Option<String> {
    let records = records()?.lock().ok()?;
    let mut by_phase: std::collections::BTreeMap<Phase, Vec<Duration>> = Default::default();
    for (phase, took) in records.iter() {
        by_phase.entry(*phase).or_default().push(*took);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut out = format!(
        "etcd-agent timing: wall {:.1} ms\n| phase | count | sum (ms) | median (ms) | max (ms) |\n|---|---|---|---|---|\n",
        ms(wall)
    );
    for (phase, mut times) in by_phase {
        times.sort();
        let sum: Duration = times.iter().sum();
        out.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.1} |\n",
            phase.name(),
            times.len(),
            ms(sum),
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1]),
        ));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_have_distinct_names() {
        let all = [
            Phase::Handshake,
            Phase::Reuse,
            Phase::ConnectWait,
            Phase::ForkWait,
            Phase::ShellStart,
            Phase::CacheCheck,
            Phase::Upload,
            Phase::ModuleRun,
            Phase::HostTask,
            Phase::Report,
            Phase::Close,
        ];
        let names: std::collections::HashSet<_> = all.iter().map(|p| p.name()).collect();
        assert_eq!(names.len(), all.len());
    }
}
