#!/usr/bin/env bash
# Modules through ansible-core's packaging: a playbook of 10 such tasks on 3 hosts,
# etcd-agent vs ansible-playbook over a real sshd; prints a table (benches/ansible_modules.rs).
# RUNS=N sets the repetitions.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p etcd-agent
cargo bench --quiet --bench ansible_modules
