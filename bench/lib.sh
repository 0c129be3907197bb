# Shared bench helpers (sourced). Benches use slot 9 (127.0.9.x), which tests never use.

# median_ms N CMD...: runs CMD N times, prints the median wall time in ms.
median_ms() {
  local n=$1; shift
  local times=() start end
  for _ in $(seq 1 "$n"); do
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1 || true
    end=$(date +%s%N)
    times+=($(( (end - start) / 1000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f\n", m/1000}'
}

# start_bench_cluster DIR: a 3-member cluster on 127.0.9.11-13; sets BENCH_PIDS, BENCH_ENDPOINTS.
start_bench_cluster() {
  local dir=$1 ic="" i ip
  BENCH_PIDS=()
  for i in 0 1 2; do ic+="${ic:+,}b$i=http://127.0.9.1$((i + 1)):2380"; done
  for i in 0 1 2; do
    ip=127.0.9.1$((i + 1))
    etcd --name "b$i" --data-dir "$dir/b$i" --listen-client-urls "http://$ip:2379" \
      --advertise-client-urls "http://$ip:2379" --listen-peer-urls "http://$ip:2380" \
      --initial-advertise-peer-urls "http://$ip:2380" --initial-cluster "$ic" \
      --initial-cluster-state new --quota-backend-bytes 8589934592 >"$dir/b$i.log" 2>&1 &
    BENCH_PIDS+=($!)
  done
  BENCH_ENDPOINTS="http://127.0.9.11:2379,http://127.0.9.12:2379,http://127.0.9.13:2379"
  for _ in $(seq 1 200); do
    ETCDCTL_API=3 etcdctl --endpoints "$BENCH_ENDPOINTS" endpoint health >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "bench cluster did not become healthy" >&2
  return 1
}

stop_bench_cluster() {
  local pid
  for pid in "${BENCH_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${BENCH_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
