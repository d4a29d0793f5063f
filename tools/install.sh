#!/bin/sh
# Install the rdaxfs tools under their fsck(8)-style names.
# usage: tools/install.sh DESTDIR [PROFILE_DIR]   (default PROFILE_DIR: target/release)
set -eu
dest=${1:?usage: install.sh DESTDIR [PROFILE_DIR]}
src=${2:-"$(dirname "$0")/../target/release"}
mkdir -p "$dest"
for t in mkfs fsck dump; do
  install -m 0755 "$src/$t-rdaxfs" "$dest/$t.rdaxfs"
done
