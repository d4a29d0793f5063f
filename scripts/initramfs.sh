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
# mke2fs with its shared libraries: ext4 -o dax on the same pmem is the
# peer the benchmarks compare rdaxfs against.
if command -v mke2fs > /dev/null; then
  mke2fs=$(command -v mke2fs)
  cp "$mke2fs" "$root/sbin/mke2fs"
  ln -s mke2fs "$root/sbin/mkfs.ext4"
  ldd "$mke2fs" | awk '/=> \// {print $3} /^\t\/lib64/ {print $1}' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  cp /etc/mke2fs.conf "$root/etc/mke2fs.conf"
fi
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out.tmp"
mv "$out.tmp" "$out"
