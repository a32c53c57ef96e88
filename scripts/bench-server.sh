#!/usr/bin/env bash
# Benchmarks wharf-server against MLServer 1.7.1 (scikit-learn runtime) on the same V2 request:
# one real Fashion-MNIST test image as [1,784] FP32, sent with oha for DURATION at -c 8 and -c 1
# with keep-alive. The servers run one after the other, never at the same time.
#
# Then wharf-server's other encodings of the same image: V2 binary tensor data over HTTP (oha,
# c=8 and 64) and V2 gRPC with raw_input_contents (examples/grpc_load.rs, a tonic client, closed
# loop like oha, one HTTP/2 connection per worker, c=8 and 64); and the ceiling: a bare axum
# server of the same build profile that reads the same body and answers a same-sized response
# (examples/echo_server.rs). Ratios to it say how much of the stack's speed wharf keeps.
#
# Models: MLServer serves an sklearn MLPClassifier(hidden_layer_sizes=(128,)) trained here.
# wharf-server serves the trainer's artifact (`wharf-trainer train --model mlp`) when the trainer
# produces one; otherwise the same sklearn weights converted into a wharf artifact through
# wharf-model's API (examples/make_artifact.rs). Same 784-128-10 shape either way.
#
# Env: DURATION (default 15s), WHARF_BENCH_ARTIFACT=auto|trainer|sklearn (default auto),
#      SKLEARN_EPOCHS (default 5), KEEP=1 keeps the work directory.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
DURATION="${DURATION:-15s}"
ARTIFACT_SOURCE="${WHARF_BENCH_ARTIFACT:-auto}"
EPOCHS="${SKLEARN_EPOCHS:-5}"
VENV="$ROOT/target/bench-venv-server"
WORK="$ROOT/target/bench-server"
DATA=/usr/share/datasets/fashion-mnist
MLSERVER_PORT=18080
WHARF_PORT=18090
OHA_VERSION=1.16.0

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'bench-server: %s\n' "$*" >&2; exit 1; }

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ "${KEEP:-0}" == 1 ]] || rm -rf "$WORK/mlserver" "$WORK/repo"
}
trap cleanup EXIT

# --- prerequisites -----------------------------------------------------------------------------
if [[ ! -f "$DATA/t10k-images-idx3-ubyte.gz" ]]; then
  log "installing dataset-fashion-mnist (apt)"
  apt-get install -y dataset-fashion-mnist >/dev/null || die "apt-get install -y dataset-fashion-mnist failed (run as root)"
fi
if ! command -v oha >/dev/null || [[ "$(oha --version)" != *"$OHA_VERSION"* ]]; then
  log "installing oha $OHA_VERSION"
  cargo install oha --version "$OHA_VERSION" --locked
fi
if [[ ! -x "$VENV/bin/mlserver" ]]; then
  log "creating $VENV with mlserver==1.7.1"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q mlserver==1.7.1 mlserver-sklearn scikit-learn
fi
mkdir -p "$WORK"
rm -rf "$WORK/mlserver" "$WORK/repo"
mkdir -p "$WORK/mlserver/fashion" "$WORK/repo/fashion"

log "building wharf-server (release)"
cargo build --release -q -p wharf-server --bin wharf-server --example make_artifact \
  --example echo_server --example grpc_load
RELEASE="${CARGO_TARGET_DIR:-$ROOT/target}/release"
SERVER="$RELEASE/wharf-server"
MAKE_ARTIFACT="$RELEASE/examples/make_artifact"
ECHO_SERVER="$RELEASE/examples/echo_server"
GRPC_LOAD="$RELEASE/examples/grpc_load"
ECHO_PORT=18095
WHARF_GRPC_PORT=18091

# --- the sklearn model, its weights for wharf, and the request ----------------------------------
log "training sklearn MLPClassifier(hidden_layer_sizes=(128,)) for $EPOCHS epochs"
"$VENV/bin/python" - "$DATA" "$WORK" "$EPOCHS" <<'PY'
import gzip, json, sys, warnings
import numpy as np, joblib
from sklearn.neural_network import MLPClassifier
from sklearn.exceptions import ConvergenceWarning

