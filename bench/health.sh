#!/usr/bin/env bash
# etcd_health vs `etcdctl endpoint health --cluster` on the same local
# 3-member cluster (median of RUNS runs), and the stripped module sizes.
# Usage: bench/health.sh   (after scripts/build-modules)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
runs=${RUNS:-21}
dir=$(mktemp -d)
trap 'stop_bench_cluster; rm -rf "$dir"' EXIT
start_bench_cluster "$dir"

echo "{\"endpoints\": \"$BENCH_ENDPOINTS\"}" >"$dir/args.json"
module_ms=$(median_ms "$runs" playbooks/library/etcd_health "$dir/args.json")
etcdctl_ms=$(median_ms "$runs" env ETCDCTL_API=3 etcdctl --endpoints "$BENCH_ENDPOINTS" endpoint health --cluster)

echo "| what | median wall time (ms), $runs runs | vs etcdctl |"
echo "|---|---|---|"
echo "| etcdctl endpoint health --cluster | $etcdctl_ms | 1.00x |"
echo "| etcd_health module | $module_ms | $(awk -v a="$module_ms" -v b="$etcdctl_ms" 'BEGIN{printf "%.2fx", a/b}') |"
echo
echo "| module binary (stripped, static musl) | size |"
echo "|---|---|"
for m in playbooks/library/etcd_*; do
  case "$m" in *.yml) continue ;; esac
  echo "| $(basename "$m") | $(awk -v s="$(stat -c %s "$m")" 'BEGIN{printf "%.2f MB", s/1048576}') |"
done
