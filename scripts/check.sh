#!/usr/bin/env bash
# Everything `make check` runs: host tests, module build with clippy, format
# checks, the log scanner's own tests, and the guest suite in both pmem
# configurations, on the 6.12 LTS kernel and then on 7.3 (the newest stable
# one: its module build with clippy, the main guest list, the crash pair and
# the teeth; results prefixed guest-7.3/). Prints one line per result and
# ends with "N passed, N failed" counting both kernels.
# CHECK_ONLY=6.12 or CHECK_ONLY=7.3 runs one kernel's part alone (the host
# checks and fstests belong to the 6.12 part). KDIR= and KDIR73= name the
# kernel trees (default: the cached ones, build/kdir and build/kdir-7.3).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export PATH=$HOME/.cargo/bin:$PATH
build=$top/build
mkdir -p "$build/logs"
kdir=${KDIR:-$(cat "$build/kdir" 2> /dev/null)}
run612=1 run73=1
case ${CHECK_ONLY:-} in
  "") ;;
  6.12) run73=0 ;;
  7.3) run612=0 ;;
  *) echo "check: CHECK_ONLY=${CHECK_ONLY} is not a kernel series (6.12 or 7.3)" >&2; exit 2 ;;
esac
passed=0 failed=0
failures=()
ok()   { passed=$((passed + 1)); echo "check: PASS $1"; }
bad()  { failed=$((failed + 1)); failures+=("$1"); echo "check: FAIL $1"; }
step() { echo; echo "== $* ($(date +%H:%M:%S))"; }
# check NAME LOGFILE CMD...: run CMD, log it, count it.
check() {
  local name=$1 logf=$2; shift 2
  if "$@" > "$logf" 2>&1; then ok "$name"; else tail -30 "$logf"; bad "$name (log: $logf)"; fi
}

if [ $run612 = 1 ]; then # the 6.12 part: host checks, module, initramfs
step "host: formatting and lints"
check cargo-fmt "$build/logs/cargo-fmt.log" cargo fmt --all -- --check
check rustfmt-module "$build/logs/rustfmt-module.log" rustfmt --check --edition 2021 rust/rdaxfs_main.rs
check cargo-clippy "$build/logs/cargo-clippy.log" cargo clippy --workspace --all-targets -- -D warnings

step "host: cargo test"
cargo test --workspace > "$build/logs/cargo-test.log" 2>&1
rc=$?
p=$(awk '/^test result:/ {s += $4} END {print s + 0}' "$build/logs/cargo-test.log")
f=$(awk '/^test result:/ {s += $6} END {print s + 0}' "$build/logs/cargo-test.log")
echo "cargo test: $p passed, $f failed"
passed=$((passed + p)); failed=$((failed + f))
if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then tail -30 "$build/logs/cargo-test.log"; bad "cargo-test (build or run error)"; fi
[ "$f" -eq 0 ] || { grep -E '^test .* FAILED$' "$build/logs/cargo-test.log"; failures+=("cargo test: $f failed"); }

step "module: build with CLIPPY=1 (warnings fail)"
make -s -C "$kdir" M="$top" CLIPPY=1 modules > "$build/logs/module.log" 2>&1
rc=$?
if [ $rc -eq 0 ] && ! grep -qE '^(warning|error)' "$build/logs/module.log"; then ok module-clippy; else cat "$build/logs/module.log" | head -60; bad "module-clippy (log: $build/logs/module.log)"; fi

step "log scanner self-test"
check logscan-teeth "$build/logs/logscan-teeth.log" scripts/test-logscan.sh

