#!/usr/bin/env bash
# Install what building wharf needs (Debian/Ubuntu packages, Rust via rustup), build it in
# release mode and put the binary in /usr/local/bin, with wharf's own images for this machine's
# architecture beside it (/usr/local/bin/wharf-images.tar, where `wharf up` looks for them).
# Safe to re-run.
#
#   scripts/install.sh            # as root or with sudo available
#   PREFIX=$HOME/.local scripts/install.sh     # no sudo needed when PREFIX is yours
#   CARGO_TARGET_DIR=DIR scripts/install.sh    # builds there (e.g. beside build-release.sh's)
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
prefix="${PREFIX:-/usr/local}"
target_dir="${CARGO_TARGET_DIR:-$here/target}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

need_apt=()
for pkg in build-essential pkg-config curl ca-certificates git dataset-fashion-mnist; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "installing ${need_apt[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need_apt[@]}"
fi

# Rust: use the one on PATH if it is new enough (the workspace's rust-version), else rustup.
want="$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' "$here/Cargo.toml" | head -n1)"
have="$(rustc --version 2>/dev/null | awk '{print $2}' || true)"
if [ -z "$have" ] || [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n1)" != "$want" ]; then
  echo "installing Rust (need >= $want, have ${have:-none})"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi

cd "$here"
cargo build --release --locked -p wharf 2>/dev/null || cargo build --release -p wharf
# Installing into a directory of one's own needs no sudo (PREFIX=$HOME/.local).
mkdir -p "$prefix/bin" 2>/dev/null || $sudo mkdir -p "$prefix/bin"
if [ -w "$prefix/bin" ]; then sudo=""; fi
$sudo install -m 0755 "$target_dir/release/wharf" "$prefix/bin/wharf"
echo "installed $("$prefix/bin/wharf" --version) to $prefix/bin/wharf"

# wharf's images (trainer, server, wharf itself): static (musl) binaries for this machine, packed by wharf.
case "$(uname -m)" in
  x86_64) arch=amd64 target=x86_64-unknown-linux-musl cc="CC_x86_64_unknown_linux_musl=gcc" ;;
  aarch64) arch=arm64 target=aarch64-unknown-linux-musl cc="CC_aarch64_unknown_linux_musl=gcc" ;;
  *) echo "no wharf images for $(uname -m): only amd64 and arm64 are built" >&2; exit 1 ;;
esac
rustup target add "$target" >/dev/null
env "$cc" cargo build --release --locked --target "$target" -p wharf-trainer -p wharf-server \
  -p wharf --bin wharf-trainer --bin wharf-server --bin wharf
images="$(mktemp)"
"$target_dir/release/wharf" images build --arch "$arch" --binaries "$arch=$target_dir/$target/release" -o "$images"
$sudo install -m 0644 "$images" "$prefix/bin/wharf-images.tar"
rm -f "$images"
echo "installed wharf's images ($arch) to $prefix/bin/wharf-images.tar: \`sudo wharf up\` imports them"
