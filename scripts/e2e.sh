#!/usr/bin/env bash
# Real-cluster end-to-end checks, meant for the Vagrant VM (vagrant/Vagrantfile) after
# `wharf up --bundle lite --yes`. Each check prints PASS or FAIL; the exit code is the number of
# failures. Extend it as the trainer and the model server land.
#
#   vagrant ssh -c 'cd /wharf && scripts/e2e.sh'
set -uo pipefail

failures=0
pass() { echo "PASS  $*"; }
fail() { echo "FAIL  $*"; failures=$((failures + 1)); }
run() { # description, command...
  local what="$1"; shift
  local out
  if out="$("$@" 2>&1)"; then pass "$what"; else fail "$what"; echo "$out" | tail -n 15 | sed 's/^/      /'; fi
}

microk8s() { sudo microk8s "$@"; }
export KUBECONFIG="${KUBECONFIG:-$HOME/.config/wharf/kubeconfig}"

run "wharf is installed" wharf --version
run "wharf check passes for lite" wharf check --bundle lite
run "MicroK8s is ready" microk8s status --wait-ready --timeout 60
for addon in dns hostpath-storage ingress metallb rbac; do
  run "add-on $addon is enabled" sh -c "sudo microk8s status --format yaml | grep -A4 'name: $addon\$' | grep -q 'status: enabled'"
done
run "the kubeconfig reaches the API server" microk8s kubectl --kubeconfig "$KUBECONFIG" get nodes
run "a re-run of wharf up changes nothing" sh -c "sudo SUDO_USER=$USER wharf up --bundle lite --yes --skip-deploy --metallb 192.168.56.240-192.168.56.250"
run "wharf cluster status lists this node" sh -c "sudo wharf cluster status | grep -q wharf"
run "wharf status shows the platform" wharf status

# A LoadBalancer address from MetalLB, and the gateway answering on it.
addr="$(microk8s kubectl get svc -A -o jsonpath='{range .items[?(@.spec.type=="LoadBalancer")]}{.status.loadBalancer.ingress[0].ip}{"\n"}{end}' | head -n1)"
if [ -n "$addr" ]; then
  pass "a LoadBalancer Service got address $addr"
  run "the gateway answers on http://$addr.nip.io" curl -fsS -o /dev/null --max-time 10 "http://$addr/"
  run "dex's issuer matches the public URL" sh -c "curl -fsS --max-time 10 http://$addr/dex/.well-known/openid-configuration | grep -q '\"issuer\": *\"http://$addr.nip.io/dex\"'"
else
  fail "no LoadBalancer Service has an address"
fi

echo "$failures failure(s)"
exit "$failures"