data, work, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
def images(name):
    with gzip.open(f"{data}/{name}") as f:
        return np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
def labels(name):
    with gzip.open(f"{data}/{name}") as f:
        return np.frombuffer(f.read(), np.uint8, offset=8)
xtr, ytr = images("train-images-idx3-ubyte.gz") / 255.0, labels("train-labels-idx1-ubyte.gz")
xte_raw, yte = images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz")
xte = xte_raw / 255.0
clf = MLPClassifier(hidden_layer_sizes=(128,), max_iter=epochs, random_state=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    clf.fit(xtr.astype(np.float32), ytr)
acc = float(clf.score(xte.astype(np.float32), yte))
print(f"sklearn test accuracy: {acc:.4f}", file=sys.stderr)
joblib.dump(clf, f"{work}/mlserver/fashion/model.joblib")
# wharf Dense weights are [outputs, inputs]; sklearn's coefs_ are [inputs, outputs].
tensor = lambda a: {"shape": list(a.shape), "data": a.astype(np.float32).ravel().tolist()}
weights = {
    "fc1.weight": tensor(clf.coefs_[0].T), "fc1.bias": tensor(clf.intercepts_[0]),
    "fc2.weight": tensor(clf.coefs_[1].T), "fc2.bias": tensor(clf.intercepts_[1]),
}
json.dump(weights, open(f"{work}/sklearn-weights.json", "w"))
open(f"{work}/sklearn-accuracy", "w").write(str(acc))
image = (xte_raw[0] / 255.0).astype(np.float32)
request = {"inputs": [{"name": "input-0", "shape": [1, 784], "datatype": "FP32",
                       "data": [float(v) for v in image]}]}
json.dump(request, open(f"{work}/request.json", "w"))
# The same image for the binary tensor data extension (JSON header, then 3136 bytes) and gRPC.
header = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 784], "datatype": "FP32",
                                 "parameters": {"binary_data_size": 784 * 4}}]}).encode()
open(f"{work}/request.bin", "wb").write(header + image.astype("<f4").tobytes())
open(f"{work}/request.bin.header-length", "w").write(str(len(header)))
open(f"{work}/image.f32", "wb").write(image.astype("<f4").tobytes())
PY

cat > "$WORK/mlserver/settings.json" <<JSON
{"debug": false, "parallel_workers": 0, "http_port": $MLSERVER_PORT, "grpc_port": 18081, "metrics_port": 18082}
JSON
cat > "$WORK/mlserver/fashion/model-settings.json" <<'JSON'
{"name": "fashion", "implementation": "mlserver_sklearn.SKLearnModel",
 "parameters": {"uri": "./model.joblib", "version": "1"}}
JSON

WHARF_MODEL_FROM=""
if [[ "$ARTIFACT_SOURCE" != sklearn ]]; then
  log "trying the trainer: wharf-trainer train --model mlp --epochs 2"
  # The trainer writes the next numbered version under --out: version 1 of an empty repository.
  rm -rf "$WORK/repo/fashion" && mkdir -p "$WORK/repo/fashion"
  if cargo run --release -q -p wharf-trainer -- train --model mlp --epochs 2 --out "$WORK/repo/fashion" >&2 \
      && [[ -f "$WORK/repo/fashion/1/model.json" ]]; then
    WHARF_MODEL_FROM="wharf-trainer (mlp, 2 epochs)"
  elif [[ "$ARTIFACT_SOURCE" == trainer ]]; then
    die "the trainer did not produce $WORK/repo/fashion/1/model.json"
  else
    rm -rf "$WORK/repo/fashion/1"
  fi
fi
if [[ -z "$WHARF_MODEL_FROM" ]]; then
  "$MAKE_ARTIFACT" --weights "$WORK/sklearn-weights.json" --accuracy "$(cat "$WORK/sklearn-accuracy")" \
    --out "$WORK/repo/fashion/1" >&2
  WHARF_MODEL_FROM="the sklearn weights converted with examples/make_artifact.rs (trainer not available)"
