#!/usr/bin/env bash
# Builds the release tarball slipway-<version>-<target>.tar.gz: the three
# binaries, both systemd units, the example configs, completions, man pages
# and the README, under one top directory of the same name.
#
#   tests/packaging/release-tarball.sh [--profile release|dev|PROFILE] [--out DIR]
#
# Prints the tarball's path.
set -euo pipefail
source "$(dirname "$0")/stage.sh"

name="slipway-$version-$host_target"
tarball="$out/$name.tar.gz"
tar --create --gzip --file "$tarball" --owner=0 --group=0 --numeric-owner --sort=name \
  --directory "$products" --transform "s,^slipway-dist,$name," slipway-dist
echo "$tarball"
