#!/usr/bin/env bash
# Boot the guest kernel under QEMU (TCG) with pmem and run tests in it.
# Usage: guest.sh --kernel BZIMAGE --initrd CPIO --pmem memmap|memmap2|nvdimm
#                 [--tests a,b,c] [--smp N] [--timeout SECONDS] [--log FILE]
#                 [--image FILE] [--interactive] [--env NAME=VALUE]...
#                 [--pidfile FILE] [--append KERNEL-ARGS]
# --pmem memmap2 gives two regions, /dev/pmem0 (1.5 GiB) and /dev/pmem1
# (1 GiB), the fstests TEST_DEV and SCRATCH_DEV (some tests want > 1 GiB free).
# With --pmem nvdimm the device is backed by --image (created if missing),
# which the host can inspect after the guest stops. --env passes a variable
# to the guest's init (and so to the tests) on the kernel command line.
# --pidfile makes QEMU write its pid there, so a caller can cut the power
# (SIGKILL) at a moment it picks.
set -euo pipefail
kernel= initrd= pmem=memmap tests=demo smp=2 timeout=600 log=/dev/null image= interactive=0 env= pidfile= extra=
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel) kernel=$2; shift ;;
    --initrd) initrd=$2; shift ;;
    --pmem) pmem=$2; shift ;;
    --tests) tests=$2; shift ;;
    --smp) smp=$2; shift ;;
    --timeout) timeout=$2; shift ;;
    --log) log=$2; shift ;;
    --image) image=$2; shift ;;
    --interactive) interactive=1 ;;
    --env) env="$env $2"; shift ;;
    --pidfile) pidfile=$2; shift ;;
    --append) extra=$2; shift ;;
    *) echo "guest.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
append="console=ttyS0 panic=-1 oops=panic softlockup_panic=0 rdaxfs.pmem=$pmem rdaxfs.tests=$tests"
append="$append$env"
# Under TCG on a loaded host the IO-APIC timer check at boot can miss its
# ticks and panic ("IO-APIC + timer doesn't work"): skip it.
append="$append no_timer_check"
# /dev/nullb0 completes I/O 200 ms late: O_DIRECT into it holds pages pinned.
append="$append null_blk.irqmode=2 null_blk.completion_nsec=200000000 null_blk.nr_devices=1"
# Extra KEY=VALUE words (no dot in KEY) reach the guest's init, and so the
# tests, as environment variables, e.g. RDAXFS_GUEST_ENV="RDAXFS_EXPLORE_N=50".
[ -z "${RDAXFS_GUEST_ENV:-}" ] || append="$append $RDAXFS_GUEST_ENV"
args=(-cpu max -smp "$smp" -nographic -no-reboot -kernel "$kernel" -initrd "$initrd")
case "$pmem" in
  memmap)
    # 512 MiB of legacy e820 pmem at 1 GiB (2 MiB aligned, so PMD faults work).
    args+=(-m 2G)
    append="$append memmap=512M!1G"
    ;;
  memmap2)
    # pmem0 at 1-2.5 GiB, pmem1 at 4-5 GiB (QEMU's pc machine ends low RAM
    # at 3 GiB when it has more than 3.5 GiB); -m 6G leaves 3.5 GiB of RAM.
    args+=(-m 6G)
    append="$append memmap=1536M!1G memmap=1G!4G"
    ;;
  nvdimm)
    [ -n "$image" ] || { echo "guest.sh: --pmem nvdimm needs --image FILE" >&2; exit 2; }
    [ -f "$image" ] || truncate -s 512M "$image"
    args+=(-machine pc,nvdimm=on -m 2G,slots=2,maxmem=4G
           -object "memory-backend-file,id=nvmem,share=on,mem-path=$image,size=512M,align=2M"
           -device nvdimm,id=nv0,memdev=nvmem)
    ;;
  *) echo "guest.sh: --pmem must be memmap, memmap2 or nvdimm" >&2; exit 2 ;;
esac
[ -z "$extra" ] || append="$append $extra"
args+=(-append "$append")
[ -z "$pidfile" ] || args+=(-pidfile "$pidfile")
if [ $interactive -eq 1 ]; then
  exec qemu-system-x86_64 "${args[@]}"
fi
set +e
timeout --foreground -k 10 "$timeout" qemu-system-x86_64 "${args[@]}" < /dev/null 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
if [ -n "$pidfile" ] && [ "$rc" -eq 137 ] && [ -e "$pidfile.killed" ]; then
  echo "RDAXFS-GUEST: power cut (QEMU killed by the caller)" | tee -a "$log"
elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  echo "RDAXFS-GUEST: timeout after ${timeout}s" | tee -a "$log"
fi
exit 0
