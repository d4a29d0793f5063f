#!/usr/bin/env bash
# Scan a guest serial log for kernel problems that fail a run even when
# every test passed. Prints each finding; exits 1 if there is any.
# Usage: logscan.sh LOG
set -u
log=$1
patterns=(
  'WARNING: CPU:'            # WARN_ON and friends
  'WARNING: .* at '          # older WARN format
  'kernel BUG at'            # BUG()
  'BUG: '                    # BUG: sleeping function..., KASAN, scheduling while atomic, ...
  'Oops: '                   # oops
  'general protection fault'
  'Kernel panic'
  'possible recursive locking detected'
  'possible circular locking dependency'
  'inconsistent lock state'
  'INFO: possible irq lock inversion'
  'WARNING: possible'        # lockdep "WARNING: possible circular ..." (new format)
  'lockdep is turned off'
  'INFO: task .* blocked for more than'   # hung task
  'watchdog: BUG: soft lockup'
  'rcu: INFO: rcu_.* detected stalls'
  'Call Trace:'
  'UBSAN:'
  'rust_panic'
)
found=0
for p in "${patterns[@]}"; do
  if grep -nE -- "$p" "$log" > /tmp/logscan.$$ 2>/dev/null; then
    while IFS= read -r l; do echo "logscan: $log:$l"; done < /tmp/logscan.$$
    found=1
  fi
done
rm -f /tmp/logscan.$$
exit $found
