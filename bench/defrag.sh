#!/usr/bin/env bash
# etcd_maintenance state=defragmented vs `etcdctl defrag`, on the same member
# of the local 3-member bench cluster, with a database of about 200 MB of
# which half is garbage: KEYS keys of VALUE_SIZE bytes, all overwritten once
# and compacted before each measured defragmentation (a defragmentation
# removes the garbage, so each run gets its own). RUNS runs of each,
# alternating; median wall time and peak RSS (/usr/bin/time %M) of the client.
# The work itself is done by the etcd member; the client only waits.
# Usage: bench/defrag.sh   (after scripts/build-modules)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
runs=${RUNS:-3}
keys=${KEYS:-75000}
value_size=${VALUE_SIZE:-1024}
export ETCDCTL_API=3

if [ ! -x /usr/bin/time ]; then
  apt-get install -y -qq time >/dev/null
fi
dir=$(mktemp -d)
trap 'stop_bench_cluster; rm -rf "$dir"' EXIT
start_bench_cluster "$dir"
endpoint=${BENCH_ENDPOINTS%%,*}

# load ROUND: puts every key once (100 per txn through etcd's JSON gateway).
load() {
  python3 - "${endpoint#http://}" "$keys" "$value_size" "$1" <<'EOF'
import base64, http.client, json, os, sys, time
host, port = sys.argv[1].split(':'); n, size, rnd = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
conn = http.client.HTTPConnection(host, int(port), timeout=60)
b64 = lambda b: base64.b64encode(b).decode()
for start in range(0, n, 100):
    ops = [{'requestPut': {'key': b64(b'bench/%08d' % i),
                           'value': b64((rnd.encode() + b'%08d' % i + os.urandom(size).hex().encode())[:size])}}
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
}
status_field() {
  etcdctl --endpoints "$endpoint" endpoint status -w json |
    python3 -c "import json,sys; print(json.load(sys.stdin)[0]['Status'].get('$1', 0))"
}
# garbage ROUND: overwrite every key, compact to the current revision, then one
# small write so the member recounts the space in use.
garbage() {
  load "$1"
  local rev
  rev=$(etcdctl --endpoints "$endpoint" get bench/00000000 -w json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])')
  etcdctl --endpoints "$endpoint" compact "$rev" --physical >/dev/null
  etcdctl --endpoints "$endpoint" put bench-tick "$1" >/dev/null
  etcdctl --endpoints "$endpoint" put bench-tick "$1$1" >/dev/null
  echo "$(status_field dbSize) $(status_field dbSizeInUse)" >>"$dir/sizes"
}

once() { # LABEL CMD...
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

echo "{\"endpoints\": \"$endpoint\", \"state\": \"defragmented\", \"min_free_ratio\": 0, \"command_timeout\": 600}" >"$dir/defrag.json"
load a
for r in $(seq 1 "$runs"); do
  garbage "m$r"
  once module playbooks/library/etcd_maintenance "$dir/defrag.json"
  grep -q '"changed":true' "$dir/module.out" || { cat "$dir/module.out"; exit 1; }
  garbage "e$r"
  once etcdctl etcdctl --endpoints "$endpoint" defrag --command-timeout=600s
done

mb() { awk -v b="$1" 'BEGIN{printf "%.1f", b/1048576}'; }
read -r size inuse < <(sort -n "$dir/sizes" | awk 'NR==1')
row() { # label what
  local ms rss base
  ms=$(median "$dir/$1.times"); rss=$(maxof "$dir/$1.rss"); base=$(median "$dir/etcdctl.times")
  printf '| %s | %.0f | %.2fx | %.1f |\n' "$2" "$ms" "$(awk -v a="$ms" -v b="$base" 'BEGIN{print a/b}')" \
    "$(awk -v k="$rss" 'BEGIN{print k/1024}')"
}
echo "database before each defragmentation: about $(mb "$size") MiB, $(mb "$inuse") MiB in use ($keys keys x $value_size B, overwritten once, compacted); median of $runs runs"
echo
echo "| what | median wall (ms) | time vs etcdctl | peak RSS (MiB) |"
echo "|---|---|---|---|"
row etcdctl "etcdctl defrag (one member)"
row module "etcd_maintenance state=defragmented (same member)"
