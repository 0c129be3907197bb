#!/usr/bin/env bash
# etcd-agent vs ansible-playbook on the health playbook over a real sshd,
# 3 and 30 inventory hosts; prints a table. RUNS=N sets the repetitions.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-modules
cargo build --quiet --release -p etcd-agent
cargo build --quiet --release -p etcd-agent --no-default-features --target-dir target/process-mux
cargo bench --quiet --bench agent
