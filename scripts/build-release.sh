#!/usr/bin/env bash
# Static release binaries for amd64 and arm64 (musl), each checked static, then wharf's images:
#
#   scripts/build-release.sh            # dist/{amd64,arm64}/{wharf,wharf-trainer,wharf-server,wharf-workspaces},
#                                       # dist/wharf-images-<version>.tar
#   PROFILE=dev scripts/build-release.sh   # the same with the dev profile (faster, larger)
#
# Needs: rustup targets x86_64-unknown-linux-musl and aarch64-unknown-linux-musl; gcc (the C
# parts of ring for x86_64) and gcc-aarch64-linux-gnu (for aarch64; the link is rust-lld's, with
# Rust's own musl); dataset-fashion-mnist for the trainer's image. .ci/run installs them all.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PROFILE="${PROFILE:-release}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"

musl_env() { # arch → the variables cargo and cc-rs need for that target
  case "$1" in
    amd64) echo "CC_x86_64_unknown_linux_musl=gcc" ;;
    arm64) echo "CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld" ;;
  esac
}
target_of() { case "$1" in amd64) echo x86_64-unknown-linux-musl ;; arm64) echo aarch64-unknown-linux-musl ;; esac; }

rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl >/dev/null
command -v aarch64-linux-gnu-gcc >/dev/null || { echo "aarch64-linux-gnu-gcc not found: apt-get install gcc-aarch64-linux-gnu" >&2; exit 1; }

for arch in amd64 arm64; do
  target="$(target_of "$arch")"
  echo "== $arch ($target, $PROFILE)"
  start=$SECONDS
  env $(musl_env "$arch") cargo build --locked --profile "$PROFILE" --target "$target" \
    -p wharf -p wharf-trainer -p wharf-server -p wharf-workspaces \
    --bin wharf --bin wharf-trainer --bin wharf-server --bin wharf-workspaces
  dir="$CARGO_TARGET_DIR/$target/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")"
  mkdir -p "dist/$arch"
  for bin in wharf wharf-trainer wharf-server wharf-workspaces; do
    cp "$dir/$bin" "dist/$arch/$bin"
    if readelf -d "dist/$arch/$bin" 2>/dev/null | grep -q NEEDED; then
      echo "dist/$arch/$bin is dynamically linked (readelf -d lists NEEDED); it cannot run in wharf's images" >&2
      exit 1
    fi
  done
  echo "   built in $((SECONDS - start))s: $(du -h dist/$arch/* | tr '\n' ' ')"
done

host="$(uname -m)"; case "$host" in x86_64) host=amd64 ;; aarch64) host=arm64 ;; esac
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}" \
  "dist/$host/wharf" images build --arch amd64,arm64 -o "dist/wharf-images-$VERSION.tar"
echo "dist/: $(ls dist)"
