#!/usr/bin/env bash
# etcd-agent vs ansible-playbook vs the SSH floor on the health playbook over real sshds,
# 3, 30 and 100 inventory hosts with an address each; prints a table (benches/agent.rs).
# RUNS=N sets the repetitions, BENCH_HOSTS=3,30 the host counts, BENCH_SSH_ARGS adds ssh
# options to every host.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-modules
cargo build --quiet --release -p etcd-agent
uptime
# the bench harness itself times other programs: its dev build is enough (no LTO wait)
cargo bench --quiet --profile dev --bench agent
uptime
