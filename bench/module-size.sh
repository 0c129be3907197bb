#!/usr/bin/env bash
# Module size study: builds the modules (static musl, release) once per profile
# variant into target/size/VARIANT and prints a markdown table: each module's
# size, the total of the six, the multi-call binary (etcd_modules, all six in
# one file), gzip -9 sizes, the median wall time of one etcd_health run and of
# one etcd_snapshot run (a SNAP_MB MiB database) against a local single-member
# etcd (variants interleaved in each round, ratio to the first variant) and the
# build time (cold when target/size/VARIANT is new).
#
# Usage: bench/module-size.sh
#   VARIANTS="baseline opt-z lto-thin"   which variants, first is the reference (default: all)
#   BINS="etcd_health etcd_modules"      build only these binaries (default: all seven)
#   RUNS=21                              module runs per variant
#   SNAP_MB=32                           MiB of values in etcd for the etcd_snapshot runs
#   CLEAN=1                              remove target/size/VARIANT first (cold build time)
#   BUILD=0                              measure what target/size/VARIANT holds, build nothing
# A variant is a '+'-joined list of changes to the release profile in Cargo.toml
# (strip = true, lto = "fat", codegen-units = 1, opt-level = "s", panic = "unwind"):
#   opt-3 opt-z  lto-thin lto-off  cgu-16  abort (panic = "abort" + the reporting hook)
# e.g. VARIANTS="baseline opt-z+abort". The binaries are stripped by the profile.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
runs=${RUNS:-21}
variants=(${VARIANTS:-baseline opt-3 opt-z lto-thin cgu-16 abort})
bins=(${BINS:-etcd_health etcd_snapshot etcd_restore etcd_member etcd_maintenance etcd_doctor etcd_modules})
modules=(etcd_health etcd_snapshot etcd_restore etcd_member etcd_maintenance etcd_doctor)

# profile_env VARIANT: the CARGO_PROFILE_RELEASE_* overrides, one per line.
profile_env() {
  local part parts
  IFS=+ read -ra parts <<<"$1"
  for part in "${parts[@]}"; do
    case "$part" in
      baseline) ;;
      opt-3) echo CARGO_PROFILE_RELEASE_OPT_LEVEL=3 ;;
      opt-z) echo CARGO_PROFILE_RELEASE_OPT_LEVEL=z ;;
      lto-thin) echo CARGO_PROFILE_RELEASE_LTO=thin ;;
      lto-off) echo CARGO_PROFILE_RELEASE_LTO=off ;;
      cgu-16) echo CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 ;;
      abort) echo CARGO_PROFILE_RELEASE_PANIC=abort ;;
      *) echo "module-size: unknown variant part '$part'" >&2; return 1 ;;
    esac
  done
}

mb() { awk -v s="$1" 'BEGIN{printf "%.2f", s/1048576}'; }
size_of() { if [ -f "$1" ]; then stat -c %s "$1"; else echo 0; fi; }
gz_of() { if [ -f "$1" ]; then gzip -9 -c "$1" | wc -c; else echo 0; fi; }

for v in "${variants[@]}"; do
  profile_env "$v" >/dev/null
  [ "${BUILD:-1}" = 0 ] && continue
  dir=target/size/$v
  [ "${CLEAN:-0}" = 1 ] && rm -rf "$dir"
  bin_args=()
  for b in "${bins[@]}"; do bin_args+=(--bin "$b"); done
  echo "building $v ..." >&2
  start=$(date +%s%N)
  env $(profile_env "$v") CARGO_TARGET_DIR="$dir" \
    cargo build --quiet --release --locked --target "$target" -p etcd-modules "${bin_args[@]}"
  echo "$(( ($(date +%s%N) - start) / 1000000000 )) (${#bins[@]} bins)" >"$dir/build-seconds"
done

