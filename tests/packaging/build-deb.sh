#!/usr/bin/env bash
# Builds the Debian package `slipway` (the three binaries, both systemd units,
# the example configs as /etc/slipway conffiles, completions, man pages, and a
# postinst that makes the `slipway` system user and its directories).
#
#   tests/packaging/build-deb.sh [--profile release|dev|PROFILE] [--out DIR] [cargo-deb flags]
#
# Needs cargo-deb (`cargo install --locked cargo-deb`). Prints the .deb's path.
# `--profile dev --fast` packages the debug binaries a test run already built.
set -euo pipefail
if ! cargo deb --version >/dev/null 2>&1; then
  echo "error: cargo-deb is missing; install it with: cargo install --locked cargo-deb" >&2
  exit 1
fi
source "$(dirname "$0")/stage.sh"

cargo deb --locked --no-build --profile "$profile" -p slipway-control-plane \
  --output "$out" "${rest[@]}" >&2
ls "$out"/slipway_"$version"-*.deb
