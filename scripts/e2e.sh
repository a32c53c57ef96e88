#!/usr/bin/env bash
# Real-cluster end-to-end checks, meant for the Vagrant VM (vagrant/Vagrantfile) after
# `wharf up --bundle lite --yes`. Each check prints PASS or FAIL; the exit code is the number of
# failures. The train-and-serve checks need the trainer and server images published (see
# charms/*/Containerfile).
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

# Train and serve: a TrainJob writes the MLP to the PVC `models`, an InferenceService serves it.
# Needs wharf.local/wharf-{trainer,server} in MicroK8s' containerd: `wharf up --images FILE` imports them
# (scripts/build-release.sh writes dist/wharf-images-<version>.tar).
ns="${WHARF_MODEL:-wharf}"
k() { microk8s kubectl --kubeconfig "$KUBECONFIG" -n "$ns" "$@"; }
k apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: models}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: wharf.dev/v1alpha1
kind: TrainJob
metadata: {name: e2e-mlp}
spec:
  model: mlp
  epochs: 2
  batchSize: 64
  learningRate: 0.001
  seed: 0
  dataset: {uri: "file:///usr/share/datasets/fashion-mnist"}
  output: {uri: "pvc://models/e2e-mlp"}
YAML
run "the TrainJob succeeds" k wait --for=condition=Succeeded trainjob/e2e-mlp --timeout=15m
accuracy="$(k get trainjob e2e-mlp -o jsonpath='{.status.metrics.testAccuracy}' 2>/dev/null)"
run "the TrainJob reports a test accuracy above 0.8 (got ${accuracy:-none})" \
  python3 -c "import sys; sys.exit(0 if float('${accuracy:-0}') > 0.8 else 1)"
k apply -f - >/dev/null <<'YAML'
apiVersion: wharf.dev/v1alpha1
kind: InferenceService
metadata: {name: e2e-mlp}
spec:
  model: {name: e2e-mlp, storageUri: "pvc://models"}
  minReplicas: 1
  maxReplicas: 1
YAML
run "the InferenceService is Ready" k wait --for=condition=Ready inferenceservice/e2e-mlp --timeout=5m
k port-forward svc/e2e-mlp 18080:"$(k get svc e2e-mlp -o jsonpath='{.spec.ports[0].port}')" >/dev/null 2>&1 &
forward=$!
sleep 3
body="$(python3 - <<'PY'
import gzip, json, os
path = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
pixels = list(gzip.open(path).read()[16:16 + 784]) if os.path.exists(path) else [0] * 784
print(json.dumps({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32",
                              "data": [p / 255 for p in pixels]}]}))
PY
)"
run "the model answers a V2 inference request" sh -c \
  "curl -fsS --max-time 10 -H 'Content-Type: application/json' -d '$body' http://127.0.0.1:18080/v2/models/e2e-mlp/infer | grep -q outputs"
kill "$forward" 2>/dev/null
if [ -n "$addr" ]; then
  run "the gateway sends an anonymous model request to the login" sh -c \
    "curl -s -o /dev/null -w '%{http_code}' --max-time 10 http://$addr/models/e2e-mlp/v2/health/ready | grep -q 302"
fi

echo "$failures failure(s)"
exit "$failures"
