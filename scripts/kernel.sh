#!/usr/bin/env bash
# Build (or reuse) the Rust-enabled guest kernel.
# KVER selects the kernel series (default 6.12, the LTS; 7.3 is the newest
# stable). The build is cached under $RDAXFS_CACHE keyed by kernel source
# version, Kconfig fragments and rustc/bindgen versions; a cached build is not
# touched. Prints the kernel tree's path on the last line of stdout.
#
# 6.12 comes from the installed Debian package linux-source-6.12 (setup.sh).
# Other series are fetched here with apt-get through a private sources list and
# state directory under the cache (the machine's apt sources are not changed):
#   7.3  linux-source-7.3 from trixie-backports
# 7.3's Rust support needs libclang >= 17 for bindgen; Debian 12 has 14, so
# libclang 19 (bookworm's libclang1-19, libllvm19) is fetched the same way,
# unpacked under the cache, and the kernel is built with BINDGEN= a wrapper
# that points bindgen at it (the kernel records the wrapper, so
# scripts/bindgen.sh uses it too).
# RDAXFS_REFRESH=1 looks for newer packages even when some are cached.
# A new build removes older cached builds of the same series unless
# RDAXFS_KEEP_KERNELS=1.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${RDAXFS_CACHE:-$HOME/.cache/rdaxfs}
kver=${KVER:-6.12}
jobs=${JOBS:-$(( $(nproc) + 1 ))}
# The common fragment, then the series' own one where an option differs.
frags=("$top/qemu/kconfig.fragment")
[ -f "$top/qemu/kconfig-$kver.fragment" ] && frags+=("$top/qemu/kconfig-$kver.fragment")
mkdir -p "$cache"

# fetch_debs DIR SUITE-LINE PACKAGE...: download PACKAGE (newest candidate)
# into DIR/deb with a private apt configuration under DIR/apt, unless
# already there.
fetch_debs() {
  local dir=$1 line=$2; shift 2
  mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial" "$dir/deb"
  local apt=(-o Dir::Etc::SourceList="$dir/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
             -o Dir::State::Lists="$dir/apt/lists" -o Dir::Cache="$dir/apt/cache"
             -o APT::Sandbox::User=root -q)
  local want=() p
  for p in "$@"; do
    if [ "${RDAXFS_REFRESH:-0}" = 1 ] || ! ls "$dir"/deb/"$p"_*.deb > /dev/null 2>&1; then want+=("$p"); fi
  done
  [ ${#want[@]} -eq 0 ] && return 0
  echo "$line" > "$dir/apt/sources.list"
  echo "kernel: fetching ${want[*]} ($line)" >&2
  apt-get "${apt[@]}" update >&2 || { echo "kernel: apt-get update for $line failed (is deb.debian.org reachable?)" >&2; exit 1; }
  (cd "$dir/deb" && apt-get "${apt[@]}" download "${want[@]}" >&2) \
    || { echo "kernel: apt-get download ${want[*]} failed" >&2; exit 1; }
}
newest_deb() { ls "$1"/deb/"$2"_*.deb | sort -V | tail -n 1; }

# fetch_libclang: libclang 19 under $cache/llvm-19 and a bindgen wrapper using
# it; sets bindgen_wrapper and libclang_ver.
fetch_libclang() {
  local dir=$cache/llvm-19 deb
  fetch_debs "$dir" "deb http://deb.debian.org/debian bookworm main" libclang1-19 libllvm19
  libclang_ver=$(for deb in "$(newest_deb "$dir" libclang1-19)" "$(newest_deb "$dir" libllvm19)"; do dpkg-deb -f "$deb" Package Version; done | tr '\n' ' ')
  if [ ! -f "$dir/root/.done" ] || [ "$(cat "$dir/root/.done")" != "$libclang_ver" ]; then
    rm -rf "$dir/root"
    for deb in "$(newest_deb "$dir" libclang1-19)" "$(newest_deb "$dir" libllvm19)"; do dpkg-deb -x "$deb" "$dir/root"; done
    echo "$libclang_ver" > "$dir/root/.done"
  fi
  bindgen_wrapper=$dir/bindgen
  cat > "$bindgen_wrapper.tmp" <<WRAP
#!/bin/sh
# bindgen with libclang 19 (written by rdaxfs scripts/kernel.sh)
export LIBCLANG_PATH=$dir/root/usr/lib/llvm-19/lib
export LD_LIBRARY_PATH=$dir/root/usr/lib/llvm-19/lib:$dir/root/usr/lib/x86_64-linux-gnu\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
exec $(command -v bindgen) "\$@"
WRAP
  chmod +x "$bindgen_wrapper.tmp"; mv "$bindgen_wrapper.tmp" "$bindgen_wrapper"
}

# fetch_source SUITE-LINE PACKAGE: download PACKAGE (arch all) into
# $cache/src-$kver with a private apt configuration, unpack its tarball there,
# and set tarball/srcver.
fetch_source() {
  local line=$1 pkg=$2 dir=$cache/src-$kver deb
  fetch_debs "$dir" "$line" "$pkg"
  deb=$(newest_deb "$dir" "$pkg")
  srcver=$(dpkg-deb -f "$deb" Version)
  tarball=$dir/$pkg-$srcver.tar.xz
  if [ ! -f "$tarball" ]; then
    rm -rf "$dir/x"; dpkg-deb -x "$deb" "$dir/x"
    mv "$dir/x/usr/src/$pkg.tar.xz" "$tarball.tmp" && mv "$tarball.tmp" "$tarball"
    rm -rf "$dir/x"
  fi
}

bindgen_wrapper="" libclang_ver=""
case "$kver" in
  6.12)
    tarball=/usr/src/linux-source-6.12.tar.xz
    [ -f "$tarball" ] || { echo "kernel: $tarball missing; run scripts/setup.sh" >&2; exit 1; }
    srcver=$(dpkg-query -W -f='${Version}' linux-source-6.12)
    ;;
  7.3)
    fetch_source "deb http://deb.debian.org/debian trixie-backports main" linux-source-7.3
    fetch_libclang
    ;;
  *) echo "kernel: KVER=$kver is not supported (6.12 or 7.3)" >&2; exit 1 ;;
