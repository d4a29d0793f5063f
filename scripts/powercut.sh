#!/usr/bin/env bash
# The power-cut loop: a QEMU guest on a file-backed NVDIMM runs a mixed
# multi-process workload on rdaxfs (guest/src/powercut.rs) and the host kills
# QEMU at a random moment; the next boot mounts without fsck first, checks
# every durable file, unmounts and runs fsck.rdaxfs -n; the host runs
# fsck.rdaxfs -n on the filesystem in the backing file after every cut.
#
# Durability contract of the loop: a name and the content of its file are
# durable once fsync(file) and then fsync(parent directory) returned (rename:
# the file and both directories; unlink: the directory, and the file if other
# names remain; mmap stores: msync(MS_SYNC) first). From then until the next
# operation touching that name starts, a power cut must not lose or change
# it, and a name durably removed must not come back. The workers print one
# console line per claim (PCW ... F|G) and announce each operation before it
# starts (PCW ... B, drained to the host), so the host knows which names an
# interrupted operation may have changed; those are not checked.
#
# Usage: powercut.sh [--cuts N] [--min S] [--max S] [--seed N] [--strict]
#                    [--smp N] [--out DIR] [--teeth-rollback S]
#   --cuts N     power cuts (default $CUTS or 10)
#   --min/--max  the cut comes this many seconds (uniform, ms resolution)
#                after the workload started (default 3..20)
#   --seed N     seed of the cut delays (default: the clock; printed)
#   --strict     also fail unless fsck -n is clean after every recovery
#                mount and after the last one (POWERCUT_STRICT=1 does the same).
#                Without it, fsck findings of class "leak" (leaked blocks or
#                inodes, high link counts, pending orphans, stale counts) are
#                reported but allowed; any other finding fails.
#   --teeth-rollback S  the loop's own teeth: copy the backing file S seconds
#                before each cut and put that stale copy back after it, as if
#                the last S seconds of stores never reached pmem. The loop
#                must then FAIL with lost or wrong durable files.
# Needs: make initramfs tools, and `cargo build --release -p rdaxfs-guest`
# (host-verify). Prints one line per cut and a summary line; exits 0 on PASS.
# KDIR= and INITRD= choose the kernel tree and initramfs (default: 6.12's,
# build/kdir and build/initramfs.cpio.gz; `make KVER=7.3 powercut` passes 7.3's).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export PATH=$HOME/.cargo/bin:$PATH
cuts=${CUTS:-10} min=${POWERCUT_MIN:-3} max=${POWERCUT_MAX:-20} strict=${POWERCUT_STRICT:-0}
seed=${POWERCUT_SEED:-$(date +%s)} smp=2 out=$top/build/powercut rollback=0
while [ $# -gt 0 ]; do
  case "$1" in
    --cuts) cuts=$2; shift ;;
    --min) min=$2; shift ;;
    --max) max=$2; shift ;;
    --seed) seed=$2; shift ;;
    --strict) strict=1 ;;
    --smp) smp=$2; shift ;;
    --out) out=$2; shift ;;
    --teeth-rollback) rollback=$2; shift ;;
    *) echo "powercut.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done
kdir=${KDIR:-$(cat "$top/build/kdir" 2>/dev/null)}
kernel=$kdir/arch/x86/boot/bzImage
initrd=${INITRD:-$top/build/initramfs.cpio.gz}
gt=$top/target/x86_64-unknown-linux-musl/release/guest-test  # static: runs on the host too
fsck=$top/target/release/fsck-rdaxfs
hv=$top/target/release/host-verify
for f in "$kernel" "$initrd" "$gt" "$fsck" "$hv"; do
  [ -e "$f" ] || { echo "powercut.sh: $f missing; run: make initramfs tools && cargo build --release -p rdaxfs-guest" >&2; exit 2; }
done
awk -v a="$min" -v b="$max" 'BEGIN { exit !(a >= 0 && b >= a) }' ||
  { echo "powercut.sh: need 0 <= --min <= --max (got $min, $max)" >&2; exit 2; }
rm -rf "$out"
mkdir -p "$out"
img=$out/nvdimm.img pid=$out/qemu.pid report=$out/report.txt
RANDOM=$seed
# Guest kernel arguments for TCG on a shared, loaded host: skip the IO-APIC
# timer check (it can panic a starved guest at boot) and report soft lockups
# after 60 s instead of 20 (a starved vCPU is not a stuck kernel).
kargs=${POWERCUT_KARGS-no_timer_check watchdog_thresh=30}
say() { echo "$*" | tee -a "$report"; }
say "powercut: $cuts cuts, cut ${min}-${max}s after the workload starts, seed $seed, strict=$strict, logs in $out"
if [ "$rollback" != 0 ]; then
  awk -v r="$rollback" -v a="$min" 'BEGIN { exit !(r > 0 && a > r) }' ||
    { echo "powercut.sh: --teeth-rollback S needs 0 < S < --min" >&2; exit 2; }
  say "powercut: TEETH: each cut rolls the image back to a copy taken ${rollback}s before it; this run must FAIL"
