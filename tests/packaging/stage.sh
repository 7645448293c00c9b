# Sourced by build-deb.sh and release-tarball.sh: builds the three binaries
# and stages everything Slipway ships into one directory, the layout of the
# release tarball, from which the Debian package takes its files too:
#
#   bin/          slipctl, slipway-control-plane, slipway-agent (stripped)
#   systemd/      slipway-control-plane.service, slipway-agent.service
#   config/       control-plane.toml, agent.toml (the examples)
#   completions/  slipctl.bash, _slipctl (zsh), slipctl.fish
#   man/man1/     slipctl.1, slipctl-<subcommand>.1, slipway-control-plane.1, slipway-agent.1
#   README.md
#
# Flags: --profile PROFILE (cargo profile, default release; `dev` packages the
# debug binaries the tests already built), --out DIR (where the artifact goes,
# default <target dir>/dist). Other flags are kept in `rest` for the caller.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
profile=release
out=""
rest=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --profile=*) profile="${1#--profile=}"; shift ;;
    --out) out="$2"; shift 2 ;;
    --out=*) out="${1#--out=}"; shift ;;
    *) rest+=("$1"); shift ;;
  esac
done

cd "$root"
target_dir="$(cargo metadata --format-version 1 --no-deps --locked \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
case "$profile" in
  dev | debug) profile=dev; profile_dir=debug ;;
  *) profile_dir="$profile" ;;
esac
products="$target_dir/$profile_dir"
# The Debian metadata (control-plane/Cargo.toml) names this directory as
# target/release/slipway-dist; cargo-deb maps target/release to $products.
dist="$products/slipway-dist"
out="${out:-$target_dir/dist}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
host_target="$(rustc -vV | sed -n 's/^host: //p')"

# One staging at a time per profile: tests build the package and the tarball
# side by side.
mkdir -p "$products"
exec 9>"$products/slipway-dist.lock"
flock 9

# One package at a time, as the tests' fixtures build them: one build of
# all three would unify their dependencies' features differently and
# relink every binary on each alternation.
for package in slipway-control-plane slipway-agent slipctl; do
  cargo build --locked --quiet --profile "$profile" -p "$package" --bin "$package"
done

rm -rf "$dist"
mkdir -p "$dist/bin" "$dist/systemd" "$dist/config" "$dist/completions" "$dist/man/man1"
for bin in slipctl slipway-control-plane slipway-agent; do
  strip -o "$dist/bin/$bin" "$products/$bin"
done
cp control-plane/packaging/slipway-control-plane.service agent/packaging/slipway-agent.service "$dist/systemd/"
cp control-plane/control-plane.example.toml "$dist/config/control-plane.toml"
cp agent/agent.example.toml "$dist/config/agent.toml"
"$dist/bin/slipctl" completions bash >"$dist/completions/slipctl.bash"
"$dist/bin/slipctl" completions zsh >"$dist/completions/_slipctl"
"$dist/bin/slipctl" completions fish >"$dist/completions/slipctl.fish"
"$dist/bin/slipctl" man --out "$dist/man/man1" >/dev/null
for daemon in slipway-control-plane slipway-agent; do
  "$dist/bin/$daemon" --print-man >"$dist/man/man1/$daemon.1"
done
cp README.md "$dist/"
mkdir -p "$out"
