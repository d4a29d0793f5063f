#!/usr/bin/env bash
# The kernel-log scanner must fail on every problem log and pass a clean one.
set -u
dir=$(dirname "$0")/testdata/logscan
rc=0
for f in "$dir"/*.log; do
  name=$(basename "$f" .log)
  "$(dirname "$0")/logscan.sh" "$f" > /dev/null; got=$?
  want=1; [ "$name" = clean ] && want=0
  if [ "$got" -eq "$want" ]; then echo "logscan $name: exit $got as expected"
  else echo "logscan $name: exit $got, expected $want"; rc=1; fi
done
exit $rc
