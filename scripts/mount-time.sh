#!/usr/bin/env bash
# Mount time after an unclean shutdown against the number of files.
# For each file count: a guest on a file-backed NVDIMM makes a filesystem
# holding that many files (mkfs.rdaxfs -d from a tree built in tmpfs),
# mounts it, leaves orphans (files unlinked while open) and runs a metadata
# workload (guest/src/mount_time.rs); the host kills QEMU (a power cut) a
# random moment later; the next boot mounts without fsck and prints the
# kernel's mount line: log replay bytes, orphans reclaimed, mount time.
# With --cuts N > 1 that boot runs the workload again on the same
# filesystem and is cut too. The host runs fsck.rdaxfs -n on the image
# after the last recovery (clean unmount).
# --commit-delay US (default 2000) makes every commit of the workload wait
# that long between its durable commit and its in-place stores (module
# parameter test_commit_delay_us), so a cut usually leaves a committed
# transaction for the recovery mount to replay; 0 cuts an unslowed workload.
# Usage: mount-time.sh [--files "0 10000 100000"] [--cuts N] [--out DIR]
#                      [--min S] [--max S] [--commit-delay US]
# Prints a table: files, replay bytes, orphans, kernel mount ms, mount(2) ms.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export PATH=$HOME/.cargo/bin:$PATH
files="0 10000 100000" cuts=2 out=$top/build/mount-time min=1 max=3 delay=2000
while [ $# -gt 0 ]; do
  case "$1" in
    --files) files=$2; shift ;;
    --cuts) cuts=$2; shift ;;
    --out) out=$2; shift ;;
    --min) min=$2; shift ;;
    --max) max=$2; shift ;;
    --commit-delay) delay=$2; shift ;;
    *) echo "mount-time.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done
kdir=${KDIR:-$(cat "$top/build/kdir" 2>/dev/null)}
kernel=$kdir/arch/x86/boot/bzImage
initrd=$top/build/initramfs.cpio.gz
fsck=$top/target/release/fsck-rdaxfs
hv=$top/target/release/host-verify
for f in "$kernel" "$initrd" "$fsck" "$hv"; do
  [ -e "$f" ] || { echo "mount-time.sh: $f missing; run: make initramfs tools && cargo build --release -p rdaxfs-guest" >&2; exit 2; }
done
mkdir -p "$out"
table=$out/table.txt
kargs="no_timer_check watchdog_thresh=30"
fail=0
rows=()

# boot LOG TESTS ENV CUT: one guest boot; with CUT=1 QEMU is killed a random
# min..max seconds after the workload printed MT-START.
boot() {
  local log=$1 tests=$2 env=$3 cut=$4 pid=$out/qemu.pid gpid
  rm -f "$pid" "$pid.killed" "$log"  # no stale MT-START line
  RDAXFS_GUEST_ENV="$env" "$top/scripts/guest.sh" --kernel "$kernel" --initrd "$initrd" \
    --pmem nvdimm --image "$img" --smp 2 --tests "$tests" --timeout 1200 --log "$log" \
    --pidfile "$pid" --append "$kargs" > /dev/null 2>&1 &
  gpid=$!
  if [ "$cut" = 1 ]; then
    local deadline=$((SECONDS + 1200))
    while [ $SECONDS -lt $deadline ]; do
      grep -aq '^MT-START' "$log" 2> /dev/null && break
      kill -0 $gpid 2> /dev/null || { echo "mount-time: the guest stopped before the workload started" >&2; break; }
      sleep 0.2
    done
    if grep -aq '^MT-START' "$log"; then
      sleep "$(awk -v a="$min" -v b="$max" -v r="$RANDOM" 'BEGIN { printf "%.3f", a + (b - a) * r / 32767 }')"
      touch "$pid.killed"
      [ -s "$pid" ] && kill -9 "$(cat "$pid")" 2> /dev/null
    else
      echo "mount-time: the workload did not start (log: $log, $(date -u +%T))" >&2
      [ -s "$pid" ] && kill -9 "$(cat "$pid")" 2> /dev/null
      fail=1
    fi
  fi
  wait $gpid
}

printf '%-8s %-4s %12s %8s %10s %10s %s\n' files cut "replay B" orphans "kernel ms" "mount ms" "populate" | tee "$table"
for n in $files; do
  img=$out/nvdimm-$n.img
  rm -f "$img"
  env="RDAXFS_MT_FILES=$n RDAXFS_MT_COMMIT_DELAY_US=$delay"
  boot "$out/work-$n-0.log" mount-time-work "$env" 1
  pop=$(grep -a '^MT-POPULATED' "$out/work-$n-0.log" | tr -d '\r' | sed 's/.* in //')
  for ((c = 0; c < cuts; c++)); do
    log=$out/check-$n-$c.log
    if [ $c -lt $((cuts - 1)) ]; then
      boot "$log" mount-time-check,mount-time-work "$env RDAXFS_MT_REUSE=1" 1
    else
      boot "$log" mount-time-check "$env" 0
    fi
    r=$(grep -a '^MT-RESULT' "$log" | tr -d '\r' | head -1)
    if [ -z "$r" ]; then
      echo "mount-time: no MT-RESULT in $log" >&2
      grep -a -e '^FAIL' -e 'MT-KMSG' "$log" | head -20 >&2
      fail=1
      continue
    fi
    eval "$(sed 's/^MT-RESULT //' <<< "$r")"  # files= replay= orphans= kernel_ms= syscall_ms=
    printf '%-8s %-4s %12s %8s %10s %10s %s\n' "$files" "$c" "$replay" "$orphans" "$kernel_ms" "$syscall_ms" "${pop:--}" | tee -a "$table"
    "$top/scripts/logscan.sh" "$log" > /dev/null || { echo "mount-time: kernel log problems in $log" >&2; fail=1; }
  done
  if "$hv" extract "$img" "$out/fs-$n.img" > /dev/null 2>&1; then
    if "$fsck" -n "$out/fs-$n.img" > "$out/fsck-$n.txt" 2>&1; then
      echo "mount-time: $n files: host fsck -n after the last recovery: clean" | tee -a "$table"
    else
      echo "mount-time: $n files: host fsck -n after the last recovery: NOT clean (see $out/fsck-$n.txt)" | tee -a "$table"
      fail=1
    fi
    rm -f "$out/fs-$n.img"
  fi
  rm -f "$img"
done
[ $fail = 0 ] && echo "mount-time: PASS (table in $table)" || echo "mount-time: FAIL"
[ $fail = 0 ]
