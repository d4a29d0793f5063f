#!/usr/bin/env bash
# fstests (xfstests) on rdaxfs in the QEMU guest, with ext4 -o dax as the control.
#
#   fstests.sh build                 build fstests (cached); prints its tree on the last line
#   fstests.sh initramfs OUT         build the fstests guest initramfs (fstests + host userland)
#   fstests.sh run [options]         boot the guest, run ./check, print the result table
#   fstests.sh all [options]         build + initramfs + run (what `make fstests` does)
#
# run options: --tests "generic/001 generic/013" | --list FILE (default qemu/fstests.list)
#              --fstypes "rdaxfs ext4" --timeout SECONDS --log FILE --smp N
#              --test-timeout SECONDS (default 900: a test still running then is
#                killed and reported as timeout; the list goes on)
#              --chunk N (run N tests on each filesystem type in turn, so a run
#                cut short by --timeout still compares what it reached)
#              --control all|nonpass (nonpass: ext4 -o dax runs only the tests
#                that did not pass on rdaxfs; make check uses it to halve the time)
#              --check-lines (one "FSTESTS-CHECK: test PASS|FAIL" line per test, for check.sh)
#              --mode stress --seconds N (scripts/stress.sh uses this)
# Environment: FSTESTS=tree-or-tarball (default: the tarball in /work/shared/fstests, if any),
#              RDAXFS_CACHE (default ~/.cache/rdaxfs), KDIR (kernel tree; default build/kdir),
#              FSTESTS_PMEM (guest.sh --pmem; default memmap2, two regions).
#
# The fstests build is cached under $RDAXFS_CACHE/fstests-<key>, key = hash of
# the source (tarball sha256, or a tree's git commit and status) and gcc's version.
# The guest gets two pmem regions: /dev/pmem0 = TEST_DEV, /dev/pmem1 = SCRATCH_DEV.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${RDAXFS_CACHE:-$HOME/.cache/rdaxfs}
default_src=/work/shared/fstests/xfstests-63a29724.tar.gz
src=${FSTESTS:-}
[ -n "$src" ] || { [ -e "$default_src" ] && src=$default_src; } || true

