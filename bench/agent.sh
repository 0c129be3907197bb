#!/usr/bin/env bash
# etcd-agent vs ansible-playbook on the health playbook over a real sshd,
# 3 and 30 inventory hosts; prints a table. RUNS=N sets the repetitions,
# BENCH_HOSTS=3 keeps the 3-host rows, BENCH_SSH_ARGS adds ssh options (benches/agent.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-modules
cargo build --quiet --release -p etcd-agent
cargo build --quiet --release -p etcd-agent --no-default-features --target-dir target/process-mux
cargo bench --quiet --bench agent
