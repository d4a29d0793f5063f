#!/usr/bin/env bash
# Stress rdaxfs in the fstests guest: fsstress (-p 4), fsx with mmap (fstests'
# ltp/fsx) and `guest-test stress` (when this build has it), all at once on one
# rdaxfs for DURATION; progress every 10 s; after unmount fsck.rdaxfs -n; the
# kernel log scanned (scripts/logscan.sh). Ends with a one-paragraph summary;
# exits non-zero on any error, warning or fsck finding.
# Usage: stress.sh DURATION [LOG]     DURATION: 600, 90s, 10m, 1h
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dur=${1:-10m}
log=${2:-$top/build/stress.log}
case "$dur" in
  *[0-9]s) secs=${dur%s} ;;
  *[0-9]m) secs=$(( ${dur%m} * 60 )) ;;
  *[0-9]h) secs=$(( ${dur%h} * 3600 )) ;;
  *[0-9]) secs=$dur ;;
  *) echo "stress: bad DURATION '$dur' (600, 90s, 10m, 1h)" >&2; exit 2 ;;
esac
[[ "$secs" =~ ^[0-9]+$ ]] && [ "$secs" -ge 10 ] || { echo "stress: DURATION must be at least 10 s" >&2; exit 2; }
# The guest image carries this build's module and tools (fstests itself is
# built once and cached).
"$top/scripts/fstests.sh" initramfs "$top/build/fstests-initramfs.cpio.gz" || exit 1
"$top/scripts/fstests.sh" run --mode stress --seconds "$secs" --log "$log" --smp 4
tr -d '\r' < "$log" > "$log.txt"
sum=$(grep -a '^STRESS-SUMMARY: ' "$log.txt" | tail -1 | sed 's/^STRESS-SUMMARY: //')
warn=0
scan=$("$top/scripts/logscan.sh" "$log.txt") || warn=$(printf '%s\n' "$scan" | grep -c .)
errs=$(grep -ac '^STRESS-ERROR' "$log.txt" || true)
echo
if [ -z "$sum" ]; then
  echo "stress: no summary from the guest (crash or timeout); log $log"
  [ -z "$scan" ] || printf '%s\n' "$scan" | head -20
  exit 1
fi
get() { printf '%s\n' "$sum" | grep -o "$1=[^ ]*" | head -1 | cut -d= -f2 | tr -d '"'; }
gt=$(printf '%s\n' "$sum" | sed -n 's/.*guest_test="\([^"]*\)".*/\1/p')
gtl=$(printf '%s\n' "$sum" | sed -n 's/.*guest_test_last="\([^"]*\)".*/\1/p')
fsck=$(get fsck_exit)
size=$(grep -a '^STRESS: start ' "$log.txt" | head -1 | grep -o '([0-9]* MiB)' | tr -d '()')
cpus=$(grep -a '^RDAXFS-GUEST: up ' "$log.txt" | head -1 | grep -o 'nproc=[0-9]*' | cut -d= -f2)
echo "stress summary: ${secs} s on rdaxfs (/dev/pmem0, ${size:-? MiB}, ${cpus:-?} vCPUs under TCG):" \
  "fsstress ran $(get fsstress_rounds) rounds of 4 processes x 2000 ops ($(get fsstress_ops) ops, $(get fsstress_errors) failed rounds)," \
  "fsx with mmap ran $(get fsx_rounds) rounds ($(get fsx_ops) ops, $(get fsx_errors) failed rounds)," \
  "guest-test stress: ${gt:-none}${gtl:+ ($gtl)};" \
  "unmount $(get umount), fsck.rdaxfs -n exit $fsck; $errs error line(s) in the guest, $warn kernel log finding(s) (logscan)."
[ -z "$scan" ] || printf '%s\n' "$scan" | head -20
if [ "$errs" -eq 0 ] && [ "$warn" -eq 0 ] && [ "$fsck" = 0 ] && [ "$(get umount)" = ok ] &&
   { [ -z "$gt" ] || [ "$gt" = none ] || [ "$gt" = "exit 0" ]; }; then
  echo "stress: PASS (log $log)"
else
  echo "stress: FAIL (log $log)"; exit 1
fi