step "guest programs and initramfs"
musl=$top/target/x86_64-unknown-linux-musl/release
if cargo build --release --target x86_64-unknown-linux-musl -p rdaxfs-guest -p rdaxfs-tools > "$build/logs/guest-bins.log" 2>&1 &&
   cargo build --release -p rdaxfs-guest -p rdaxfs-tools >> "$build/logs/guest-bins.log" 2>&1 &&
   [ -f rdaxfs.ko ] &&
   scripts/initramfs.sh "$top/rdaxfs.ko" "$musl" "$build/initramfs.cpio.gz" >> "$build/logs/guest-bins.log" 2>&1; then
  ok initramfs
else
  tail -30 "$build/logs/guest-bins.log"; bad "initramfs (log: $build/logs/guest-bins.log)"
fi

fi # (the 6.12 part goes on after boot())

# boot NAME PMEM TESTS SCAN: one guest boot; counts its RDAXFS-TEST lines;
# SCAN=1 also fails the boot on a kernel WARNING/BUG/lockdep/hung report.
# The kernel tree, the initramfs, the results' prefix and the NVDIMM images'
# prefix are $gkdir, $ginitrd, $gtag and $gimg (6.12's unless the 7.3 part
# sets them).
gkdir=$kdir ginitrd=$build/initramfs.cpio.gz gtag=guest gimg=$build/nvdimm-
boot() {
  local name=$1 pmem=$2 tests=$3 scan=$4 img=${5:-$gimg$1.img}
  local log=$build/logs/$gtag-$name.log
  [ -n "${5:-}" ] || rm -f "$img"
  step "$gtag: $name ($pmem pmem)"
  scripts/guest.sh --kernel "$gkdir/arch/x86/boot/bzImage" --initrd "$ginitrd" \
    --pmem "$pmem" --image "$img" --smp 4 --tests "$tests" --timeout "${btimeout:-1500}" --log "$log" > /dev/null
  local n=0
  while read -r _ t res secs; do
    n=$((n + 1))
    if [ "$res" = PASS ]; then ok "$gtag/$name/$t ($secs)"; else bad "$gtag/$name/$t (log: $log)"; fi
  done < <(grep -a '^RDAXFS-TEST: ' "$log" | tr -d '\r')
  local expected
  expected=$(echo "$tests" | tr , '\n' | grep -c .)
  [ "$n" -eq "$expected" ] || bad "$gtag/$name: only $n of $expected tests reported (crash or timeout? log: $log)"
  if [ "$scan" = 1 ]; then
    if scripts/logscan.sh "$log"; then ok "$gtag/$name/kernel-log-clean"; else bad "$gtag/$name/kernel-log-clean (log: $log)"; fi
  fi
}

