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

# The peer: `kubectl apply --server-side` of the same manifests on a second simulator. It applies in
# one pass and waits for nothing, keeps no release record and takes no lock, so it is the floor
# that wharf's extra guarantees are measured against, not an equal.
peer=()
if command -v kubectl >/dev/null; then
  # A fresh simulator before each fresh run: kubectl deletes in protobuf, which kube-sim does not
  # speak (its server-side applies are YAML). `--anonymous-admin`: kubectl sends no token over HTTP.
  restart="$work/peer-restart.sh"
  {
    echo '#!/usr/bin/env bash'
    echo "[[ -s $work/peer.pid ]] && kill \$(cat $work/peer.pid) 2>/dev/null"
    echo "rm -f $work/peer-url"
    echo "$sim --kubeconfig $work/peer-kubeconfig --anonymous-admin --readiness-delay-ms 0 --crd-delay-ms 0 >$work/peer-url 2>$work/peer-sim.log &"
    echo "echo \$! >$work/peer.pid"
    echo "for _ in \$(seq 100); do [[ -s $work/peer-url ]] && exit 0; sleep 0.05; done"
    echo 'echo "kube-sim (peer) did not start" >&2; exit 1'
  } >"$restart"
  chmod +x "$restart"
  trap 'kill "$sim_pid" $(cat "$work/peer.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
  "$restart"
  {
    printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench\n---\n'
    "$wharf" render "$bundle" "${charms[@]}" -m bench --show-secrets
  } >"$work/manifests.yaml"
  # --validate=false: kube-sim serves no /openapi documents for kubectl's client-side validation.
  apply="kubectl --kubeconfig $work/peer-kubeconfig apply --server-side --force-conflicts --validate=false --field-manager peer -f $work/manifests.yaml"
  hyperfine --warmup 1 --runs 10 --export-markdown "$work/peer-fresh.md" --prepare "$restart" \
    -n "kubectl apply --server-side (fresh)" "$apply >/dev/null"
  $apply >/dev/null
  hyperfine --warmup 2 --export-markdown "$work/peer-rerun.md" \
    -n "kubectl apply --server-side (no change)" "$apply >/dev/null"
  peer=("$work/peer-fresh.md" "$work/peer-rerun.md")
else
  echo "kubectl not found: no peer numbers (apt-get install kubernetes-client)" >&2
fi
cat "$work/render.md" "$work/deploy.md" "$work/rerun.md" "${peer[@]}"
