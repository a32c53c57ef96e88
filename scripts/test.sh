#!/usr/bin/env bash
# The project's one test command: formatting, lints, every Rust test, then every rendered manifest
# validated against the Kubernetes schemas and the gateway's nginx routing exercised.
#
#   scripts/test.sh
#
# Skips are explicit and reported at the end: WHARF_SKIP_S3_TESTS, WHARF_SKIP_ROOT_TESTS (the
# `up`, `cluster` and `upgrade --kubernetes` scenarios, which run wharf as root),
# WHARF_SKIP_CONTAINERD, WHARF_SKIP_GATEWAY_TEST, WHARF_SKIP_CONFORMANCE (wharf-server against
# tritonclient and kserve from PyPI), WHARF_SKIP_PROMTOOL (the monitoring charm's promtool checks).
# Without them a test that cannot run fails.
#
# Needs: the Rust toolchain (with rustfmt and clippy), python3 with venv, and nginx (for the
# gateway routing test; `apt-get install nginx-light`). Set WHARF_SKIP_GATEWAY_TEST=1 to skip that
# one test on a machine without nginx (it says so loudly; CI must not set it).
#
# The S3 tests run against moto_server (PyPI `moto[server]`, a local S3-compatible server), which
# this script installs into target/moto-venv and passes to them as WHARF_MOTO_SERVER.
#
# The image tests (tests/images.rs) need the musl targets, gcc-aarch64-linux-gnu, containerd, runc,
# skopeo, umoci, qemu-user-static, docker-registry and curl (.ci/run installs them), and root for
# containerd.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

section() { printf '\n======== %s ========\n' "$*"; }

section "format (cargo fmt --check)"
cargo fmt --all -- --check