die() { printf 'fstests: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'fstests: %s\n' "$*" >&2; }

# ---------------------------------------------------------------- build
fstests_key() {
  if [ -f "$src" ]; then
    sha256sum < "$src" | cut -c1-64
  elif [ -d "$src/.git" ] || git -C "$src" rev-parse HEAD > /dev/null 2>&1; then
    { git -C "$src" rev-parse HEAD; git -C "$src" status --porcelain=v1 -uno | sha256sum; }
  else
    # A plain tree: its file list, sizes and times.
    (cd "$src" && find . -path ./results -prune -o -type f \( -name '*.c' -o -name '*.h' -o -name 'Makefile' -o -name '*.ac' -o -name '*.m4' \) -printf '%p %s %T@\n' | sort | sha256sum)
  fi
}

do_build() {
  [ -n "$src" ] || die "no fstests source: pass FSTESTS=/path/to/xfstests (a git clone or a tarball of one)"
  [ -e "$src" ] || die "FSTESTS=$src does not exist (pass a fstests tree or tarball)"
  if [ -f "$src" ]; then
    [ "$( (tar -tzf "$src" 2> /dev/null || true) | grep -cE '^[^/]+/check$' || true)" -gt 0 ] \
      || die "$src is not a fstests tarball (no check script at its top)"
  else
    [ -f "$src/check" ] && [ -d "$src/common" ] || die "$src is not a fstests tree (no ./check or common/)"
  fi
  "$top/scripts/setup.sh" --fstests >&2
  local key tree
  key=$( { fstests_key; gcc --version | head -1; } | sha256sum | cut -c1-16)
  tree=$cache/fstests-$key
  mkdir -p "$cache"
  exec 8> "$cache/.fstests.lock"
  if ! flock -n 8; then say "another fstests build is running; waiting for it"; flock 8; fi
  if [ -f "$tree/.rdaxfs-built" ]; then
    say "cached build $tree"
    echo "$tree"; return 0
  fi
  rm -rf "$tree.tmp"; mkdir -p "$tree.tmp"
  if [ -f "$src" ]; then
    say "unpacking $src"
    tar -xzf "$src" -C "$tree.tmp" --strip-components=1
  else
    say "copying $src"
    (cd "$src" && tar -c --exclude=./results --exclude=./.git .) | tar -x -C "$tree.tmp"
    make -C "$tree.tmp" -s realclean > /dev/null 2>&1 || true
  fi
  say "building (a few minutes; log $tree.tmp/build.log)"
  local start; start=$(date +%s)
  if ! nice make -C "$tree.tmp" -j"$(nproc)" > "$tree.tmp/build.log" 2>&1; then
    tail -30 "$tree.tmp/build.log" >&2; die "fstests build failed; full log $tree.tmp/build.log"
  fi
  [ -x "$tree.tmp/ltp/fsstress" ] && [ -x "$tree.tmp/ltp/fsx" ] || die "fstests built without ltp/fsstress or ltp/fsx"
  say "built in $(( $(date +%s) - start )) s"
  touch "$tree.tmp/.rdaxfs-built"
  rm -rf "$tree"; mv "$tree.tmp" "$tree"
  echo "$tree"
}

# ---------------------------------------------------------------- initramfs
# Host programs fstests runs, by Debian package; with their shared libraries.
PKGS=(bash coreutils sed grep gawk findutils diffutils util-linux mount xfsprogs bc
      perl-base attr acl e2fsprogs psmisc procps bsdextrautils hostname kmod)
# Programs of those packages left out (large, interactive or useless in the guest).
SKIP_RE='/(xfs_scrub_all|xfs_scrub|e4defrag|e2scrub|e2scrub_all|e4crypt|cfdisk|fdisk|sfdisk|mkfs\.bfs|mkfs\.minix|fsck\.minix|fsck\.cramfs|mkfs\.cramfs|swaplabel|lsirq|lsmem|chmem|rtcwake|hwclock|ldattach|setterm|pg|perlbug|perldoc|pod2.*|watch|slabtop|top|skill|snice|w|pkill|pgrep)$'

copy_with_libs() { # root file...
  local root=$1 f lib; shift
  for f in "$@"; do
    [ -f "$f" ] || continue
    mkdir -p "$root$(dirname "$f")"
    cp -a "$f" "$root$f" 2> /dev/null || cp -L "$f" "$root$f"
    { ldd "$f" 2> /dev/null || true; } | awk '/=> \// {print $3} /^\t\/lib64/ {print $1}'
  done | sort -u | while read -r lib; do
    [ -e "$root$lib" ] && continue
    mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"
  done
}

# fstests' _try_scratch_mkfs_sized (common/rc) knows each filesystem's size
# option and notruns on any other type ("Filesystem rdaxfs not supported in
# _scratch_mkfs_sized": 23 tests of qemu/fstests.list, most of them ENOSPC
# tests). Until fstests carries an rdaxfs case, the guest's copy of common/rc
# gets one (mkfs.rdaxfs --size BYTES); the build and its cache are untouched,
# and a tree that already has one is left as it is.
mkfs_sized_case() { # common/rc
  local rc=$1
  if awk '/^_try_scratch_mkfs_sized\(\)/,/^}/' "$rc" | grep -q '^[[:space:]]*rdaxfs)'; then
    return 0
  fi
  perl -0pi -e 's/(\n\t\*\)\n\t\t_notrun "Filesystem \$FSTYP not supported in _scratch_mkfs_sized")/\n\trdaxfs)\n\t\t\$\{MKFS_PROG\} -t \$FSTYP \$MKFS_OPTIONS "\$@" --force --size \$fssize \$SCRATCH_DEV\n\t\t;;$1/' "$rc"
  if awk '/^_try_scratch_mkfs_sized\(\)/,/^}/' "$rc" | grep -q '^[[:space:]]*rdaxfs)'; then
    say "common/rc: added an rdaxfs case to _try_scratch_mkfs_sized (mkfs.rdaxfs --size)"
  else
    say "common/rc: no place for an rdaxfs case in _try_scratch_mkfs_sized; tests using it will notrun"
  fi
}

do_initramfs() {
  local out=$1 tree=$2 ko=$3 bindir=$4 root
  [ -f "$ko" ] || die "$ko missing (make module)"
  [ -x "$bindir/guest-test" ] || die "$bindir/guest-test missing (make guest-bins)"
  root=$(mktemp -d); chmod 755 "$root"
  # shellcheck disable=SC2064
  trap "rm -rf '$root'" RETURN
  mkdir -p "$root"/usr/{bin,sbin,lib,lib64} "$root"/{proc,sys,dev,tmp,mnt,etc,root,var/tmp,run}
  ln -s usr/bin "$root/bin"; ln -s usr/sbin "$root/sbin"
  ln -s usr/lib "$root/lib"; ln -s usr/lib64 "$root/lib64"
  chmod 1777 "$root/tmp" "$root/var/tmp"
  local files=() p f
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q "install ok installed" \
      || die "Debian package $p missing (scripts/setup.sh --fstests installs it)"
    while read -r f; do
      [ -e "$f" ] && files+=("$f")
    done < <(dpkg -L "$p" | grep -E '^/(usr/)?s?bin/[^/]+$' | grep -Ev "$SKIP_RE")
  done
  # Normalise /bin/x to /usr/bin/x (merged /usr in the guest as on the host).
  local norm=()
  for f in "${files[@]}"; do case "$f" in /usr/*) norm+=("$f") ;; *) norm+=("/usr$f") ;; esac; done
  copy_with_libs "$root" "${norm[@]}"
  # Single programs of other packages that fstests calls (getconf PAGE_SIZE
  # in _get_page_size and generic/503, tar, gzip, xxd, cpio).
  local extra
  for extra in getconf tar gzip xxd cpio; do
    f=$(command -v "$extra") || die "$extra not found on the host (scripts/setup.sh --fstests)"
    copy_with_libs "$root" "$(readlink -f "$f")"
  done
  # glibc's pthread_exit and pthread_cancel load libgcc_s with dlopen (ldd
  # does not list it): without it a program whose thread exits aborts
  # ("libgcc_s.so.1 must be installed for pthread_exit to work";
  # generic/761's dio-writeback-race).
  copy_with_libs "$root" "$(readlink -f /lib/x86_64-linux-gnu/libgcc_s.so.1)"
  # perl-base's modules (no perl-modules: what fstests' tests use is in perl-base).
  cp -a /usr/lib/x86_64-linux-gnu/perl-base "$root/usr/lib/x86_64-linux-gnu/"
  [ -d /usr/lib/x86_64-linux-gnu/perl ] && mkdir -p "$root/usr/lib/x86_64-linux-gnu/perl"
  # su (util-linux) authenticates through PAM: root needs no password.
  copy_with_libs "$root" /usr/lib/x86_64-linux-gnu/security/pam_rootok.so \
    /usr/lib/x86_64-linux-gnu/security/pam_permit.so
  mkdir -p "$root/etc/pam.d"
  printf 'auth sufficient pam_rootok.so\nauth required pam_permit.so\naccount required pam_permit.so\nsession required pam_permit.so\npassword required pam_permit.so\n' \
    > "$root/etc/pam.d/other"
  cp "$root/etc/pam.d/other" "$root/etc/pam.d/su"
  cp "$root/etc/pam.d/other" "$root/etc/pam.d/runuser"
  # busybox fills what is left (poweroff, setsid, cttyhack, ...).
  cp /bin/busybox "$root/usr/bin/busybox"
  for f in $("$root/usr/bin/busybox" --list); do
    [ -e "$root/usr/bin/$f" ] || [ -e "$root/usr/sbin/$f" ] || ln -s busybox "$root/usr/bin/$f"
  done
  ln -sf gawk "$root/usr/bin/awk"
  ln -sf bash "$root/usr/bin/sh"
  cp /etc/mke2fs.conf "$root/etc/mke2fs.conf"
  # Users fstests asks for (_require_user, _require_group, 123456-fsgqa for idmapped tests).
  cat > "$root/etc/passwd" << 'EOF'
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/bin/bash
fsgqa:x:1000:1000:fsgqa:/home/fsgqa:/bin/bash
fsgqa2:x:1001:1001:fsgqa2:/home/fsgqa2:/bin/bash
123456-fsgqa:x:123456:123456:123456-fsgqa:/home/123456-fsgqa:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/bin/bash
EOF
  cat > "$root/etc/group" << 'EOF'
root:x:0:
daemon:x:1:
fsgqa:x:1000:
fsgqa2:x:1001:
123456-fsgqa:x:123456:
nogroup:x:65534:
nobody:x:65534:
EOF
  printf '/bin/bash\n/bin/sh\n' > "$root/etc/shells"
  mkdir -p "$root/home/fsgqa" "$root/home/fsgqa2" "$root/home/123456-fsgqa"
  chown 1000:1000 "$root/home/fsgqa"; chown 1001:1001 "$root/home/fsgqa2"
  chown 123456:123456 "$root/home/123456-fsgqa"
  echo rdaxfs-guest > "$root/etc/hostname"
  printf '127.0.0.1 localhost rdaxfs-guest\n' > "$root/etc/hosts"
  : > "$root/etc/fstab"
  # fstests itself, without objects and sources.
  mkdir -p "$root/fstests"
  (cd "$tree" && tar -c --exclude='*.o' --exclude='*.lo' --exclude='*.c' --exclude='*.h' \
     --exclude='*.a' --exclude=./results --exclude=./.git --exclude=./doc --exclude=./build.log \
     --exclude='.dep' --exclude='.ltdep' .) | tar -x -C "$root/fstests"
  mkfs_sized_case "$root/fstests/common/rc"
  # fstests' own programs (src/, ltp/) link libaio, liburing, libhandle, ...:
  # every dynamic ELF file in the tree gets its libraries.
  find "$root/fstests" "$root/usr/bin" "$root/usr/sbin" -type f -perm -u+x -print0 \
    | xargs -0 file -N | awk -F: '/ELF.*dynamic/ {print $1}' \
    | while read -r f; do { ldd "$f" 2> /dev/null || true; } | awk '/=> \// {print $3}'; done \
    | sort -u | while read -r lib; do
      [ -e "$root$lib" ] && continue
      mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"
    done
  # rdaxfs: module and tools under the names mkfs -t / fsck -t look for.
  cp "$ko" "$root/usr/lib/rdaxfs.ko"
  cp "$bindir/guest-test" "$root/usr/bin/"
  for f in mkfs fsck dump; do cp "$bindir/$f-rdaxfs" "$root/usr/sbin/$f.rdaxfs"; done
  cp "$top/qemu/fstests-init" "$root/init"; chmod 755 "$root/init"
  (cd "$root" && find . | cpio -o -H newc --quiet) | gzip -1 > "$out.tmp"
  mv "$out.tmp" "$out"
  say "initramfs $out: $(du -m "$out" | cut -f1) MiB compressed, $(du -sm "$root" | cut -f1) MiB unpacked"
}

# ---------------------------------------------------------------- run
kdir() {
  if [ -n "${KDIR:-}" ]; then echo "$KDIR"; else cat "$top/build/kdir"; fi
}

# A small second cpio archive carrying the run's settings: the kernel unpacks
# concatenated archives in order, so the big fstests initramfs is not rebuilt.
run_cpio() { # out mode fstypes tests-file seconds test-timeout chunk control
  local out=$1 dir; dir=$(mktemp -d)
  # The archive's "." entry sets the mode of the guest's / when unpacked:
  # mktemp's 0700 would lock fsgqa out of every program (_require_user:
  # "fsgqa cannot execute commands").
  chmod 755 "$dir"
  mkdir -p "$dir/etc/fstests-run"
  printf '%s\n' "$2" > "$dir/etc/fstests-run/mode"
  printf '%s\n' "$3" > "$dir/etc/fstests-run/fstypes"
  cp "$4" "$dir/etc/fstests-run/tests"
  printf '%s\n' "$5" > "$dir/etc/fstests-run/seconds"
  printf '%s\n' "$6" > "$dir/etc/fstests-run/test-timeout"
  printf '%s\n' "$7" > "$dir/etc/fstests-run/chunk"
  printf '%s\n' "$8" > "$dir/etc/fstests-run/control"
  (cd "$dir" && find . | cpio -o -H newc --quiet -R 0:0) | gzip -1 > "$out"
  rm -rf "$dir"
}

# The tests of a list file: first word of each line, comments and blanks skipped.
list_tests() { sed -e 's/#.*//' "$1" | awk 'NF {print $1}'; }

do_run() {
  local tests="" list=$top/qemu/fstests.list fstypes="rdaxfs ext4" timeout= log= smp=2
  local check_lines=0 mode=check seconds=60 test_timeout=900 chunk=0 control=all initrd=$top/build/fstests-initramfs.cpio.gz
  while [ $# -gt 0 ]; do
    case "$1" in
      --tests) tests=$2; shift ;;
      --list) list=$2; shift ;;
      --fstypes) fstypes=$2; shift ;;
      --timeout) timeout=$2; shift ;;
      --log) log=$2; shift ;;
      --smp) smp=$2; shift ;;
      --initrd) initrd=$2; shift ;;
      --check-lines) check_lines=1 ;;
      --mode) mode=$2; shift ;;
      --seconds) seconds=$2; shift ;;
      --test-timeout) test_timeout=$2; shift ;;
      --chunk) chunk=$2; shift ;;
      --control) control=$2; shift ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  [ -f "$initrd" ] || die "$initrd missing: run 'make fstests' (or fstests.sh initramfs) first"
  local tree; tree=$(cat "$top/build/fstests-tree" 2> /dev/null || true)
  local tfile; tfile=$(mktemp)
  if [ -n "$tests" ]; then
    printf '%s\n' $tests > "$tfile"
  elif [ "$mode" = check ]; then
    [ -f "$list" ] || die "list file $list not found"
    list_tests "$list" > "$tfile"
  fi
  if [ "$mode" = check ]; then
    [ -s "$tfile" ] || die "no tests to run (empty TESTS= or list $list)"
    # Unknown test names are an error here, not a silent "notrun" in the guest.
    local t bad=()
    while read -r t; do
      case "$t" in */[0-9]*) ;; *) bad+=("$t") ; continue ;; esac
      if [ -n "$tree" ] && [ ! -f "$tree/tests/$t" ]; then bad+=("$t"); fi
    done < "$tfile"
    [ ${#bad[@]} -eq 0 ] || die "unknown test(s): ${bad[*]} (names look like generic/001 and must exist in fstests' tests/)"
    for t in $fstypes; do
      case "$t" in rdaxfs|ext4) ;; *) die "--fstypes: rdaxfs and/or ext4, not '$t'" ;; esac
    done
  fi
  local n; n=$(wc -l < "$tfile")
  if [ -z "$timeout" ]; then
    if [ "$mode" = check ]; then
      timeout=$(( 300 + n * 120 * $(echo $fstypes | wc -w) ))
    else
      timeout=$(( seconds + 600 ))
    fi
  fi
  [ -n "$log" ] || log=$top/build/fstests-$mode.log
  local extra; extra=$(mktemp)
  run_cpio "$extra" "$mode" "$fstypes" "$tfile" "$seconds" "$test_timeout" "$chunk" "$control"
  local initrd2; initrd2=$(mktemp --suffix=.cpio.gz)
  cat "$initrd" "$extra" > "$initrd2"
  rm -f "$extra" "$tfile"
  local k; k=$(kdir)/arch/x86/boot/bzImage
  [ -f "$k" ] || die "kernel $k missing (make kernel)"
  say "booting the guest ($mode; $n tests; fstypes: $fstypes; timeout ${timeout}s; log $log)"
  local start; start=$(date +%s)
  "$top/scripts/guest.sh" --kernel "$k" --initrd "$initrd2" --pmem "${FSTESTS_PMEM:-memmap2}" --smp "$smp" \
    --tests fstests --timeout "$timeout" --log "$log" \
    | grep --line-buffered -E '^(FSTESTS|STRESS|RDAXFS-GUEST|[a-z0-9]+/[0-9]+ )' >&2 || true
  rm -f "$initrd2"
  say "guest ran $(( $(date +%s) - start )) s"
  if grep -aq '^FSTESTS-ERROR' "$log"; then
    die "$(grep -a '^FSTESTS-ERROR' "$log" | tr -d '\r' | head -3) (log $log)"
  fi
  grep -aq '^RDAXFS-GUEST: up' "$log" || die "the guest did not come up (log $log)"
  if [ "$mode" = check ]; then
    table "$log" "$fstypes" "$check_lines" "$([ -n "$tests" ] || echo "$list")"
  fi
}

