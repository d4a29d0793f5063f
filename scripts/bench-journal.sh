#!/usr/bin/env bash
# Metadata and allocating-fault benchmarks of rdaxfs against rdaxfs before
# the journal and ext4 -o dax, in one boot (guest/src/bench.rs: bench-meta,
# bench-faults). The older module and its mkfs are built from git revision
# OLD (default: the parent of the commit that added the journal) in
# build/old-<rev>, and appended to the initramfs as /lib/rdaxfs-old.ko and
# /bin/mkfs-old.rdaxfs; the guest alternates old, new and ext4 in each
# round and prints medians with min..max.
# Usage: bench-journal.sh [--old REV] [--rounds N] [--tests a,b] [--smp N] [--log FILE]
# Needs: make initramfs (the current module and guest programs).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export PATH=$HOME/.cargo/bin:$PATH
old=edf4cf6^ rounds=${ROUNDS:-5} tests=bench-meta,bench-faults smp=4 log=$top/build/bench-journal.log
while [ $# -gt 0 ]; do
  case "$1" in
    --old) old=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --tests) tests=$2; shift ;;
    --smp) smp=$2; shift ;;
    --log) log=$2; shift ;;
    *) echo "bench-journal.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done
kdir=${KDIR:-$(cat "$top/build/kdir")}
initrd=$top/build/initramfs.cpio.gz
[ -e "$initrd" ] || { echo "bench-journal.sh: $initrd missing; run make initramfs" >&2; exit 2; }
rev=$(git -C "$top" rev-parse --short "$old")
src=$top/build/old-$rev
if [ ! -e "$src/rdaxfs.ko" ] || [ ! -e "$src/target/x86_64-unknown-linux-musl/release/mkfs-rdaxfs" ]; then
  echo "bench-journal: building rdaxfs.ko and mkfs.rdaxfs at $rev in $src" >&2
  rm -rf "$src"; mkdir -p "$src"
  git -C "$top" archive "$rev" | tar -x -C "$src"
  nice make -C "$src" module KDIR="$kdir" > "$src/build.log" 2>&1
  (cd "$src" && nice cargo build --release --target x86_64-unknown-linux-musl -p rdaxfs-tools >> build.log 2>&1)
fi
# The initramfs plus a second archive with the old module and mkfs.
rd=$top/build/initramfs-bench.cpio.gz
cp "$initrd" "$rd"
size=$(stat -c %s "$rd")
head -c $(((4 - size % 4) % 4)) /dev/zero >> "$rd"
d=$(mktemp -d)
mkdir -p "$d/lib" "$d/bin"
cp "$src/rdaxfs.ko" "$d/lib/rdaxfs-old.ko"
cp "$src/target/x86_64-unknown-linux-musl/release/mkfs-rdaxfs" "$d/bin/mkfs-old.rdaxfs"
(cd "$d" && printf '%s\n' lib lib/rdaxfs-old.ko bin bin/mkfs-old.rdaxfs | cpio -o -H newc --quiet | gzip -1) >> "$rd"
rm -rf "$d"
echo "bench-journal: old = $rev ($(git -C "$top" log -1 --format=%s "$rev")), new = $(git -C "$top" describe --always --dirty), $rounds rounds, smp $smp" | tee "$log.head"
RDAXFS_GUEST_ENV="RDAXFS_BENCH_ROUNDS=$rounds" \
  "$top/scripts/guest.sh" --kernel "$kdir/arch/x86/boot/bzImage" --initrd "$rd" --pmem memmap \
  --smp "$smp" --tests "$tests" --timeout 1800 --log "$log" > /dev/null
cat "$log.head"
grep -a -E '^bench-(meta|faults):|RDAXFS-TEST:|^FAIL' "$log" | tr -d '\r' | grep -v ': round '
"$top/scripts/logscan.sh" "$log"