# --- Python environments, made while the Rust build runs ------------------------------------------
# Four venvs under target/: moto_server (the S3 tests' local S3-compatible server), the inference
# clients of wharf-server's conformance test (NVIDIA's tritonclient, KServe's), the example
# notebook's kernel and client, and kubernetes-validate (the manifests step). pip mostly waits on the network, so it runs beside the
# compiler instead of before it; its output goes to target/python-envs.log and is shown on failure.
MOTO_VERSION="5.2.5"
MOTO_VENV="$ROOT/target/moto-venv"
TRITONCLIENT_VERSION="2.73.0"
KSERVE_VERSION="0.21.0"
# TF Serving's gRPC client for the same conformance test. It needs TensorFlow itself (a 572 MB
# wheel: measured here, the venv grows from 0.5 to 2.5 GB and its install from 99 s to 219 s) and
# resolves with tritonclient/kserve's protobuf (pip check is clean), so it shares their venv.
TFSERVING_API_VERSION="2.21.0"
CONFORMANCE_VENV="$ROOT/target/conformance-venv"
# The example notebook's test (charms/workspaces/tests/operator.rs) runs it in a real IPython
# kernel (nbclient, ipykernel) with the `kubernetes` client, as a notebook server would.
NOTEBOOK_PACKAGES=("kubernetes==33.1.0" "nbclient==0.10.2" "nbformat==5.10.4" "ipykernel==6.29.5")
NOTEBOOK_VENV="$ROOT/target/notebook-venv"
# Every step returns on failure itself: `set -e` does not apply inside the `&&` list that runs it.
prepare_python_envs() {
  if ! "$MOTO_VENV/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("moto") != sys.argv[1])' "$MOTO_VERSION" 2>/dev/null; then
    echo "installing moto[server]==$MOTO_VERSION into $MOTO_VENV"
    python3 -m venv "$MOTO_VENV" \
      || { echo "python3 -m venv failed: apt-get install python3-venv" >&2; return 1; }
    "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" \
      || { echo "pip install moto[server]==$MOTO_VERSION failed (is PyPI reachable?)" >&2; return 1; }
  fi
  "$MOTO_VENV/bin/moto_server" --help >/dev/null || { echo "moto_server does not start" >&2; return 1; }
  if ! "$CONFORMANCE_VENV/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("tritonclient") != sys.argv[1] or m.version("kserve") != sys.argv[2] or m.version("tensorflow-serving-api") != sys.argv[3])' "$TRITONCLIENT_VERSION" "$KSERVE_VERSION" "$TFSERVING_API_VERSION" 2>/dev/null; then
    echo "installing tritonclient[http,grpc]==$TRITONCLIENT_VERSION, kserve==$KSERVE_VERSION and tensorflow-serving-api==$TFSERVING_API_VERSION into $CONFORMANCE_VENV"
    python3 -m venv "$CONFORMANCE_VENV" \
      || { echo "python3 -m venv failed: apt-get install python3-venv" >&2; return 1; }
    "$CONFORMANCE_VENV/bin/pip" install --quiet --disable-pip-version-check \
      "tritonclient[http,grpc]==$TRITONCLIENT_VERSION" "kserve==$KSERVE_VERSION" \
      "tensorflow-serving-api==$TFSERVING_API_VERSION" "tensorflow==$TFSERVING_API_VERSION" \
      || { echo "pip install tritonclient/kserve/tensorflow-serving-api failed (is PyPI reachable?)" >&2; return 1; }
  fi
  if ! "$NOTEBOOK_VENV/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(any(m.version(p.split("==")[0]) != p.split("==")[1] for p in sys.argv[1:]))' "${NOTEBOOK_PACKAGES[@]}" 2>/dev/null; then
    echo "installing ${NOTEBOOK_PACKAGES[*]} into $NOTEBOOK_VENV"
    python3 -m venv "$NOTEBOOK_VENV" \
      || { echo "python3 -m venv failed: apt-get install python3-venv" >&2; return 1; }
    "$NOTEBOOK_VENV/bin/pip" install --quiet --disable-pip-version-check "${NOTEBOOK_PACKAGES[@]}" \
      || { echo "pip install ${NOTEBOOK_PACKAGES[*]} failed (is PyPI reachable?)" >&2; return 1; }
  fi
  scripts/validate-manifests.sh --prepare
}
mkdir -p "$ROOT/target"
PYTHON_LOG="$ROOT/target/python-envs.log"
python_started=$SECONDS
( prepare_python_envs && echo "Python environments prepared in $((SECONDS - python_started))s" ) >"$PYTHON_LOG" 2>&1 &
python_pid=$!
wait_for_python_envs() {
  local waited=$SECONDS
  if ! wait "$python_pid"; then
    cat "$PYTHON_LOG" >&2
    echo "preparing the Python environments failed (log above, also in $PYTHON_LOG)" >&2
    exit 1
  fi
  tail -n 1 "$PYTHON_LOG"
  echo "(the build waited $((SECONDS - waited))s for them)"
}
export WHARF_MOTO_SERVER="$MOTO_VENV/bin/moto_server"
export WHARF_NOTEBOOK_PYTHON="$NOTEBOOK_VENV/bin/python"
# charms/server/tests/conformance.rs runs tritonclient (HTTP binary and JSON, gRPC), KServe's V2
# REST and gRPC clients and TF Serving's gRPC client against a real wharf-server. WHARF_SKIP_CONFORMANCE=1 skips that one test
# loudly (CI must not set it).
export WHARF_CONFORMANCE_PYTHON="$CONFORMANCE_VENV/bin/python"

section "lints (cargo clippy, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

# --- the Rust build ----------------------------------------------------------------------------------
# The tests are built for x86_64-unknown-linux-musl, not the host's glibc target: wharf's images hold
# static musl binaries, and the image tests (tests/images.rs) package the very binaries this build
# makes, so every dependency is compiled once for amd64 rather than once for the tests and once for
# the images. rust-lld links (as for arm64): ~65 test binaries each link kube, tokio and candle.
HOST_TARGET=x86_64-unknown-linux-musl
export CC_x86_64_unknown_linux_musl=gcc CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

section "arm64 binaries for the image tests (profile arm64-test)"
# The arm64 image holds wharf-server, wharf-trainer and wharf-workspaces; the tests run the server
# under qemu-aarch64-static for a few inferences and time nothing, so the arm64-test profile skips
# optimising dependencies (see Cargo.toml). An arm64 wharf is left to scripts/build-release.sh.
# ring's C parts need gcc-aarch64-linux-gnu.
start=$SECONDS
CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
  cargo build --locked --profile arm64-test --target aarch64-unknown-linux-musl \
  -p wharf-server -p wharf-trainer -p wharf-workspaces
echo "arm64 binaries built in $((SECONDS - start))s"
export WHARF_IMAGE_BINARIES_AMD64="$TARGET_DIR/$HOST_TARGET/debug"
export WHARF_IMAGE_BINARIES_ARM64="$TARGET_DIR/aarch64-unknown-linux-musl/arm64-test"

