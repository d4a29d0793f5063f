#!/usr/bin/env bash
# The benchmark suite (guest/src/bench_suite.rs, `make bench`): every
# workload on rdaxfs and on ext4 -o dax on the same pmem in one boot,
# alternating per repetition; collects the guest's BENCH-CSV lines into
# build/bench/bench.csv, prints the table (median [min-max], ratio of
# medians) and draws PNG plots into build/bench/ with Debian's matplotlib.
# Usage: bench.sh [--quick] [--reps N] [--warmup N] [--ms N] [--mt-files 0,10000,100000]
#                 [--smp N] [--pmem memmap|nvdimm] [--out DIR] [--docs DIR]
#   --quick   the smoke-test size (1 warm-up + 3 repetitions, small counts)
#   --docs    also copy the plots and the table there (README's docs/bench)
#   --smp N   guest vCPUs (default: the host's CPUs, at most 4: more vCPUs
#             than host CPUs under TCG measure the host's scheduling of
#             vCPUs, which preempts lock holders, more than the filesystems)
#   --only A,B  only the figures whose name contains A or B (e.g. DWOL,PMD;
#             "mount" and "aged" select those phases); not with --docs
# Needs: make initramfs.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
mode=full reps= warmup= ms= mtfiles= smp=$(( $(nproc) < 4 ? $(nproc) : 4 )) pmem=memmap out=$top/build/bench docs= only=
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) mode=quick ;;
    --reps) reps=$2; shift ;;
    --warmup) warmup=$2; shift ;;
    --ms) ms=$2; shift ;;
    --mt-files) mtfiles=$2; shift ;;
    --smp) smp=$2; shift ;;
    --pmem) pmem=$2; shift ;;
    --out) out=$2; shift ;;
    --docs) docs=$2; shift ;;
    --only) only=$2; shift ;;
    *) echo "bench.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done
kdir=${KDIR:-$(cat "$top/build/kdir")}
initrd=$top/build/initramfs.cpio.gz
[ -e "$initrd" ] || { echo "bench.sh: $initrd missing; run make initramfs" >&2; exit 2; }
# The plots need python3-matplotlib (Debian's); setup.sh installs it.
/usr/bin/python3 -c 'import matplotlib' 2> /dev/null || "$top/scripts/setup.sh" --bench
mkdir -p "$out"
log=$out/bench.log
env="RDAXFS_BENCH_MODE=$mode"
[ -z "$reps" ] || env="$env RDAXFS_BENCH_REPS=$reps"
[ -z "$warmup" ] || env="$env RDAXFS_BENCH_WARMUP=$warmup"
[ -z "$ms" ] || env="$env RDAXFS_BENCH_MS=$ms"
[ -z "$mtfiles" ] || env="$env RDAXFS_BENCH_MT_FILES=$mtfiles"
if [ -n "$only" ]; then
  [ -z "$docs" ] || { echo "bench.sh: --only makes a partial table; not copied to $docs (drop --docs)" >&2; exit 2; }
  env="$env RDAXFS_BENCH_ONLY=$only"
fi
img=()
[ "$pmem" != nvdimm ] || { rm -f "$out/nvdimm.img"; img=(--image "$out/nvdimm.img"); }
start=$(date +%s)
echo "bench: $mode run, smp $smp, $pmem pmem, rdaxfs $(git -C "$top" describe --always --dirty), log $log"
RDAXFS_GUEST_ENV="$env" "$top/scripts/guest.sh" --kernel "$kdir/arch/x86/boot/bzImage" \
  --initrd "$initrd" --pmem "$pmem" "${img[@]}" --smp "$smp" --tests bench-suite \
  --timeout 3600 --log "$log" > /dev/null
rm -f "$out/nvdimm.img"
secs=$(($(date +%s) - start))
grep -a '^BENCH-META:' "$log" | tr -d '\r'
{ echo "workload,threads,fs,rep,value,unit,better"
  grep -a '^BENCH-CSV: ' "$log" | tr -d '\r' | sed 's/^BENCH-CSV: //'; } > "$out/bench.csv"
grep -a -E '^(FAIL|RDAXFS-TEST:|RDAXFS-GUEST:)' "$log" | tr -d '\r'
echo "bench: $(($(wc -l < "$out/bench.csv") - 1)) figures in $out/bench.csv; whole run ${secs}s"
/usr/bin/python3 "$top/scripts/bench-plot.py" "$out/bench.csv" "$out" | tee "$out/bench-table.txt"
/usr/bin/python3 "$top/scripts/bench-plot.py" "$out/bench.csv" "$out" --markdown > "$out/bench-table.md" 2> /dev/null
if [ -n "$docs" ]; then
  mkdir -p "$docs"
  cp "$out"/bench-*.png "$out/bench-table.md" "$out/bench.csv" "$docs"/ 2> /dev/null || true
  echo "bench: plots and table copied to $docs"
fi
"$top/scripts/logscan.sh" "$log"
grep -a -q 'RDAXFS-TEST: bench-suite PASS' "$log"
