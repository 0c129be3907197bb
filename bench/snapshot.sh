#!/usr/bin/env bash
# etcd_snapshot vs `etcdctl snapshot save`, and etcd_restore vs
# `etcdctl snapshot restore`, on a database of about 200 MB (KEYS keys with
# VALUE_SIZE-byte values) in the local 3-member bench cluster: median wall
# time of RUNS alternating runs (after one warm-up) and peak RSS (/usr/bin/time %M).
# Usage: bench/snapshot.sh   (after scripts/build-modules)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
runs=${RUNS:-3}
keys=${KEYS:-150000}
value_size=${VALUE_SIZE:-1024}
export ETCDCTL_API=3

if [ ! -x /usr/bin/time ]; then
  apt-get install -y -qq time >/dev/null
fi
dir=$(mktemp -d)
trap 'stop_bench_cluster; rm -rf "$dir"' EXIT
start_bench_cluster "$dir"
endpoint=${BENCH_ENDPOINTS%%,*}

# Fast loader: 100 puts per txn through etcd's JSON gateway, one keep-alive
# connection (one etcdctl process per txn would take minutes).
python3 - "${endpoint#http://}" "$keys" "$value_size" <<'EOF'
import base64, http.client, json, os, sys, time
host, port = sys.argv[1].split(':'); n, size = int(sys.argv[2]), int(sys.argv[3])
conn = http.client.HTTPConnection(host, int(port), timeout=60)
b64 = lambda b: base64.b64encode(b).decode()
for start in range(0, n, 100):
    ops = [{'requestPut': {'key': b64(b'bench/%08d' % i),
                           'value': b64((b'%08d' % i + os.urandom(size).hex().encode())[:size])}}
           for i in range(start, min(n, start + 100))]
    body = json.dumps({'success': ops})
    for attempt in range(100):
        try:
            conn.request('POST', '/v3/kv/txn', body, {'Content-Type': 'application/json'})
            r = conn.getresponse(); r.read()
            if r.status == 200:
                break
        except Exception:
            conn = http.client.HTTPConnection(host, int(port), timeout=60)
        time.sleep(0.2)
    else:
        sys.exit('loader: txn keeps failing')
EOF
db_bytes=$(etcdctl --endpoints "$endpoint" endpoint status -w json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["dbSize"])')

# once LABEL CMD...: runs CMD once, appends its wall ms and peak RSS KB (of
# CMD and the children it waited for) to $dir/LABEL.times / .rss.
once() {
  local label=$1; shift
  local start end
  start=$(date +%s%N)
  /usr/bin/time -f %M -o "$dir/rss.tmp" "$@" >"$dir/$label.out" 2>&1 ||
    { echo "$label failed:"; cat "$dir/$label.out"; exit 1; }
  end=$(date +%s%N)
  echo $(((end - start) / 1000000)) >>"$dir/$label.times"
  cat "$dir/rss.tmp" >>"$dir/$label.rss"
}
median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
maxof() { sort -n "$1" | tail -1; }

echo "{\"endpoints\": \"$endpoint\", \"path\": \"$dir/snap-module.db\"}" >"$dir/snap.json"
snap_module() { rm -f "$dir/snap-module.db"; once snap_module playbooks/library/etcd_snapshot "$dir/snap.json"; }
snap_etcdctl() {
  rm -f "$dir/snap-etcdctl.db"
  once snap_etcdctl etcdctl --endpoints "$endpoint" snapshot save "$dir/snap-etcdctl.db"
}
# One unmeasured round first (etcd settles after the load, the page cache
# warms), then alternate the two so background load hits both alike.
snap_module; snap_etcdctl
rm -f "$dir"/*.times "$dir"/*.rss
for _ in $(seq 1 "$runs"); do snap_module; snap_etcdctl; done
snap_bytes=$(stat -c %s "$dir/snap-module.db")

# The module's own share of a restore (hash + database read) without the
# restore tool it runs: state=verified reads the file the same way.
echo "{\"state\": \"verified\", \"path\": \"$dir/snap-module.db\"}" >"$dir/verify.json"
for _ in $(seq 1 "$runs"); do once verify_module playbooks/library/etcd_snapshot "$dir/verify.json"; done

cat >"$dir/restore.json" <<EOF
{"snapshot": "$dir/snap-module.db", "data_dir": "$dir/restore-module/data", "name": "b0",
 "initial_cluster": "b0=http://127.0.9.11:2380", "initial_cluster_token": "bench",
 "etcdctl_path": "$(command -v etcdctl)"}
EOF
restore_module() { rm -rf "$dir/restore-module"; once restore_module playbooks/library/etcd_restore "$dir/restore.json"; }
restore_etcdctl() {
  rm -rf "$dir/restore-etcdctl"
  once restore_etcdctl etcdctl snapshot restore "$dir/snap-module.db" --name b0 \
    --data-dir "$dir/restore-etcdctl" --initial-cluster b0=http://127.0.9.11:2380 \
    --initial-cluster-token bench --initial-advertise-peer-urls http://127.0.9.11:2380
}
for _ in $(seq 1 "$runs"); do restore_module; restore_etcdctl; done

mb() { awk -v b="$1" 'BEGIN{printf "%.1f", b/1048576}'; }
row() { # label what bytes baseline_label
  local ms rss base
  ms=$(median "$dir/$1.times"); rss=$(maxof "$dir/$1.rss"); base=$(median "$dir/$4.times")
  printf '| %s | %s | %.0f | %s | %.2fx | %.1f |\n' "$2" "$(mb "$3")" "$ms" \
    "$(awk -v b="$3" -v ms="$ms" 'BEGIN{printf "%.0f", b/1048576/(ms/1000)}')" \
    "$(awk -v a="$base" -v m="$ms" 'BEGIN{print a/m}')" "$(awk -v k="$rss" 'BEGIN{print k/1024}')"
}
echo "database: $keys keys x $value_size B, $(mb "$db_bytes") MiB; snapshot file $(mb "$snap_bytes") MiB; median of $runs runs"
echo
echo "| what | MiB | median wall (ms) | MiB/s | throughput vs etcdctl | peak RSS (MiB) |"
echo "|---|---|---|---|---|---|"
row snap_etcdctl "etcdctl snapshot save" "$snap_bytes" snap_etcdctl
row snap_module "etcd_snapshot module" "$snap_bytes" snap_etcdctl
row restore_etcdctl "etcdctl snapshot restore" "$snap_bytes" restore_etcdctl
row restore_module "etcd_restore module (hash check, then etcdctl restore; RSS includes etcdctl's)" "$snap_bytes" restore_etcdctl
row verify_module "etcd_snapshot state=verified (the module's own share of a restore)" "$snap_bytes" restore_etcdctl