# The result table from the guest log: test, rdaxfs, ext4-dax, and for a
# failure the first lines of its .out.bad diff (FSTESTS-DIFF lines).
table() { # log fstypes check_lines [list]
  local log=$1 check_lines=$3 okl=""
  # "generic/606 notrun-ok REASON" in a list: a documented feature choice,
  # so a notrun on rdaxfs passes even where ext4 -o dax runs the test.
  [ -z "${4:-}" ] || okl=$(sed -e 's/#.*//' "$4" | awk '$2 == "notrun-ok" {printf "%s ", $1}')
  # With a list, rows follow its order (several logs merged by "table").
  local lorder=""
  [ -z "${4:-}" ] || lorder=$(list_tests "$4" | tr '\n' ' ')
  tr -d '\r' < "$log" | awk -v check_lines="$check_lines" -v notrun_ok=" $okl" -v lorder="$lorder" '
    /^FSTESTS-RESULT: / { res[$2 " " $3] = $4; if (!($3 in seen)) { seen[$3] = 1; order[++n] = $3 } next }
    /^FSTESTS-NOTRUN: / { k = $2 " " $3; sub(/^FSTESTS-NOTRUN: [^ ]+ [^ ]+ /, ""); why[k] = $0; next }
    /^FSTESTS-DIFF: / { k = $2 " " $3; sub(/^FSTESTS-DIFF: [^ ]+ [^ ]+ /, ""); diff[k] = diff[k] "      " $0 "\n"; next }
    /^FSTESTS-NOTE: / { print; next }
    /^FSTESTS-TIMEOUT: / { tmo[$2 " " $3] = 1; next }
    # check'"'"'s own progress lines: the result when the guest stopped before
    # printing FSTESTS-RESULT (timeout of the whole run).
    /^FSTESTS-LOG: [a-z0-9]+ [a-z]+\/[0-9]+ / {
      k = $2 " " $3; line = $0; sub(/^FSTESTS-LOG: [^ ]+ [^ ]+ */, "", line)
      r = ""
      if (line ~ /\[not run\]/) { r = "notrun"; w = line; sub(/.*\[not run\] */, "", w); lwhy[k] = w }
      else if (line ~ /mismatch|failed|inconsistent|_check_|not found/) r = "fail"
      else if (line ~ /^[0-9]+s/ || line ~ /\.\.\. *[0-9]+s/) r = "pass"
      if (r != "") { lres[k] = r; if (!($3 in seen)) { seen[$3] = 1; order[++n] = $3 } }
      next
    }
    END {
      for (k in lres) if (!(k in res)) { res[k] = lres[k]; if (lres[k] == "notrun") why[k] = lwhy[k] }
      for (k in tmo) if (res[k] == "" || res[k] == "fail") res[k] = "timeout"
      if (n == 0) { print "fstests: no results in the guest log"; exit 1 }
      if (lorder != "") {
        m = split(lorder, lo, " "); k2 = 0
        for (i = 1; i <= m; i++) if (lo[i] in seen) ord2[++k2] = lo[i]
        for (i = 1; i <= n; i++) { inl = 0; for (j = 1; j <= m; j++) if (lo[j] == order[i]) { inl = 1; break }
          if (!inl) ord2[++k2] = order[i] }
        for (i = 1; i <= k2; i++) order[i] = ord2[i]
      }
      printf "%-14s %-8s %-8s\n", "test", "rdaxfs", "ext4-dax"
      fails = 0
      for (i = 1; i <= n; i++) {
        t = order[i]; r = res["rdaxfs " t]; e = res["ext4 " t]
        if (r == "") r = "-"; if (e == "") e = "-"
        printf "%-14s %-8s %-8s\n", t, r, e
        if (r == "notrun" && why["rdaxfs " t] != "") printf "      rdaxfs notrun: %s\n", why["rdaxfs " t]
        if (e == "notrun" && r != "notrun" && why["ext4 " t] != "") printf "      ext4-dax notrun: %s\n", why["ext4 " t]
        if (r == "fail" || r == "timeout") { printf "%s", diff["rdaxfs " t]; fails++ }
        if (e == "fail" || e == "timeout") printf "%s", diff["ext4 " t]
        cnt["rdaxfs " r]++; cnt["ext4 " e]++
      }
      printf "rdaxfs: %d pass, %d fail, %d notrun, %d timeout; ext4-dax: %d pass, %d fail, %d notrun, %d timeout\n",
        cnt["rdaxfs pass"], cnt["rdaxfs fail"], cnt["rdaxfs notrun"], cnt["rdaxfs timeout"],
        cnt["ext4 pass"], cnt["ext4 fail"], cnt["ext4 notrun"], cnt["ext4 timeout"]
      if (check_lines) {
        # check.sh: pass, or notrun that ext4-dax shares; anything else on rdaxfs fails.
        for (i = 1; i <= n; i++) {
          t = order[i]; r = res["rdaxfs " t]; e = res["ext4 " t]
          ok = (r == "pass") || (r == "notrun" && (e == "notrun" || index(notrun_ok, " " t " ") > 0))
          printf "FSTESTS-CHECK: fstests-%s %s\n", t, ok ? "PASS" : "FAIL"
        }
      }
    }'
}