fi

# --- helpers --------------------------------------------------------------------------------------
wait_ready() { # url seconds
  for _ in $(seq 1 $(( $2 * 10 ))); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.1
  done
  die "$1 not ready after $2 s"
}
# Prints "rps p50_ms p99_ms non2xx" from an oha run.
run_oha() { # url concurrency [body-file content-type extra-header]
  local body="${3:-$WORK/request.json}" type="${4:-application/json}"
  local extra=()
  [[ -n "${5:-}" ]] && extra=(-H "$5")
  oha -z "$DURATION" -c "$2" --no-tui --output-format json -m POST -T "$type" "${extra[@]}" \
    -D "$body" "$1" > "$WORK/oha.json"
  "$VENV/bin/python" - "$WORK/oha.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
codes = r.get("statusCodeDistribution", {})
bad = sum(v for k, v in codes.items() if not k.startswith("2"))
lat = r["latencyPercentiles"]
# oha cancels the requests still open when the duration ends: those are not failures.
errors = sum(v for k, v in r.get("errorDistribution", {}).items() if k != "aborted due to deadline")
print(f'{r["summary"]["requestsPerSec"]:.0f} {lat["p50"]*1000:.3f} {lat["p99"]*1000:.3f} {bad + errors}')
PY
}
check_answer() { # url
  curl -sf -H 'content-type: application/json' -d @"$WORK/request.json" "$1" > "$WORK/answer.json" \
    || die "POST $1 failed"
}

declare -A RESULT

# --- MLServer ---------------------------------------------------------------------------------------
log "starting MLServer 1.7.1 on :$MLSERVER_PORT"
( cd "$WORK/mlserver" && exec "$VENV/bin/mlserver" start . ) > "$WORK/mlserver.log" 2>&1 &
PIDS+=($!)
MLS_PID=$!
wait_ready "http://127.0.0.1:$MLSERVER_PORT/v2/models/fashion/ready" 120
check_answer "http://127.0.0.1:$MLSERVER_PORT/v2/models/fashion/infer"
log "MLServer answers: $(head -c 300 "$WORK/answer.json")"
for c in 8 1; do
  log "oha -c $c -z $DURATION -> MLServer"
  RESULT[mlserver,$c]="$(run_oha "http://127.0.0.1:$MLSERVER_PORT/v2/models/fashion/infer" "$c")"
done
kill "$MLS_PID"; wait "$MLS_PID" 2>/dev/null || true

# --- wharf-server -----------------------------------------------------------------------------------
log "starting wharf-server on :$WHARF_PORT (model: $WHARF_MODEL_FROM)"
"$SERVER" serve --model-repository "$WORK/repo" --host 127.0.0.1 --port "$WHARF_PORT" \
  --grpc-port "$WHARF_GRPC_PORT" > "$WORK/wharf.log" 2>&1 &
PIDS+=($!)
WHARF_PID=$!
wait_ready "http://127.0.0.1:$WHARF_PORT/v2/models/fashion/ready" 30
check_answer "http://127.0.0.1:$WHARF_PORT/v2/models/fashion/infer"
log "wharf-server answers: $(head -c 300 "$WORK/answer.json")"
for c in 8 1; do
  log "oha -c $c -z $DURATION -> wharf-server"
  RESULT[wharf,$c]="$(run_oha "http://127.0.0.1:$WHARF_PORT/v2/models/fashion/infer" "$c")"
done
curl -s "http://127.0.0.1:$WHARF_PORT/metrics" | grep -E '^wharf_server_batch_size_(sum|count)' > "$WORK/batch.txt" || true
BIN_HEADER="Inference-Header-Content-Length: $(cat "$WORK/request.bin.header-length")"
for c in 8 64; do
  log "oha -c $c -> wharf-server, V2 JSON"
  RESULT[wharf-json,$c]="$(run_oha "http://127.0.0.1:$WHARF_PORT/v2/models/fashion/infer" "$c")"
  log "oha -c $c -> wharf-server, V2 binary tensor data"
  RESULT[wharf-binary,$c]="$(run_oha "http://127.0.0.1:$WHARF_PORT/v2/models/fashion/infer" "$c" \
    "$WORK/request.bin" application/octet-stream "$BIN_HEADER")"
  log "grpc_load -c $c -> wharf-server, V2 gRPC raw_input_contents"
  RESULT[wharf-grpc,$c]="$("$GRPC_LOAD" "127.0.0.1:$WHARF_GRPC_PORT" fashion "$WORK/image.f32" "$c" "${DURATION%s}")"