section "tests: build (cargo test --no-run, $HOST_TARGET)"
start=$SECONDS
cargo test --workspace --locked --target "$HOST_TARGET" --no-run
echo "tests built in $((SECONDS - start))s"
wait_for_python_envs

# --- dashboard browser test (issue 17) ------------------------------------------------------
section "browser test dependencies (playwright-core in tests/dashboard, Debian's chromium)"
# tests/status.rs `dashboard_in_a_browser` drives `wharf dashboard --serve` with playwright-core
# and Debian's chromium (no browser download). WHARF_SKIP_BROWSER_TESTS=1 skips it loudly (CI must
# not set it).
if [ "${WHARF_SKIP_BROWSER_TESTS:-}" = "1" ]; then
  echo "SKIPPED: WHARF_SKIP_BROWSER_TESTS=1 (the dashboard will NOT be tested in a browser)"
else
  for tool in node npm chromium; do
    command -v "$tool" >/dev/null \
      || { echo "$tool not found: apt-get install chromium nodejs npm (or WHARF_SKIP_BROWSER_TESTS=1 to skip)" >&2; exit 1; }
  done
  (cd tests/dashboard && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) \
    || { echo "npm ci in tests/dashboard failed (is the npm registry reachable?)" >&2; exit 1; }
fi
# --- end dashboard browser test ----------------------------------------------------------------

section "promtool (the monitoring charm's Prometheus configuration and rules, tests/render.rs)"
# WHARF_SKIP_PROMTOOL=1 skips those checks loudly (CI must not set it).
if [ "${WHARF_SKIP_PROMTOOL:-}" = "1" ]; then
  echo "SKIPPED: WHARF_SKIP_PROMTOOL=1 (the Prometheus configuration and rules will NOT be checked)"
else
  command -v promtool >/dev/null \
    || { echo "promtool not found: apt-get install prometheus (or WHARF_SKIP_PROMTOOL=1 to skip)" >&2; exit 1; }
  promtool --version 2>&1 | head -1
fi

section "tests (cargo test)"
# tests/images.rs runs containerd as root; WHARF_SKIP_CONTAINERD=1 skips that one test loudly
# (CI must not set it).
start=$SECONDS
cargo test --workspace --locked --target "$HOST_TARGET"
echo "tests ran in $((SECONDS - start))s"

section "manifests (kubernetes-validate --strict, every bundle, Kubernetes 1.29-1.33)"
# The wharf binary that `cargo test --workspace` just built: `cargo run -p wharf` would rebuild
# every dependency with wharf's features alone, doubling the time and the disk.
WHARF_BIN="$TARGET_DIR/$HOST_TARGET/debug/wharf" scripts/validate-manifests.sh

section "gateway routing (nginx with the rendered configuration, fake upstreams)"
if [ "${WHARF_SKIP_GATEWAY_TEST:-}" = "1" ]; then
  echo "SKIPPED: WHARF_SKIP_GATEWAY_TEST=1 (the gateway's nginx configuration was NOT exercised)"
else
  command -v nginx >/dev/null \
    || { echo "nginx not found: apt-get install nginx-light (or WHARF_SKIP_GATEWAY_TEST=1 to skip)" >&2; exit 1; }
  target/validate-venv/bin/python charms/gateway/tests/routing_test.py target/validate-manifests/lite
  # full: the /notebook/ route too (the owner reaches their notebook, another user gets 403).
  target/validate-venv/bin/python charms/gateway/tests/routing_test.py target/validate-manifests/full --expect-notebooks --expect-pipelines
fi

# What was skipped, said where the run ends (a skipped test passes silently in cargo's summary).
skipped=()
for var in WHARF_SKIP_S3_TESTS WHARF_SKIP_ROOT_TESTS WHARF_SKIP_CONTAINERD WHARF_SKIP_GATEWAY_TEST WHARF_SKIP_CONFORMANCE WHARF_SKIP_PROMTOOL; do
  [ "${!var:-}" = "1" ] && skipped+=("$var")
done
[ "${WHARF_SKIP_BROWSER_TESTS:-}" = "1" ] && skipped+=(WHARF_SKIP_BROWSER_TESTS)
if [ "${#skipped[@]}" -gt 0 ]; then
  section "all tests passed, BUT SOME WERE SKIPPED: ${skipped[*]} (CI must set none of them)"
else
  section "all tests passed (none skipped)"
fi