cmd=${1:-}; shift || true
case "$cmd" in
  build) do_build ;;
  initramfs)
    [ $# -ge 1 ] || die "usage: fstests.sh initramfs OUT"
    tree=$(do_build | tail -1)
    mkdir -p "$top/build"; echo "$tree" > "$top/build/fstests-tree"
    do_initramfs "$1" "$tree" "$top/rdaxfs.ko" "$top/target/x86_64-unknown-linux-musl/release"
    ;;
  run) do_run "$@" ;;
  table)
    # Merges the results of several runs' logs (a later log's result for a
    # test replaces an earlier one's) into one table, in the list's order.
    lst=$top/qemu/fstests.list logs=()
    while [ $# -gt 0 ]; do
      case "$1" in --list) lst=$2; shift ;; *) logs+=("$1") ;; esac
      shift
    done
    [ ${#logs[@]} -gt 0 ] || die "usage: fstests.sh table [--list FILE] LOG..."
    for f in "${logs[@]}"; do [ -f "$f" ] || die "no log $f"; done
    merged=$(mktemp); cat "${logs[@]}" > "$merged"
    table "$merged" "rdaxfs ext4" 0 "$lst"; rc=$?; rm -f "$merged"; exit $rc
    ;;
  all)
    tree=$(do_build | tail -1)
    mkdir -p "$top/build"; echo "$tree" > "$top/build/fstests-tree"
    do_initramfs "$top/build/fstests-initramfs.cpio.gz" "$tree" "$top/rdaxfs.ko" \
      "$top/target/x86_64-unknown-linux-musl/release"
    do_run "$@"
    ;;
  *) die "usage: fstests.sh build | initramfs OUT | run [options] | all [options] | table [--list FILE] LOG..." ;;
esac