if [ $run612 = 1 ]; then
if [ -f "$build/initramfs.cpio.gz" ] && [ -x "$musl/guest-test" ]; then
  all=$("$musl/guest-test" list)
  # export runs last: the host reads its tree back from the NVDIMM image.
  main=$( (echo "$all" | grep -v -e '-teeth$' -e '^export$' -e '^crash-'; echo export) | paste -sd, -)
  boot memmap memmap "$main" 1
  # The benchmark smoke test (figures, not pass/fail) runs in the memmap
  # boot only.
  boot nvdimm nvdimm "$(echo "$main" | tr , '\n' | grep -v '^bench-suite$' | paste -sd, -)" 1
  step "host: NVDIMM backing file after the guest stopped"
  hv=$top/target/release/host-verify
  if check host/nvdimm-extract "$build/logs/host-extract.log" "$hv" extract "$build/nvdimm-nvdimm.img" "$build/nvdimm-fs.img"; then
    check host/nvdimm-fsck "$build/logs/host-fsck.log" "$top/target/release/fsck-rdaxfs" -n "$build/nvdimm-fs.img"
    check host/nvdimm-read-back "$build/logs/host-verify.log" "$hv" verify "$build/nvdimm-fs.img"
    cat "$build/logs/host-extract.log" "$build/logs/host-fsck.log" "$build/logs/host-verify.log"
  fi
  # Unclean shutdown: boot 1 powers off with rdaxfs mounted and an open,
  # unlinked file; boot 2 (same NVDIMM backing file) must reclaim it.
  rm -f "$build/nvdimm-crash.img"
  boot crash-1 nvdimm crash-prepare 1 "$build/nvdimm-crash.img"
  boot crash-2 nvdimm crash-recover 1 "$build/nvdimm-crash.img"
  # Crash-state explorer: >= 300 generated workloads, every sampled crash
  # state must recover, be fsck-clean and show the state before or after
  # the interrupted syscall (strict); its two teeth switches must be caught.
  RDAXFS_GUEST_ENV="RDAXFS_EXPLORE_STRICT=1" boot crash-explore memmap crash-explore 1
  for t in $(echo "$all" | grep -e '^crash-explore-teeth-'); do
    boot "$t" memmap "$t" 0
  done
  rm -f "$build"/nvdimm-*.img
  # Power cuts: QEMU killed at random moments of a mixed workload on a
  # file-backed NVDIMM; every durable file intact, mount without fsck, and
  # fsck -n clean after every recovery (strict: not even leaks).
  step "guest: power-cut loop (10 cuts, strict)"
  check powercut "$build/logs/powercut.log" scripts/powercut.sh --cuts 10 --min 2 --max 8 --strict --out "$build/powercut"
  grep -a "SUMMARY" "$build/logs/powercut.log" || true
  # Recovery with a committed transaction to replay: every commit of the
  # workload waits 2 ms between its durable commit and its in-place stores
  # (test_commit_delay_us), with open orphans, and QEMU is killed in it;
  # the recovery mount must replay, reclaim the orphans, and leave fsck -n
  # clean (a replayed eviction that moved the orphan head once made the
  # recovery mount fail).
  step "guest: recovery mounts after cuts inside commits (3 cuts)"
  check mount-recovery "$build/logs/mount-recovery.log" scripts/mount-time.sh --files 0 --cuts 3 --out "$build/mount-recovery"
  grep -a -e '^0 ' -e 'fsck' "$build/logs/mount-recovery.log" || true
  # Each reproducer's bug switch must make it fail; a -teeth test passes
  # when it sees the bug. They provoke kernel warnings on purpose (and
  # WARN_ON_ONCE fires once per boot), so each gets its own boot and its
  # log is not scanned.
  # One teeth test takes well under a minute: a hung one costs 10 minutes,
  # not the main list's 25.
  for t in $(echo "$all" | grep -e '-teeth$'); do
    btimeout=600 boot "$t" memmap "$t" 0
  done
fi

# fstests subset (qemu/fstests-check.list) on rdaxfs, with ext4 -o dax as the
# control, in a boot of its own (scripts/fstests.sh): one line per test, a
# notrun passes only when ext4-dax does not run it either; log scanned.
step "guest: fstests subset (rdaxfs and ext4 -o dax)"
if [ -f rdaxfs.ko ] && scripts/fstests.sh initramfs "$build/fstests-initramfs.cpio.gz" > "$build/logs/fstests-initramfs.log" 2>&1; then
  flog=$build/logs/guest-fstests.log
  scripts/fstests.sh run --list qemu/fstests-check.list --control nonpass --check-lines --log "$flog" > "$build/logs/fstests-table.log" 2>&1
  grep -v '^FSTESTS-CHECK: ' "$build/logs/fstests-table.log" | grep -A1000 '^test ' || true
  n=0
  while read -r _ t res; do
    n=$((n + 1))
    if [ "$res" = PASS ]; then ok "guest/$t"; else bad "guest/$t (log: $flog)"; fi
  done < <(grep '^FSTESTS-CHECK: ' "$build/logs/fstests-table.log")
  expected=$(sed -e 's/#.*//' qemu/fstests-check.list | grep -c '[^[:space:]]')
  [ "$n" -eq "$expected" ] || bad "guest/fstests: only $n of $expected tests reported (log: $flog)"
  if scripts/logscan.sh "$flog"; then ok "guest/fstests/kernel-log-clean"; else bad "guest/fstests/kernel-log-clean (log: $flog)"; fi