fi

# The cut delay in ms, uniform in [min, max] seconds.
delay_ms() {
  local lo hi
  lo=$(awk -v s="$min" 'BEGIN { printf "%d", s * 1000 }')
  hi=$(awk -v s="$max" 'BEGIN { printf "%d", s * 1000 }')
  echo $((lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
}

# initrd_with MANIFEST OUT: the initramfs plus a second cpio archive holding
# /manifest (the kernel unpacks concatenated archives; each starts 4-aligned).
initrd_with() {
  local d size
  cp "$initrd" "$2"
  size=$(stat -c %s "$2")
  head -c $(((4 - size % 4) % 4)) /dev/zero >> "$2"
  d=$(mktemp -d)
  cp "$1" "$d/manifest"
  (cd "$d" && echo manifest | cpio -o -H newc --quiet) >> "$2"
  rm -rf "$d"
}

# field LOG PREFIX N: the Nth word of the first line starting with PREFIX.
field() { grep -a "^$2" "$1" | tr -d '\r' | head -1 | awk -v n="$3" '{print $n}'; }

# boot I TESTS MANIFEST CUT: one guest boot; with CUT=1 the power is cut a
# random delay after the workload's start line. Sets b_started, b_killed,
# b_delay (s), b_when (UTC).
boot() {
  local i=$1 tests=$2 manifest=$3 cut=$4 log=$out/boot-$1.log rd=$initrd
  if [ -n "$manifest" ]; then rd=$out/initrd.cpio.gz; initrd_with "$manifest" "$rd"; fi
  local try
  for try in 1 2 3 4; do
    boot_once "$tests" "$rd" "$cut" "$log"
    # A boot that never reached init (TCG on a loaded host can fail the
    # IO-APIC timer check and panic) ran no rdaxfs code and left the image
    # alone: boot again, and say so.
    grep -aq 'RDAXFS-GUEST: up' "$log" && break
    n_retry=$((n_retry + 1))
    mv "$log" "$log.noinit-$try"
    say "powercut: boot $i did not reach init, booting again ($(grep -a -m1 -e 'Kernel panic' -e 'BUG' "$log.noinit-$try" | tr -d '\r'))"
  done
  if [ -e "$img.stale" ]; then mv "$img.stale" "$img"; fi
}

# boot_once TESTS INITRD CUT LOG
boot_once() {
  local tests=$1 rd=$2 cut=$3 log=$4 gpid t
  rm -f "$pid" "$pid.killed"
  b_started=0 b_killed=0 b_delay=- b_when=-
  scripts/guest.sh --kernel "$kernel" --initrd "$rd" --pmem nvdimm --image "$img" --smp "$smp" \
    --tests "$tests" --timeout 900 --log "$log" --pidfile "$pid" --append "$kargs" > /dev/null 2>&1 &
  gpid=$!
  if [ "$cut" = 1 ]; then
    for ((t = 0; t < 3000; t++)); do  # up to 10 minutes for boot and check
      grep -aq 'PC-START seed=' "$log" 2> /dev/null && { b_started=1; break; }
      kill -0 $gpid 2> /dev/null || break
      sleep 0.2
    done
    if [ $b_started = 1 ]; then
      local ms
      ms=$(delay_ms)
      if [ "$rollback" != 0 ]; then
        sleep "$(awk -v m="$ms" -v r="$rollback" 'BEGIN { printf "%.3f", m / 1000 - r }')"
        cp --sparse=always "$img" "$img.stale"
        sleep "$rollback"
      else
        sleep "$(awk -v m="$ms" 'BEGIN { printf "%.3f", m / 1000 }')"
      fi
      b_delay=$(awk -v m="$ms" 'BEGIN { printf "%.1f", m / 1000 }')
      b_when=$(date -u +%H:%M:%S.%3N)
      if kill -0 $gpid 2> /dev/null && [ -s "$pid" ]; then
        touch "$pid.killed"
        kill -9 "$(cat "$pid")" 2> /dev/null && b_killed=1
      fi
    elif kill -0 $gpid 2> /dev/null && [ -s "$pid" ]; then
      kill -9 "$(cat "$pid")" 2> /dev/null
    fi
  fi
  wait $gpid
}

# Figures of the whole loop.
n_cut=0 n_mount_fail=0 n_checked=0 n_ok=0 n_lost=0 n_wrong=0 n_walk_err=0 n_klog=0
n_fsck_clean=0 n_fsck_leak=0 n_fsck_err=0 n_raw_clean=0 n_raw_leak=0 n_raw_err=0
n_work_fail=0 n_inflight=0 n_retry=0 mount_ms=()
fail=()
# Per-cut facts carried from the boot that was cut to the boot that checks it.
c_delay=- c_when=- c_manifest=- c_raw=-

for ((i = 0; i <= cuts; i++)); do
  log=$out/boot-$i.log
  if [ $i -eq 0 ]; then
    boot $i powercut-mkfs,powercut-work "" 1
  else
    # R 1: repair after checking, so each cut starts from a clean
    # filesystem; the last check boot does not repair, the host's fsck
    # after it sees what recovery left.
    m=$out/manifest-$((i - 1))
    if [ $i -lt "$cuts" ]; then
      { echo "R 1"; cat "$m"; } > "$m.in"
      boot $i powercut-check,powercut-work "$m.in" 1
    else
      { echo "R 0"; cat "$m"; } > "$m.in"
      boot $i powercut-check "$m.in" 0
    fi
    # Report cut i-1 from this boot's check.
    mnt=$(field "$log" PC-MOUNT 2) ms=$(field "$log" PC-MOUNT 3)
    chk=$(grep -a '^PC-CHECK ' "$log" | tr -d '\r' | head -1)
    fsk=$(grep -a '^PC-FSCK code' "$log" | tr -d '\r' | head -1)
    read -r _ _ checked _ ok _ lost _ wrong _ _ _ _ _ walk_err _ <<< "${chk:-x x 0 x 0 x 0 x 0 x x x x x 0 x}"
    read -r _ _ fcode _ fleaks _ ferrs <<< "${fsk:-x x - x 0 x 0}"
    if scripts/logscan.sh "$log" > "$out/logscan-$i.txt"; then klog=clean; else klog="PROBLEMS (see $out/logscan-$i.txt)"; n_klog=$((n_klog + 1)); fail+=("boot $i: kernel log"); fi
    if [ "$mnt" = ok ]; then mount_ms+=("$ms"); else n_mount_fail=$((n_mount_fail + 1)); fail+=("cut $((i - 1)): recovery mount ${mnt:-did not happen}"); fi
    if [ -z "$chk" ]; then fail+=("cut $((i - 1)): no check result (log: $log)"); fi
    n_checked=$((n_checked + checked)) n_ok=$((n_ok + ok)) n_lost=$((n_lost + lost)) n_wrong=$((n_wrong + wrong))
    n_walk_err=$((n_walk_err + walk_err))
    [ "$lost" -eq 0 ] && [ "$wrong" -eq 0 ] || fail+=("cut $((i - 1)): $lost lost, $wrong wrong durable files (log: $log)")
    [ "$walk_err" -eq 0 ] || fail+=("cut $((i - 1)): $walk_err read errors walking the tree")
    if [ "$fcode" = 0 ]; then fres=clean; n_fsck_clean=$((n_fsck_clean + 1))
    elif [ "$fcode" = - ]; then fres="did not run"; n_fsck_err=$((n_fsck_err + 1)); fail+=("cut $((i - 1)): fsck did not run")
    elif [ "$ferrs" -eq 0 ]; then fres="$fleaks leaks"; n_fsck_leak=$((n_fsck_leak + 1))
      [ "$strict" = 1 ] && fail+=("cut $((i - 1)): fsck -n after recovery: $fleaks leaks (strict)")
    else fres="$fleaks leaks, $ferrs ERRORS"; n_fsck_err=$((n_fsck_err + 1)); fail+=("cut $((i - 1)): fsck -n after recovery: $ferrs errors")
    fi
    say "powercut: cut $((i - 1)): at $c_when UTC, ${c_delay}s into the workload; recovery mount ${mnt:-none} ${ms:-} ms;" \
      "durable: $checked checked, $ok ok, $lost lost, $wrong wrong ($c_manifest); fsck -n after recovery: $fres;" \
      "fsck -n of the image right after the cut: $c_raw; kernel log $klog"
    grep -a -e '^PC-LOST' -e '^PC-WRONG' -e '^PC-WALK-ERROR' -e '^PC-KLOG problem' "$log" | tr -d '\r' | head -20 | sed 's/^/    /' | tee -a "$report"
    grep -a '^PC-FSCK-OUT \(leak\|error\):' "$log" | tr -d '\r' | head -10 | sed 's/^PC-FSCK-OUT /    after recovery: /' | tee -a "$report"
  fi
  [ $i -lt "$cuts" ] || break
  # The boot that was cut: did its workload run until the cut?
  n_cut=$((n_cut + b_killed))
  if [ $b_started = 0 ] || [ $b_killed = 0 ]; then
    n_work_fail=$((n_work_fail + 1)); fail+=("boot $i: the workload did not run until the cut (started=$b_started killed=$b_killed, log: $log)")
  fi
  if grep -aq -e '^PCW-ERROR' -e '^PC-WORKER-EXIT' "$log"; then
    n_work_fail=$((n_work_fail + 1)); fail+=("boot $i: workload error")
    grep -a -e '^PCW-ERROR' -e '^PC-WORKER-EXIT' "$log" | tr -d '\r' | head -5 | sed 's/^/    /' | tee -a "$report"
  fi
  c_delay=$b_delay c_when=$b_when
  "$gt" powercut-manifest "$log" > "$out/manifest-$i" 2> "$out/manifest-$i.txt"
  c_manifest=$(sed -n 's/^manifest: //p' "$out/manifest-$i.txt")
  n_inflight=$((n_inflight + $(awk '{print $7}' <<< "$c_manifest")))
  # The filesystem as the cut left it (before any recovery).
  if "$hv" extract "$img" "$out/fs.img" > /dev/null 2> "$out/raw-$i.txt"; then
    "$fsck" -n "$out/fs.img" > "$out/raw-$i.txt" 2>&1
    rl=$(grep -c '^leak:' "$out/raw-$i.txt") re=$(grep -c '^error:' "$out/raw-$i.txt")
    if [ "$rl" -eq 0 ] && [ "$re" -eq 0 ]; then c_raw=clean; n_raw_clean=$((n_raw_clean + 1))
    elif [ "$re" -eq 0 ]; then c_raw="$rl leaks"; n_raw_leak=$((n_raw_leak + 1))
    else c_raw="$rl leaks, $re errors"; n_raw_err=$((n_raw_err + 1)); fi
  else
    c_raw="no filesystem found ($(cat "$out/raw-$i.txt"))"; n_raw_err=$((n_raw_err + 1))
  fi
done

# After the last recovery mount and a clean unmount (no repair in between).
final=missing
if "$hv" extract "$img" "$out/fs.img" > /dev/null 2> "$out/final-fsck.txt"; then
  "$fsck" -n "$out/fs.img" > "$out/final-fsck.txt" 2>&1
  fl=$(grep -c '^leak:' "$out/final-fsck.txt") fe=$(grep -c '^error:' "$out/final-fsck.txt")
  final="$fl leaks, $fe errors"
  [ "$fl$fe" = 00 ] && final=clean
  [ "$fe" -eq 0 ] || fail+=("final: host fsck -n: $fe errors (see $out/final-fsck.txt)")
  [ "$fl" -eq 0 ] || [ "$strict" != 1 ] || fail+=("final: host fsck -n: $fl leaks (strict)")
else
  fail+=("final: no filesystem in $img")
fi
mstat=$(printf '%s\n' "${mount_ms[@]:-}" | grep . | sort -n | awk '{a[NR] = $1; s += $1} END { if (NR) printf "min %.1f / median %.1f / max %.1f ms", a[1], a[int((NR + 1) / 2)], a[NR]; else print "none" }')
say "powercut: host fsck -n after the last recovery mount and clean unmount: $final"
[ ${#fail[@]} -eq 0 ] && verdict=PASS || verdict=FAIL
if [ ${#fail[@]} -gt 0 ]; then
  say "powercut: failures:"
  printf '  %s\n' "${fail[@]}" | head -50 | tee -a "$report"
fi
say "powercut: SUMMARY $n_cut cuts (seed $seed, strict=$strict): recovery mounts $((${#mount_ms[@]})) ok, $n_mount_fail failed (mount time after an unclean shutdown $mstat);" \
  "durable checks $n_checked, ok $n_ok, lost $n_lost, wrong $n_wrong ($n_inflight in flight at the cut, not checked); read errors $n_walk_err;" \
  "fsck -n after recovery: $n_fsck_clean clean, $n_fsck_leak leaks only, $n_fsck_err errors; right after the cut: $n_raw_clean clean, $n_raw_leak leaks only, $n_raw_err errors;" \
  "workload failures $n_work_fail; boots with kernel log problems $n_klog; boots retried (no init) $n_retry; $verdict"
[ $verdict = PASS ]
