#!/bin/sh
# Installs what building and testing prefork-httpd needs, from Debian's packages.
# The one dependency list is packaging/debian/control (Build-Depends); apt reads it from there.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: run as root (it calls apt-get)" >&2
  exit 1
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends build-essential ca-certificates >/dev/null
apt-get build-dep -y -qq "$here" >/dev/null
# Test-only tools outside the package build: the container image test and the package test under
# a real systemd (a debootstrap root booted by podman). podman's default runtime here is runc.
apt-get install -y -qq --no-install-recommends podman runc debootstrap >/dev/null
