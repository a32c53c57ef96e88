#!/usr/bin/env bash
# Benchmark `wharf backup create` and `wharf restore` of MinIO's data (moto standing in for MinIO,
# kube-sim for the cluster) against `rclone copy` of the same bucket on the same machine (both with
# 4 transfers at once; wharf with --parallel 1 too), and the cost of the encryption: the item
# pipeline with and without its age layer (examples/bench_items.rs), as a ratio.
#
#   scripts/bench-backup.sh [MiB-per-big-object] [big-objects] [small-objects]   (default 4 50 1000)
#   BENCH_PROFILE=dev scripts/bench-backup.sh      (skip the release build)
#
# Needs rclone, curl and bc (`apt-get install rclone curl bc`) and moto_server (scripts/test.sh
# installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
for c in rclone curl bc; do
  command -v "$c" >/dev/null || { echo "$c is missing: apt-get install $c" >&2; exit 1; }
done
big_mib="${1:-4}" big_n="${2:-50}" small_n="${3:-1000}"
profile="${BENCH_PROFILE:-release}"
# BENCH_NO_BUILD=1: use the binaries already in the target directory (e.g. after `cargo test --workspace`,
# whose features differ from a build of these packages alone, which rebuilds most dependencies).
if [[ "${BENCH_NO_BUILD:-}" != 1 ]]; then
  cargo build --profile "$profile" -p wharf -p kube-sim >&2
  cargo build --profile "$profile" -p wharf --example bench_items >&2
fi
dir=$([[ "$profile" == dev ]] && echo debug || echo "$profile")
target="${CARGO_TARGET_DIR:-$PWD/target}"
wharf="$target/$dir/wharf" sim="$target/$dir/kube-sim"
moto="${WHARF_MOTO_SERVER:-$target/moto-venv/bin/moto_server}"

work="$(mktemp -d)"
trap 'kill "$sim_pid" "$moto_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
"$sim" --kubeconfig "$work/kubeconfig" --readiness-delay-ms 0 --crd-delay-ms 0 >"$work/url" 2>"$work/sim.log" &
sim_pid=$!
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$moto" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
endpoint="http://127.0.0.1:$port"
for _ in $(seq 200); do [[ -s "$work/url" ]] && curl -s "$endpoint" >/dev/null && break; sleep 0.1; done
export NO_COLOR=1 KUBECONFIG="$work/kubeconfig" WHARF_CHARMS="$PWD/tests/fixtures/deploy/charms"
export WHARF_BACKUP_PASSPHRASE="bench passphrase" HOME="$work"
# rclone refuses a custom CA bundle on a plain-http endpoint.
unset AWS_CA_BUNDLE
export RCLONE_CONFIG_MOTO_TYPE=s3 RCLONE_CONFIG_MOTO_PROVIDER=Other RCLONE_CONFIG_MOTO_ENDPOINT="$endpoint" \
  RCLONE_CONFIG_MOTO_ACCESS_KEY_ID=bench RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY=bench-secret
curl -s -X PUT "$endpoint/wharf" >/dev/null
"$wharf" deploy tests/fixtures/backup/bundle.yaml -m tiny >/dev/null 2>&1

now() { date +%s.%N; }
rate() { python3 -c "import sys; b,n,t=map(float,sys.argv[1:]); print(f'{t:6.2f} s  {b/1e6/t:8.1f} MB/s  {n/t:8.1f} objects/s')" "$@"; }

run_case() {  # name, bytes, objects
  local name=$1 bytes=$2 n=$3
  echo "== $name: $n objects, $((bytes / 1000000)) MB"
  local t0 t1
  t0=$(now); "$wharf" backup create "$name-1" -m tiny --to "$work/backups" --s3-endpoint "$endpoint" --parallel 1 >/dev/null 2>&1; t1=$(now)
  echo "  wharf backup create --parallel 1:  $(rate "$bytes" "$n" "$(echo "$t1 - $t0" | bc)")"
  t0=$(now); "$wharf" backup create "$name" -m tiny --to "$work/backups" --s3-endpoint "$endpoint" --parallel 4 >/dev/null 2>&1; t1=$(now)
  echo "  wharf backup create --parallel 4:  $(rate "$bytes" "$n" "$(echo "$t1 - $t0" | bc)")"
  t0=$(now); rclone copy moto:wharf "$work/rclone-$name" --transfers 4 2>/dev/null; t1=$(now)
  echo "  rclone copy bucket -> dir:         $(rate "$bytes" "$n" "$(echo "$t1 - $t0" | bc)")"
  rclone delete moto:wharf 2>/dev/null
  t0=$(now); "$wharf" restore "$name" -m tiny --from "$work/backups" --s3-endpoint "$endpoint" --existing update --parallel 4 >/dev/null 2>&1; t1=$(now)
  echo "  wharf restore --parallel 4:        $(rate "$bytes" "$n" "$(echo "$t1 - $t0" | bc)")"
  rclone delete moto:wharf 2>/dev/null
  t0=$(now); rclone copy "$work/rclone-$name" moto:wharf --transfers 4 2>/dev/null; t1=$(now)
  echo "  rclone copy dir -> bucket:         $(rate "$bytes" "$n" "$(echo "$t1 - $t0" | bc)")"
}

mkdir -p "$work/gen/big" "$work/gen/small"
for i in $(seq "$big_n"); do head -c $((big_mib * 1048576)) /dev/urandom >"$work/gen/big/$i.bin"; done
rclone copy "$work/gen/big" moto:wharf/big --transfers 4 2>/dev/null
run_case big $((big_n * big_mib * 1048576)) "$big_n"
rclone delete moto:wharf 2>/dev/null
for i in $(seq "$small_n"); do head -c 4096 /dev/urandom >"$work/gen/small/$i.bin"; done
rclone copy "$work/gen/small" moto:wharf/small --transfers 8 2>/dev/null
run_case small $((small_n * 4096)) "$small_n"

echo "== encryption's cost (the same item pipeline with and without age; data in memory, a directory repository)"
"$target/$dir/examples/bench_items" "$big_mib" "$big_n" 3