done
RSS_KB="$(awk '/^VmRSS/ {print $2}' "/proc/$WHARF_PID/status")"
kill "$WHARF_PID"; wait "$WHARF_PID" 2>/dev/null || true

# --- the ceiling: bare axum, same profile, same body ------------------------------------------------
log "starting the axum echo server on :$ECHO_PORT"
"$ECHO_SERVER" "$ECHO_PORT" > "$WORK/echo.log" 2>&1 &
PIDS+=($!)
ECHO_PID=$!
for _ in $(seq 1 100); do curl -sf -o /dev/null -d @"$WORK/request.json" "http://127.0.0.1:$ECHO_PORT/v2/models/fashion/infer" && break; sleep 0.1; done
for c in 8 64; do
  log "oha -c $c -> axum echo"
  RESULT[echo,$c]="$(run_oha "http://127.0.0.1:$ECHO_PORT/v2/models/fashion/infer" "$c")"
done
kill "$ECHO_PID"; wait "$ECHO_PID" 2>/dev/null || true

# --- report ---------------------------------------------------------------------------------------
printf '\nSame V2 request ([1,784] FP32, Fashion-MNIST test image 0), oha %s, keep-alive, %s per run\n' "$OHA_VERSION" "$DURATION"
printf 'wharf model: %s\n' "$WHARF_MODEL_FROM"
printf 'sklearn test accuracy: %s\n\n' "$(cat "$WORK/sklearn-accuracy")"
printf '%-14s %4s %10s %10s %10s %8s\n' server c 'req/s' 'p50 ms' 'p99 ms' errors
for c in 8 1; do
  for s in mlserver wharf; do
    read -r rps p50 p99 bad <<<"${RESULT[$s,$c]}"
    printf '%-14s %4s %10s %10s %10s %8s\n' "$s" "$c" "$rps" "$p50" "$p99" "$bad"
  done
done
printf '\n'
for c in 8 1; do
  read -r mrps mp50 mp99 _ <<<"${RESULT[mlserver,$c]}"
  read -r wrps wp50 wp99 _ <<<"${RESULT[wharf,$c]}"
  awk -v c="$c" -v mr="$mrps" -v wr="$wrps" -v m5="$mp50" -v w5="$wp50" -v m9="$mp99" -v w9="$wp99" \
    'BEGIN { printf "c=%s  throughput x%.1f   p50 %.1fx lower   p99 %.1fx lower\n", c, wr/mr, m5/w5, m9/w9 }'
done
printf 'wharf batch sizes (c=8 then c=1 runs together): %s\n' "$(tr '\n' ' ' < "$WORK/batch.txt")"
printf 'wharf-server RSS after the runs (model loaded): %s KiB\n\n' "$RSS_KB"

printf 'Against the ceiling (bare axum echo, same body, same profile)\n'
printf '%-14s %4s %10s %10s %10s %8s %10s\n' server c 'req/s' 'p50 ms' 'p99 ms' errors 'x echo'
for c in 8 64; do
  read -r erps _ <<<"${RESULT[echo,$c]}"
  for s in echo wharf-json wharf-binary wharf-grpc; do
    read -r rps p50 p99 bad <<<"${RESULT[$s,$c]}"
    ratio="$(awk -v a="$rps" -v b="$erps" 'BEGIN { printf "%.2f", a/b }')"
    printf '%-14s %4s %10s %10s %10s %8s %10s\n' "$s" "$c" "$rps" "$p50" "$p99" "$bad" "$ratio"
  done
done
