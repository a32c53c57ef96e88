#!/usr/bin/env bash
# Benchmark the day-2 verbs against a running kube-sim, each as a ratio to `wharf deploy` of the
# same bundle making the same kind of change (one option), on the same machine:
#
#   - `wharf config APP KEY=VALUE` on the shipped lite bundle (Dex's public URL, which reaches the
#     gatekeeper and the gateway through the relations) vs `wharf deploy lite --set` of that option;
#   - `wharf upgrade` to charms whose new revision the API server rejects, so the upgrade fails at
#     once and rolls back automatically (the machinery, not a readiness timeout), vs a deploy of
#     the fixture bundle with one changed option.
#
#   scripts/bench-day2.sh          (BENCH_PROFILE=dev to skip the release build)
#
# Needs hyperfine (`apt-get install hyperfine`).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "hyperfine is missing: apt-get install hyperfine" >&2; exit 1; }

profile="${BENCH_PROFILE:-release}"
cargo build --profile "$profile" -p wharf -p kube-sim >&2
dir=$([[ "$profile" == dev ]] && echo debug || echo "$profile")
target="${CARGO_TARGET_DIR:-$PWD/target}"
wharf="$target/$dir/wharf"
sim="$target/$dir/kube-sim"

work="$(mktemp -d)"
trap 'kill "$sim_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
# Ready at once: the benchmark measures wharf, not the simulated controllers.
"$sim" --kubeconfig "$work/kubeconfig" --readiness-delay-ms 0 --crd-delay-ms 0 >"$work/url" 2>"$work/sim.log" &
sim_pid=$!
for _ in $(seq 100); do [[ -s "$work/url" ]] && break; sleep 0.05; done
[[ -s "$work/url" ]] || { echo "kube-sim did not start: $(cat "$work/sim.log")" >&2; exit 1; }
export NO_COLOR=1 KUBECONFIG="$work/kubeconfig"

# 1. config vs deploy, lite: each measured run really changes the option (prepare sets the other).
lite=(-m lite)
"$wharf" deploy lite "${lite[@]}" --set dex-auth.static-password=bench-password \
  --public-url http://10.0.0.1.nip.io >/dev/null 2>&1
hyperfine --warmup 1 --runs 10 --export-markdown "$work/lite.md" \
  --prepare "$wharf config dex-auth public-url=http://10.0.0.1.nip.io ${lite[*]} >/dev/null 2>&1" \
  -n "config dex-auth public-url (lite)" \
  "$wharf config dex-auth public-url=http://10.0.0.2.nip.io ${lite[*]} >/dev/null 2>&1" \
  --prepare "$wharf deploy lite --set dex-auth.public-url=http://10.0.0.1.nip.io ${lite[*]} >/dev/null 2>&1" \
  -n "deploy lite --set dex-auth.public-url (lite)" \
  "$wharf deploy lite --set dex-auth.public-url=http://10.0.0.2.nip.io ${lite[*]} >/dev/null 2>&1"

# 2. upgrade + automatic rollback vs deploy, the deploy engine's fixture bundle and a copy of its
# charms at a second version whose Greeting the CRD's schema refuses.
cp -r tests/fixtures/deploy/charms "$work/charms"
tiny=(-m tiny)
bundle=tests/fixtures/deploy/bundle.yaml
WHARF_CHARMS="$work/charms" "$wharf" deploy "$bundle" "${tiny[@]}" >/dev/null 2>&1
sed -i 's/^version: .*/version: 2.1.0/' "$work/charms/web/metadata.yaml"
sed -i 's/text: .*/text: 42/' "$work/charms/web/templates/30-greeting.yaml"
# The backup every upgrade makes first is measured on its own line: --no-backup for the engine.
export WHARF_BACKUP_PASSPHRASE=bench-passphrase HOME="$work/home"
if WHARF_CHARMS="$work/charms" "$wharf" upgrade --no-backup "${tiny[@]}" >/dev/null 2>"$work/upgrade.err"; then
  echo "the upgrade was expected to fail and roll back" >&2; exit 1
fi
grep -q "rolled back automatically" "$work/upgrade.err" || { cat "$work/upgrade.err" >&2; exit 1; }
cp -r tests/fixtures/deploy/charms "$work/charms-v1"
hyperfine --warmup 1 --runs 10 -i --export-markdown "$work/upgrade.md" \
  -n "upgrade (fails, rolls back)" \
  "WHARF_CHARMS=$work/charms $wharf upgrade --no-backup ${tiny[*]} >/dev/null 2>&1" \
  -n "upgrade (state backup first, fails, rolls back)" \
  "WHARF_CHARMS=$work/charms $wharf upgrade ${tiny[*]} >/dev/null 2>&1" \
  --prepare "WHARF_CHARMS=$work/charms-v1 $wharf deploy $bundle --set web.greeting=a ${tiny[*]} >/dev/null 2>&1" \
  -n "deploy (one option changes)" \
  "WHARF_CHARMS=$work/charms-v1 $wharf deploy $bundle --set web.greeting=b ${tiny[*]} >/dev/null 2>&1"
cat "$work/lite.md" "$work/upgrade.md"