else
  tail -30 "$build/logs/fstests-initramfs.log" 2> /dev/null; bad "fstests-initramfs (log: $build/logs/fstests-initramfs.log)"
fi
fi # the 6.12 part

# The same source tree on 7.3 (README, "Kernels"): the kernel (the Makefile's
# check target builds it before this script; built and cached here when
# missing), the module with clippy, and the boots that exercise what differs
# between the kernels (DAX layout breaking and its waits, the fault, flush
# and truncate paths, recovery after an unclean stop): the main list on
# memmap (without the benchmarks), the crash pair on the NVDIMM, and the
# teeth (a boot each, logs not scanned, as above).
if [ $run73 = 1 ]; then
step "7.3: kernel"
if [ -n "${KDIR73:-}" ]; then
  k73=$KDIR73; ok kernel-7.3
elif make -s KVER=7.3 KDIR= kernel > "$build/logs/kernel-7.3.log" 2>&1; then
  k73=$(cat "$build/kdir-7.3"); ok kernel-7.3
else
  k73=; tail -30 "$build/logs/kernel-7.3.log"; bad "kernel-7.3 (log: $build/logs/kernel-7.3.log)"
fi
if [ -n "$k73" ]; then
  step "7.3: module build with CLIPPY=1 (warnings fail)"
  make -s KVER=7.3 KDIR="$k73" CLIPPY=1 module > "$build/logs/module-7.3.log" 2>&1
  rc=$?
  if [ $rc -eq 0 ] && ! grep -qE '^(warning|error)' "$build/logs/module-7.3.log"; then ok module-clippy-7.3; else head -60 "$build/logs/module-7.3.log"; bad "module-clippy-7.3 (log: $build/logs/module-7.3.log)"; fi
  step "7.3: guest programs and initramfs"
  musl=$top/target/x86_64-unknown-linux-musl/release
  if [ $rc -eq 0 ] &&
     cargo build --release --target x86_64-unknown-linux-musl -p rdaxfs-guest -p rdaxfs-tools > "$build/logs/guest-bins-7.3.log" 2>&1 &&
     scripts/initramfs.sh "$build/src-7.3/rdaxfs.ko" "$musl" "$build/initramfs-7.3.cpio.gz" >> "$build/logs/guest-bins-7.3.log" 2>&1; then
    ok initramfs-7.3
    gkdir=$k73 ginitrd=$build/initramfs-7.3.cpio.gz gtag=guest-7.3 gimg=$build/nvdimm-7.3-
    all=$("$musl/guest-test" list)
    # The main list less the benchmarks (bench*: figures against ext4-DAX,
    # not pass/fail; bench-faults alone takes minutes under a loaded TCG).
    main=$( (echo "$all" | grep -v -e '-teeth$' -e '^export$' -e '^crash-' -e '^bench'; echo export) | paste -sd, -)
    boot memmap memmap "$main" 1
    rm -f "$build/nvdimm-7.3-crash.img"
    boot crash-1 nvdimm crash-prepare 1 "$build/nvdimm-7.3-crash.img"
    boot crash-2 nvdimm crash-recover 1 "$build/nvdimm-7.3-crash.img"
    for t in $(echo "$all" | grep -e '-teeth$' | grep -v '^crash-explore-'); do
      btimeout=600 boot "$t" memmap "$t" 0
    done
    rm -f "$build"/nvdimm-7.3-*.img
  else
    tail -30 "$build/logs/guest-bins-7.3.log" 2> /dev/null; bad "initramfs-7.3 (log: $build/logs/guest-bins-7.3.log)"
  fi
fi
fi # the 7.3 part

echo
if [ ${#failures[@]} -gt 0 ]; then
  echo "failures:"; printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
