#!/usr/bin/env bash
# Everything `make check` runs: host tests, module build with clippy, format
# checks, the log scanner's own tests, and the guest suite in both pmem
# configurations. Prints one line per result and ends with "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export PATH=$HOME/.cargo/bin:$PATH
build=$top/build
mkdir -p "$build/logs"
kdir=${KDIR:-$(cat "$build/kdir")}
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
if cargo build --release --target x86_64-unknown-linux-musl -p rdaxfs-guest -p rdaxfs-tools > "$build/logs/guest-bins.log" 2>&1 &&
   [ -f rdaxfs.ko ] &&
   scripts/initramfs.sh "$top/rdaxfs.ko" "$top/target/x86_64-unknown-linux-musl/release" "$build/initramfs.cpio.gz" >> "$build/logs/guest-bins.log" 2>&1; then
  ok initramfs
  tests=$(target/x86_64-unknown-linux-musl/release/guest-test list | paste -sd, -)
  for pmem in memmap nvdimm; do
    step "guest: $pmem pmem"
    img=$build/nvdimm-check.img
    rm -f "$img"
    log=$build/logs/guest-$pmem.log
    scripts/guest.sh --kernel "$kdir/arch/x86/boot/bzImage" --initrd "$build/initramfs.cpio.gz" \
      --pmem "$pmem" --image "$img" --smp 4 --tests "$tests" --timeout 1200 --log "$log" > /dev/null
    n=0
    while read -r _ name res secs; do
      n=$((n + 1))
      if [ "$res" = PASS ]; then ok "guest/$pmem/$name ($secs)"; else bad "guest/$pmem/$name"; fi
    done < <(grep -a '^RDAXFS-TEST: ' "$log" | tr -d '\r')
    expected=$(echo "$tests" | tr , '\n' | grep -c .)
    [ "$n" -eq "$expected" ] || bad "guest/$pmem: only $n of $expected tests reported (crash or timeout? log: $log)"
    if scripts/logscan.sh "$log"; then ok "guest/$pmem/kernel-log-clean"; else bad "guest/$pmem/kernel-log-clean (log: $log)"; fi
    grep -q 'RDAXFS-GUEST: done' "$log" || bad "guest/$pmem: did not finish (log: $log)"
  done
else
  tail -30 "$build/logs/guest-bins.log"; bad "initramfs (log: $build/logs/guest-bins.log)"
fi

echo
if [ ${#failures[@]} -gt 0 ]; then
  echo "failures:"; printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
