#!/usr/bin/env bash
# The project's one test command: formatting, lints, every Rust test, then every rendered manifest
# validated against the Kubernetes schemas and the gateway's nginx routing exercised.
#
#   scripts/test.sh
#
# Needs: the Rust toolchain (with rustfmt and clippy), python3 with venv, and nginx (for the
# gateway routing test; `apt-get install nginx-light`). Set WHARF_SKIP_GATEWAY_TEST=1 to skip that
# one test on a machine without nginx (it says so loudly; CI must not set it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

section() { printf '\n======== %s ========\n' "$*"; }

section "format (cargo fmt --check)"
cargo fmt --all -- --check

section "lints (cargo clippy, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

section "tests (cargo test)"
cargo test --workspace --locked

section "manifests (kubernetes-validate --strict, every bundle, Kubernetes 1.29-1.33)"
scripts/validate-manifests.sh

section "gateway routing (nginx with the rendered configuration, fake upstreams)"
if [ "${WHARF_SKIP_GATEWAY_TEST:-}" = "1" ]; then
  echo "SKIPPED: WHARF_SKIP_GATEWAY_TEST=1 (the gateway's nginx configuration was NOT exercised)"
else
  command -v nginx >/dev/null \
    || { echo "nginx not found: apt-get install nginx-light (or WHARF_SKIP_GATEWAY_TEST=1 to skip)" >&2; exit 1; }
  target/validate-venv/bin/python charms/gateway/tests/routing_test.py target/validate-manifests/lite
fi

section "all tests passed"
