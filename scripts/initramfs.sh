#!/usr/bin/env bash
# Build the guest initramfs: busybox, the module, the guest programs.
# Usage: initramfs.sh MODULE.ko BINDIR OUT.cpio.gz
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
ko=$1 bindir=$2 out=$3
root=$(mktemp -d)
chmod 755 "$root"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,mnt,lib,etc,root}
cp /bin/busybox "$root/bin/busybox"
for app in $("$root/bin/busybox" --list); do
  [ -e "$root/bin/$app" ] || ln -s busybox "$root/bin/$app"
done
cp "$top/qemu/init" "$root/init"
cp "$top/qemu/guest-setup-pmem" "$root/bin/"
cp "$ko" "$root/lib/rdaxfs.ko"
cp "$bindir/guest-test" "$root/bin/"
# Cargo names the tools mkfs-rdaxfs etc.; users and fsck(8) expect mkfs.rdaxfs.
for t in mkfs fsck dump; do
  cp "$bindir/$t-rdaxfs" "$root/bin/$t.rdaxfs"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out.tmp"
mv "$out.tmp" "$out"
