#!/usr/bin/env bash
# Builds the Debian package with `cargo deb` and tries it: install, run the installed
# binaries, find the man page, remove. Needs root (dpkg -i) and a Debian-like system.
#
#   scripts/package.sh            # build, install, check, remove
#   scripts/package.sh --keep     # leave the package installed
#
# Installs what is missing: cargo-deb (`cargo install cargo-deb --locked`) and man-db (apt).
# The man pages and shell completions are written by the binaries' hidden --generate flag
# (from the same clap definitions as --help), never by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
KEEP=0
[[ ${1:-} == --keep ]] && KEEP=1

TARGET=${CARGO_TARGET_DIR:-$PWD/target}
GEN=$TARGET/release/generated
say() { printf 'package: %s\n' "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

if ! cargo deb --version >/dev/null 2>&1; then
    say "installing cargo-deb"
    cargo install cargo-deb --locked
fi
if ! command -v mandb >/dev/null 2>&1; then
    say "installing man-db"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends man-db >/dev/null
fi

say "building the release binaries"
cargo build --release --locked --bins
mkdir -p "$GEN"
for bin in upcased upcase; do
    exe=$TARGET/release/$bin
    "$exe" --generate man >"$GEN/$bin.1"
    "$exe" --generate complete-bash >"$GEN/$bin.bash"
    "$exe" --generate complete-zsh >"$GEN/_$bin"
    "$exe" --generate complete-fish >"$GEN/$bin.fish"
done

say "cargo deb"
deb=$(cargo deb --no-build --locked 2>/dev/null | tail -n 1)
[[ -f $deb ]] || fail "cargo deb did not print the package path (got: $deb)"
say "built $deb"
dpkg-deb --contents "$deb" >&2

# Removed again whatever happens below, unless --keep.
cleanup() { ((KEEP)) || dpkg -r upcase >/dev/null 2>&1 || true; }
trap cleanup EXIT

say "dpkg -i"
dpkg -i "$deb" >/dev/null
want=$(cargo metadata --no-deps --format-version 1 | jq -r '.packages[0].version')
# From the installed files, not the build tree.
got=$(/usr/bin/upcased --version)
[[ $got == "upcased $want" ]] || fail "/usr/bin/upcased --version said '$got', want 'upcased $want'"
got=$(/usr/bin/upcase --version)
[[ $got == "upcase $want" ]] || fail "/usr/bin/upcase --version said '$got', want 'upcase $want'"
man_path=$(man -w upcased) || fail "man -w upcased found no page"
[[ $man_path == /usr/share/man/man1/upcased.1* ]] || fail "man -w upcased: $man_path"
man -w upcase >/dev/null || fail "man -w upcase found no page"
for f in /lib/systemd/system/upcased.service /lib/systemd/system/upcased.socket \
         /usr/share/bash-completion/completions/upcased /usr/share/zsh/vendor-completions/_upcase \
         /usr/share/fish/vendor_completions.d/upcased.fish /usr/share/doc/upcase/LICENSE-APACHE; do
    [[ -f $f ]] || fail "$f is not installed"
done
say "installed: $got, man page $man_path"

if ((KEEP)); then
    say "kept installed (dpkg -r upcase removes it)"
    exit 0
fi
trap - EXIT
say "dpkg -r"
dpkg -r upcase >/dev/null
[[ ! -e /usr/bin/upcased ]] || fail "/usr/bin/upcased is still there after dpkg -r"
[[ ! -e /lib/systemd/system/upcased.service ]] || fail "the unit is still there after dpkg -r"
say "ok: built, installed, ran, removed"
