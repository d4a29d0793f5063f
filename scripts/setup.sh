#!/usr/bin/env bash
# Install what building rdaxfs and its guest needs, idempotently.
# Debian packages, the rust-src component and bindgen-cli (>= 0.65.1).
# `setup.sh --fstests` also installs what building and running fstests needs
# (make fstests / make stress); `setup.sh --bench` also installs Debian's
# matplotlib for the plots of make bench (scripts/bench-plot.py).
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

PKGS=(flex bison bc libelf-dev libssl-dev cpio busybox-static clang lld
      libclang-dev qemu-system-x86 kmod xz-utils make gcc e2fsprogs)

if [ "${1:-}" = --fstests ]; then
  # fstests' build dependencies, and the userland its guest initramfs copies.
  PKGS+=(autoconf automake libtool libtool-bin pkg-config uuid-dev xfslibs-dev libattr1-dev
         libacl1-dev libaio-dev libgdbm-dev liburing-dev xfsprogs attr acl gawk bc perl-base
         psmisc procps bsdextrautils hostname diffutils findutils kmod util-linux mount file libc-bin tar gzip xxd cpio)
fi
if [ "${1:-}" = --bench ]; then
  PKGS+=(python3-matplotlib)
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! dpkg-query -W -f='${Status}' linux-source-6.12 2>/dev/null | grep -q "install ok installed"; then
  missing+=(linux-source-6.12)
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq || die "apt-get update failed (is a Debian mirror reachable?)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || die "apt-get install ${missing[*]} failed"
fi

command -v rustup >/dev/null || die "rustup not found: install a Rust toolchain with rustup first"
if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
  say "adding rustup component rust-src"
  rustup component add rust-src || die "rustup component add rust-src failed"
fi

need_bindgen=1
if command -v bindgen >/dev/null; then
  v=$(bindgen --version | awk '{print $2}')
  # kernel needs >= 0.65.1
  if printf '0.65.1\n%s\n' "$v" | sort -V -C; then need_bindgen=0; fi
fi
if [ $need_bindgen -eq 1 ]; then
  say "installing bindgen-cli with cargo (about a minute)"
  cargo install --locked bindgen-cli || die "cargo install bindgen-cli failed"
fi
if ! rustup target list --installed | grep -q x86_64-unknown-linux-musl; then
  say "adding rustup target x86_64-unknown-linux-musl (static guest programs)"
  rustup target add x86_64-unknown-linux-musl || die "rustup target add x86_64-unknown-linux-musl failed"
fi
say "all build dependencies present"
