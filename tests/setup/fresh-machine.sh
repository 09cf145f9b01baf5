#!/usr/bin/env bash
# The README's commands on a machine without any of the packages: scripts/setup.sh
# (run first by `make demo` and `make test`) must get from "nothing installed" to
# "everything installed" without assuming any package is there, and print a line
# per step.
#
# How: a fake machine on PATH where dpkg-query knows no package and bindgen, vng
# and pip's scripts are absent; apt-get, cargo and pip record what they were asked
# and "install" it (apt-get makes dpkg-query know the package afterwards, cargo
# creates bindgen, pip creates vng). The scripts run under `set -euo pipefail`, so
# any step that touches a package before the install step (the bug that made
# `make demo` exit 2 on a new machine) fails here. Every other script runs in a
# process started after setup, and run-tests.sh, the one that sources env.sh
# before setup, must see the kernel package setup installed: checked as well.
#
# Prints KTAP.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/cxlvfio-fresh.XXXXXX)
trap 'rm -rf "$work"' EXIT
fake=$work/bin home=$work/home scripts=$work/pyscripts state=$work/state
mkdir -p "$fake" "$home" "$scripts" "$state"
: >"$state/installed"

cat >"$fake/dpkg-query" <<'EOS'
#!/bin/bash
# dpkg-query -W -f FORMAT PKG: known only once the fake apt-get installed it.
pkg=${!#}
if grep -qxF "$pkg" "$FAKE_STATE/installed"; then
	case "$3" in
	*Status*) printf 'install ok installed' ;;
	*Version*) printf '6.12.117-1~deb12u1' ;;
	esac
	exit 0
fi
echo "dpkg-query: no packages found matching $pkg" >&2
exit 1
EOS
cat >"$fake/apt-get" <<'EOS'
#!/bin/bash
echo "apt-get $*" >>"$FAKE_STATE/log"
[ "$1" = update ] && { touch "$FAKE_STATE/updated"; exit 0; }
[ -f "$FAKE_STATE/updated" ] || { echo "E: Unable to locate package (no apt-get update)" >&2; exit 100; }
for a in "$@"; do case "$a" in -*|install) ;; *) echo "$a" >>"$FAKE_STATE/installed" ;; esac; done
EOS
cat >"$fake/cargo" <<'EOS'
#!/bin/bash
echo "cargo $*" >>"$FAKE_STATE/log"
mkdir -p "$HOME/.cargo/bin"
printf '#!/bin/sh\necho "bindgen 0.69.5"\n' >"$HOME/.cargo/bin/bindgen"
chmod +x "$HOME/.cargo/bin/bindgen"
EOS
cat >"$fake/python3" <<'EOS'
#!/bin/bash
# Only what setup.sh and env.sh ask of python3.
case "$*" in
-c*sysconfig*) echo "$FAKE_PYSCRIPTS" ;;
"-m pip --version") echo "pip 23.2.1" ;;
"-m pip install"*virtme-ng*)
	echo "pip ${*:3}" >>"$FAKE_STATE/log"
	printf '#!/bin/sh\nexit 0\n' >"$FAKE_PYSCRIPTS/vng"
	chmod +x "$FAKE_PYSCRIPTS/vng" ;;
*) echo "fake python3: unexpected: $*" >&2; exit 1 ;;
esac
EOS
chmod +x "$fake"/*

# Nothing but the fake tools and the base system (no ~/.cargo/bin, no pip scripts).
fresh() {
	env -i HOME="$home" PATH="$fake:/usr/sbin:/usr/bin:/sbin:/bin" FAKE_STATE="$state" \
		FAKE_PYSCRIPTS="$scripts" CXLVFIO_CACHE="$work/cache" "$@"
}
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n $1"; sed 's/^/# /' "$work/out"; }
check() { # check DESCRIPTION COMMAND...
	local d=$1
	shift
	if "$@" >>"$work/out" 2>&1; then ok "$d"; else not_ok "$d"; fi
}

echo "KTAP version 1"
echo "1..6"
: >"$work/out"
if fresh bash "$REPO/scripts/setup.sh" >"$work/out" 2>&1; then
	ok "setup.sh succeeds on a machine with none of the packages"
else
	not_ok "setup.sh succeeds on a machine with none of the packages (exit $?)"
fi
cp "$work/out" "$work/first-run"
wanted=$(sed -n '/^APT_PACKAGES=(/,/)/p' "$REPO/scripts/setup.sh" | tr -d '()' | sed 's/APT_PACKAGES=//' | tr -s ' \t\n' '\n' | sed '/^$/d' | sort)
got=$(sort -u "$state/installed")
: >"$work/out"
missing=$(comm -23 <(echo "$wanted") <(echo "$got"))
if [ -n "$wanted" ] && [ -z "$missing" ]; then ok "every Debian package it needs was installed"; else
	echo "never installed: $missing" >"$work/out"; not_ok "every Debian package it needs was installed"; fi
cp "$work/first-run" "$work/out"
check "it installed bindgen-cli 0.69.5 and virtme-ng" grep -q 'cargo install --locked bindgen-cli --version 0.69.5' "$state/log"
steps=$(grep -c '^setup: \[[1-3]/3\]' "$work/first-run")
if [ "$steps" = 3 ]; then ok "one progress line per step"; else not_ok "one progress line per step (saw $steps)"; fi
: >"$work/out"
before=$(wc -l <"$state/log")
if fresh bash "$REPO/scripts/setup.sh" >"$work/out" 2>&1 && [ "$(wc -l <"$state/log")" = "$before" ]; then
	ok "a second run installs nothing"
else
	not_ok "a second run installs nothing"
fi
# run-tests.sh sources env.sh before setup: after setup it must name the kernel
# package's cache directory, not the placeholder of a machine without it.
: >"$work/out"
: >"$state/installed"
rm -f "$state/updated"
tree=$(fresh bash -c 'set -euo pipefail; . "$1/scripts/env.sh"; "$1/scripts/setup.sh" >/dev/null; . "$1/scripts/env.sh"; echo "$KTREE_ROOT"' _ "$REPO" 2>>"$work/out")
if [ "$tree" = "$work/cache/linux-6.12.117-1_deb12u1" ]; then
	ok "after setup the scripts find the installed kernel package"
else
	echo "KTREE_ROOT=$tree" >>"$work/out"
	not_ok "after setup the scripts find the installed kernel package"
fi
exit $((failed > 0))
