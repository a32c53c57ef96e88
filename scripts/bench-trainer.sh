#!/usr/bin/env bash
# Benchmarks wharf-trainer against Keras (tensorflow-cpu) on the same MLP and the same IDX files,
# then times the CNN with its defaults (10 epochs, batch 64, Adam 0.002 with cosine decay), whose
# target is test accuracy >= 0.91 within 300 s on 2 cores. Prints wall times, test accuracies,
# the ratio and the machine load (wall times on a shared machine are only as good as its load).
# Usage: scripts/bench-trainer.sh [DATA_DIR]   (CNN_EPOCHS=N to override the CNN's epochs; SKIP_CNN=1;
# SKIP_KERAS=1 for the CNN alone)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-/usr/share/datasets/fashion-mnist}
CNN_EPOCHS=${CNN_EPOCHS:-}
VENV=target/bench-venv
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

[ -e "$DATA/train-images-idx3-ubyte.gz" ] || [ -e "$DATA/train-images-idx3-ubyte" ] || {
  echo "no Fashion-MNIST in $DATA: apt-get install dataset-fashion-mnist" >&2; exit 1; }
cargo build -q --release -p wharf-trainer
BIN=target/release/wharf-trainer

now() { date +%s.%N; }

if [ -z "${SKIP_KERAS:-}" ]; then
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import tensorflow' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q tensorflow-cpu==2.21.0
fi
echo "== Keras MLP (Flatten-Dense128 relu-Dense10, Adam 1e-3, 10 epochs, batch 32, seed 0)"
t0=$(now)
KERAS_ACC=$(TF_CPP_MIN_LOG_LEVEL=3 "$VENV/bin/python" - "$DATA" <<'PY'
import gzip, os, struct, sys
import numpy as np
import tensorflow as tf
d = sys.argv[1]
def read(name):
    p = os.path.join(d, name)
    p = p if os.path.exists(p) else p + ".gz"
    raw = open(p, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)
xtr = read("train-images-idx3-ubyte") / 255.0
ytr = read("train-labels-idx1-ubyte")
xte = read("t10k-images-idx3-ubyte") / 255.0
yte = read("t10k-labels-idx1-ubyte")
tf.keras.utils.set_random_seed(0)
m = tf.keras.Sequential([tf.keras.Input((28, 28)), tf.keras.layers.Flatten(),
    tf.keras.layers.Dense(128, activation="relu"), tf.keras.layers.Dense(10)])
m.compile(optimizer=tf.keras.optimizers.Adam(0.001),
          loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
m.fit(xtr, ytr, epochs=10, batch_size=32, verbose=2)
print(m.evaluate(xte, yte, verbose=0)[1])
PY
)
KERAS_ACC=$(echo "$KERAS_ACC" | tail -1)
t1=$(now)
KERAS_S=$(echo "$t1 - $t0" | bc)

echo "== wharf-trainer MLP (same settings)"
t0=$(now)
"$BIN" train --data "$DATA" --model mlp --epochs 10 --batch-size 32 --seed 0 --out "$OUT/mlp" | tee "$OUT/mlp.log"
t1=$(now)
WHARF_S=$(echo "$t1 - $t0" | bc)
WHARF_ACC=$(tail -1 "$OUT/mlp.log" | python3 -c 'import json,sys; print(json.load(sys.stdin)["metrics"]["test_accuracy"])')

printf '\nMLP   keras: %.1f s, test accuracy %s\n' "$KERAS_S" "$KERAS_ACC"
printf 'MLP   wharf: %.1f s, test accuracy %s\n' "$WHARF_S" "$WHARF_ACC"
printf 'MLP   wall-time ratio wharf/keras: %.2f\n' "$(echo "$WHARF_S / $KERAS_S" | bc -l)"
fi

if [ -z "${SKIP_CNN:-}" ]; then
  echo "== wharf-trainer CNN (defaults${CNN_EPOCHS:+, $CNN_EPOCHS epochs}, seed 0)"
  echo "load before: $(uptime)"
  t0=$(now)
  "$BIN" train --data "$DATA" --model cnn ${CNN_EPOCHS:+--epochs "$CNN_EPOCHS"} --seed 0 --out "$OUT/cnn" | tee "$OUT/cnn.log"
  t1=$(now)
  echo "load after:  $(uptime)"
  CNN_ACC=$(tail -1 "$OUT/cnn.log" | python3 -c 'import json,sys; print(json.load(sys.stdin)["metrics"]["test_accuracy"])')
  CNN_S=$(echo "$t1 - $t0" | bc)
  printf '\nCNN   wharf: %.1f s, test accuracy %s (target: >= 0.91 within 300 s)\n' "$CNN_S" "$CNN_ACC"
fi