# One etcd member on bench slot 9 (127.0.9.41), apart from bench/lib.sh's cluster.
work=$(mktemp -d)
etcd_pid=
cleanup() {
  if [ -n "$etcd_pid" ]; then kill "$etcd_pid" 2>/dev/null || true; wait "$etcd_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
ip=127.0.9.41
etcd --name s0 --data-dir "$work/s0" --listen-client-urls "http://$ip:2379" \
  --advertise-client-urls "http://$ip:2379" --listen-peer-urls "http://$ip:2380" \
  --initial-advertise-peer-urls "http://$ip:2380" --initial-cluster "s0=http://$ip:2380" \
  --initial-cluster-state new >"$work/etcd.log" 2>&1 &
etcd_pid=$!
healthy=0
for _ in $(seq 1 300); do
  ETCDCTL_API=3 etcdctl --endpoints "http://$ip:2379" endpoint health >/dev/null 2>&1 && { healthy=1; break; }
  sleep 0.1
done
[ "$healthy" = 1 ] || { echo "module-size: etcd did not become healthy" >&2; exit 1; }
echo "{\"endpoints\": \"http://$ip:2379\", \"_ansible_module_name\": \"etcd_health\"}" >"$work/args.json"
echo "{\"endpoints\": \"http://$ip:2379\", \"path\": \"$work/snap.db\", \"_ansible_module_name\": \"etcd_snapshot\"}" >"$work/snap-args.json"
# SNAP_MB values of 1 MiB (random, so the database does not compress away), read from stdin.
for i in $(seq 1 "${SNAP_MB:-32}"); do
  head -c 1048576 /dev/urandom | ETCDCTL_API=3 etcdctl --endpoints "http://$ip:2379" put "size/$i" >/dev/null
done

# The modules each variant runs: its own binaries, else the multi-call one under their names.
declare -A health snapshot
for v in "${variants[@]}"; do
  out=target/size/$v/$target/release
  for m in etcd_health etcd_snapshot; do
    if [ -f "$out/$m" ]; then
      bin=$out/$m
    else
      mkdir -p "$work/$v"
      cp "$out/etcd_modules" "$work/$v/$m"
      bin=$work/$v/$m
    fi
    if [ $m = etcd_health ]; then health[$v]=$bin; else snapshot[$v]=$bin; fi
  done
  # a run that fails is no timing
  "${health[$v]}" "$work/args.json" | grep -q '"failed":false' ||
    { echo "module-size: $v's etcd_health did not succeed" >&2; exit 1; }
  "${snapshot[$v]}" "$work/snap-args.json" | grep -q '"failed":false' ||
    { echo "module-size: $v's etcd_snapshot did not succeed" >&2; exit 1; }
done
declare -A times snap_times
for _ in $(seq 1 "$runs"); do
  for v in "${variants[@]}"; do
    start=$(date +%s%N)
    "${health[$v]}" "$work/args.json" >/dev/null
    times[$v]+="$(( ($(date +%s%N) - start) / 1000 )) "
    start=$(date +%s%N)
    "${snapshot[$v]}" "$work/snap-args.json" >/dev/null
    snap_times[$v]+="$(( ($(date +%s%N) - start) / 1000 )) "
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m/1000}'; }

ref=${variants[0]}
ref_ms=$(median <<<"${times[$ref]}")
ref_snap=$(median <<<"${snap_times[$ref]}")
header="| variant |"
rule="|---|"
for m in "${modules[@]}"; do header+=" ${m#etcd_} |"; rule+="---|"; done
echo "Sizes in MiB (stripped, static musl); gzip -9; etcd_health, etcd_snapshot (${SNAP_MB:-32} MiB of values): median of $runs runs, ratio to $ref; build: wall seconds."
echo
echo "$header six total | six gzip | multi-call | multi-call gzip | etcd_health ms | vs $ref | etcd_snapshot ms | vs $ref | build s |"
echo "$rule---|---|---|---|---|---|---|---|---|"
for v in "${variants[@]}"; do
  out=target/size/$v/$target/release
  row="| $v |"
  total=0 gz=0
  for m in "${modules[@]}"; do
    s=$(size_of "$out/$m")
    total=$((total + s))
    gz=$((gz + $(gz_of "$out/$m")))
    row+=" $( [ "$s" = 0 ] && echo - || mb "$s") |"
  done
  multi=$(size_of "$out/etcd_modules")
  ms=$(median <<<"${times[$v]}")
  row+=" $( [ "$total" = 0 ] && echo - || mb "$total") | $( [ "$gz" = 0 ] && echo - || mb "$gz") |"
  row+=" $( [ "$multi" = 0 ] && echo - || mb "$multi") | $( [ "$multi" = 0 ] && echo - || mb "$(gz_of "$out/etcd_modules")") |"
  snap_ms=$(median <<<"${snap_times[$v]}")
  row+=" $ms | $(awk -v a="$ms" -v b="$ref_ms" 'BEGIN{printf "%.2fx", a/b}') |"
  row+=" $snap_ms | $(awk -v a="$snap_ms" -v b="$ref_snap" 'BEGIN{printf "%.2fx", a/b}') | $(cat "target/size/$v/build-seconds" 2>/dev/null || echo -) |"
  echo "$row"
done