esac
# series TREE: the kernel series (6.12, 7.3) of a kernel tree, from its
# Makefile.
series() {
  sed -nE '1,5{s/^VERSION = ([0-9]+)$/\1/p; s/^PATCHLEVEL = ([0-9]+)$/.\1/p}' "$1/Makefile" 2> /dev/null | tr -d '\n'
}

# prune_older TREE: a new build replaces the cached builds of the same series
# (their config, rustc, bindgen or gcc differ; each is 2-2.5 GB), unless
# RDAXFS_KEEP_KERNELS=1 or one is being built (its lock is held).
prune_older() {
  local new=$1 old
  [ "${RDAXFS_KEEP_KERNELS:-0}" != 1 ] || return 0
  for old in "$cache"/linux-*; do
    [ -f "$old/.rdaxfs-built" ] && [ "$old" != "$new" ] || continue
    [ "$(series "$old")" = "$(series "$new")" ] || continue
    (
      flock -n 8 || exit 0
      rm -rf "$old"
      echo "kernel: removed the older $(series "$new") build ${old##*/} (RDAXFS_KEEP_KERNELS=1 keeps them)" >&2
    ) 8> "$cache/.lock-${old##*/linux-}"
  done
}

key=$( { echo "$srcver"; cat "${frags[@]}"; rustc --version; bindgen --version; gcc --version | head -1
         [ -z "$libclang_ver" ] || echo "$libclang_ver"; } | sha256sum | cut -c1-16)
# Every make of the kernel tree gets the same bindgen (Kconfig checks it too).
kmake=(make ARCH=x86_64 ${bindgen_wrapper:+BINDGEN=$bindgen_wrapper})
tree=$cache/linux-$key
# One build of a tree at a time: a second caller waits and then finds the cache.
exec 9> "$cache/.lock-$key"
if ! flock -n 9; then
  echo "kernel: another kernel build is running; waiting for it" >&2
  flock 9
fi
if [ -f "$tree/.rdaxfs-built" ]; then
  echo "kernel: cached build $tree (source $srcver)" >&2
  echo "$tree"; exit 0
fi
rm -rf "$tree.tmp"; mkdir -p "$tree.tmp"
echo "kernel: unpacking linux-source $srcver ($kver)" >&2
tar -xf "$tarball" -C "$tree.tmp" --strip-components=1
cd "$tree.tmp"
echo "kernel: configuring (tinyconfig + ${frags[*]##*/})" >&2
"${kmake[@]}" -s tinyconfig >/dev/null
scripts/kconfig/merge_config.sh -m .config "${frags[@]}" >/dev/null
"${kmake[@]}" -s olddefconfig >/dev/null
# Every fragment line must have survived olddefconfig: a silently dropped
# option (for example RUST when rustc is unusable) is an error. A later
# fragment overrides an earlier one ("# CONFIG_X is not set" drops X).
bad=0
while IFS= read -r line; do
  grep -qx "$line" .config || { echo "kernel: $line did not stick" >&2; bad=1; }
done < <(cat "${frags[@]}" | sed -nE 's/^(CONFIG_[A-Za-z0-9_]+)=(.*)$/\1 \1=\2/p; s/^# (CONFIG_[A-Za-z0-9_]+) is not set$/\1 -/p' \
         | awk '{v[$1]=$2; if (!($1 in o)) {o[$1]=++n; k[n]=$1}} END {for (i=1;i<=n;i++) if (v[k[i]] ~ /=y$/) print v[k[i]]}')
if [ $bad -ne 0 ]; then "${kmake[@]}" -s rustavailable >&2 || true; echo "kernel: config incomplete; see above" >&2; exit 1; fi
echo "kernel: building with -j$jobs (about 8-10 minutes from nothing; log: $tree.tmp/build.log)" >&2
start=$(date +%s)
if ! "${kmake[@]}" -j"$jobs" > build.log 2>&1; then
  tail -40 build.log >&2; echo "kernel: build failed; full log $tree.tmp/build.log" >&2; exit 1
fi
echo "kernel: built in $(( $(date +%s) - start )) s" >&2
touch .rdaxfs-built
cd /; rm -rf "$tree"; mv "$tree.tmp" "$tree"
prune_older "$tree"
echo "$tree"
