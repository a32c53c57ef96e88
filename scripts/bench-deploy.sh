#!/usr/bin/env bash
# Benchmark wharf's own time to render a bundle, deploy it to a running kube-sim, and re-run the
# deploy with nothing to change (which must write nothing but the lock Lease).
#
#   scripts/bench-deploy.sh [BUNDLE] [--charms-dir DIR]
#
# BUNDLE defaults to `lite` when wharf ships it, else the deploy engine's test fixture. Needs
# hyperfine (`apt-get install hyperfine`). Builds release binaries of wharf and kube-sim.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v hyperfine >/dev/null || { echo "hyperfine is missing: apt-get install hyperfine" >&2; exit 1; }

bundle="${1:-}"
charms=()
if [[ -z "$bundle" ]]; then
  if [[ -f bundles/lite.yaml ]]; then
    bundle=lite
  else
    bundle=tests/fixtures/deploy/bundle.yaml
    charms=(--charms-dir tests/fixtures/deploy/charms)
  fi
fi
shift || true
if [[ "${1:-}" == "--charms-dir" ]]; then charms=(--charms-dir "$2"); fi

# BENCH_PROFILE=dev skips the release build (dependencies are optimised in dev builds too).
profile="${BENCH_PROFILE:-release}"
cargo build --profile "$profile" -p wharf -p kube-sim >&2
dir=$([[ "$profile" == dev ]] && echo debug || echo "$profile")
target="${CARGO_TARGET_DIR:-$PWD/target}"
wharf="$target/$dir/wharf"
sim="$target/$dir/kube-sim"

work="$(mktemp -d)"
trap 'kill "$sim_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
# Workloads become ready at once: the benchmark measures wharf, not the simulated controllers.
"$sim" --kubeconfig "$work/kubeconfig" --readiness-delay-ms 0 --crd-delay-ms 0 >"$work/url" 2>"$work/sim.log" &
sim_pid=$!
for _ in $(seq 100); do [[ -s "$work/url" ]] && break; sleep 0.05; done
[[ -s "$work/url" ]] || { echo "kube-sim did not start: $(cat "$work/sim.log")" >&2; exit 1; }

common=(--kubeconfig "$work/kubeconfig" -m bench)
export NO_COLOR=1

echo "bundle: $bundle" >&2
hyperfine --warmup 2 --export-markdown "$work/render.md" \
  -n render "$wharf render $bundle ${charms[*]} -m bench"
hyperfine --warmup 1 --runs 10 --export-markdown "$work/deploy.md" \
  --prepare "$wharf remove --all ${common[*]} >/dev/null 2>&1 || true" \
  -n "deploy (fresh model)" "$wharf deploy $bundle ${charms[*]} ${common[*]} --timeout 60s 2>/dev/null"
"$wharf" deploy "$bundle" "${charms[@]}" "${common[@]}" >/dev/null 2>&1
hyperfine --warmup 2 --export-markdown "$work/rerun.md" \
  -n "deploy (no change)" "$wharf deploy $bundle ${charms[*]} ${common[*]} 2>/dev/null"
cat "$work/render.md" "$work/deploy.md" "$work/rerun.md"
