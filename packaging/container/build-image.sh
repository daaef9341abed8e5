#!/bin/bash
# Builds the prefork-httpd container image with podman, offline, from this machine's files only:
# stages a context directory in a temporary directory (the binary, stripped; exactly the shared
# libraries and the dynamic loader that ldd names, at the paths it names, each with the
# copyright file of the Debian package it comes from; /etc/passwd, /etc/group and
# /etc/nsswitch.conf naming uid/gid 10001) and builds packaging/container/Containerfile,
# FROM scratch, in Docker format (the OCI format has no HEALTHCHECK). No image is pulled.
#
# usage: packaging/container/build-image.sh [-b BINARY] [TAG]
#   -b BINARY  the prefork-httpd binary to put in the image (default: a Release build of this
#              tree in build-container/, made or brought up to date now)
#   TAG        the image's name (default: localhost/prefork-httpd:latest)
# Environment: JOBS (default 2) for the build. Needs root or a user podman setup.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
readonly IMAGE_PATH=/usr/sbin/prefork-httpd

usage() { echo "usage: $0 [-b BINARY] [TAG]" >&2; exit 2; }
binary=""
while getopts b:h opt; do
  case $opt in
    b) binary=$OPTARG ;;
    h) sed -n '2,13p' "$0"; exit 0 ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -le 1 ] || usage
tag=${1:-localhost/prefork-httpd:latest}

command -v podman >/dev/null || { echo "$0: podman is not installed" >&2; exit 1; }
if [ -z "$binary" ]; then
  echo "build-image.sh: building a Release binary in build-container/ (no tests)"
  cmake -S "$src" -B "$src/build-container" -DCMAKE_BUILD_TYPE=Release -DPREFORK_BUILD_TESTS=OFF \
    >/dev/null
  cmake --build "$src/build-container" -j"${JOBS:-2}" --target prefork-httpd
  binary=$src/build-container/prefork-httpd
fi
[ -x "$binary" ] || { echo "$0: $binary is not an executable" >&2; exit 1; }
version=$("$binary" --version)  # also proves it runs here, with these libraries

ctx=$(mktemp -d "${TMPDIR:-/tmp}/prefork-httpd-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
root=$ctx/rootfs

install -D -m 0755 "$binary" "$root$IMAGE_PATH"
strip --strip-unneeded "$root$IMAGE_PATH"

# The Debian package that ships `path` (dpkg knows /lib paths as /lib or, on merged-/usr
# systems, /usr/lib), or nothing.
package_of() {
  local path=$1 p
  for p in "$path" "/usr$path" "$(readlink -f "$path")"; do
    dpkg-query -S "$p" 2>/dev/null | head -n1 | cut -d: -f1 && return 0
  done
}

# "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and the loader's
# "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no file.
libraries=$(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
[ -n "$libraries" ] || { echo "$0: ldd names no library for $binary" >&2; exit 1; }
echo "build-image.sh: $version; libraries:"
for lib in $libraries; do
  install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"  # the file, under the name ldd uses
  pkg=$(package_of "$lib")
  [ -n "$pkg" ] || { echo "$0: $lib belongs to no Debian package" >&2; exit 1; }
  if [ -f "/usr/share/doc/$pkg/copyright" ]; then
    install -D -m 0644 "/usr/share/doc/$pkg/copyright" "$root/usr/share/doc/$pkg/copyright"
  fi
  echo "  $lib ($pkg $(dpkg-query -W -f='${Version}' "$pkg"))"
done

mkdir -p "$root/etc"
printf '%s\n' 'root:x:0:0:root:/:/usr/sbin/nologin' \
  'prefork-httpd:x:10001:10001:prefork-httpd:/:/usr/sbin/nologin' \
  'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin' >"$root/etc/passwd"
printf '%s\n' 'root:x:0:' 'prefork-httpd:x:10001:' 'nogroup:x:65534:' >"$root/etc/group"
printf '%s\n' 'passwd: files' 'group: files' >"$root/etc/nsswitch.conf"
chmod 0644 "$root"/etc/*

cp "$here/Containerfile" "$ctx/Containerfile"
podman build --format docker --pull=never --network=none \
  --label "org.opencontainers.image.title=prefork-httpd" \
  --label "org.opencontainers.image.version=${version#prefork-httpd }" \
  -t "$tag" -f "$ctx/Containerfile" "$ctx"
echo "build-image.sh: built $tag"
