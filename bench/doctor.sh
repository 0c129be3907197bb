#!/usr/bin/env bash
# etcd_doctor.yml vs etcd_healthy.yml on the same healthy local 3-member
# cluster, under ansible-playbook and under etcd-agent, in the same run
# (median of RUNS runs each, alternating). The hosts use the local
# connection, so the numbers are the playbooks' work, not SSH handshakes.
# Prints a table with the doctor/health ratio per engine.
# Usage: bench/doctor.sh   (after scripts/build-modules and cargo build -p etcd-agent)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
runs=${RUNS:-7}
agent=${AGENT:-target/debug/etcd-agent}
dir=$(mktemp -d)
trap 'stop_bench_cluster; rm -rf "$dir"' EXIT
start_bench_cluster "$dir"

{
  echo "[etcd]"
  for i in 0 1 2; do
    echo "b$i ansible_connection=local ip=127.0.9.1$((i + 1)) etcd_member_name=b$i etcd_data_dir=$dir/b$i etcd_log_command=\"tail -n 200 $dir/b$i.log\""
  done
  echo "[etcd:vars]"
  echo "etcd_client_scheme=http"
  echo "etcd_status_command=true"
  echo "etcd_doctor_state_dir=$dir/doctor"
  echo "ansible_python_interpreter=$(command -v python3)"
} >"$dir/hosts.ini"
export ANSIBLE_LIBRARY=$PWD/playbooks/library ANSIBLE_HOME=$dir/ansible-home \
  ANSIBLE_LOCAL_TEMP=$dir/ansible-tmp ANSIBLE_RETRY_FILES_ENABLED=0 ANSIBLE_NOCOLOR=1

pb=playbooks/db-operations
check() {
  "$@" >"$dir/out" 2>&1 || { cat "$dir/out" >&2; echo "bench: $* failed" >&2; exit 1; }
}
check ansible-playbook -i "$dir/hosts.ini" "$pb/etcd_healthy.yml"
check ansible-playbook -i "$dir/hosts.ini" "$pb/etcd_doctor.yml"
check "$agent" playbook -i "$dir/hosts.ini" "$pb/etcd_healthy.yml"
check "$agent" playbook -i "$dir/hosts.ini" "$pb/etcd_doctor.yml"

# Alternate the four commands so machine load hits them alike.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A times
for _ in $(seq 1 "$runs"); do
  for what in ap-health ap-doctor agent-health agent-doctor; do
    case $what in
      ap-health) cmd=(ansible-playbook -i "$dir/hosts.ini" "$pb/etcd_healthy.yml") ;;
      ap-doctor) cmd=(ansible-playbook -i "$dir/hosts.ini" "$pb/etcd_doctor.yml") ;;
      agent-health) cmd=("$agent" playbook -i "$dir/hosts.ini" "$pb/etcd_healthy.yml") ;;
      agent-doctor) cmd=("$agent" playbook -i "$dir/hosts.ini" "$pb/etcd_doctor.yml") ;;
    esac
    times[$what]+="$(median_ms 1 "${cmd[@]}") "
  done
done
med() { printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.0f", m}'; }
echo "| engine | etcd_healthy.yml (ms) | etcd_doctor.yml (ms) | doctor / health |"
echo "|---|---|---|---|"
for engine in ap agent; do
  h=$(med "${times[$engine-health]}")
  d=$(med "${times[$engine-doctor]}")
  label=$([ "$engine" = ap ] && echo ansible-playbook || echo etcd-agent)
  echo "| $label | $h | $d | $(awk -v a="$d" -v b="$h" 'BEGIN{printf "%.2fx", a/b}') |"
done
echo "(median of $runs runs each, alternating; local connection; $(date -u '+%F %H:%M') UTC; load average $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after)"
