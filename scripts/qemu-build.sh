#!/usr/bin/env bash
# Build the project's own QEMU: Debian 13 (trixie)'s qemu 1:10.0.x source,
# Debian's patches, then the project's series qemu/patches/series; only
# x86_64-softmmu. Everything lives in the cache, outside the repo:
#
#   $CXLVFIO_CACHE/qemu/apt/            private apt config, lists and cache
#   $CXLVFIO_CACHE/qemu/dl/VERSION/     the source package (.dsc, tarballs)
#   $CXLVFIO_CACHE/qemu/venv/           meson >= 1.5
#   $CXLVFIO_CACHE/qemu/VERSION-HASH/   source tree, build tree and stamp
#   $CXLVFIO_CACHE/qemu/qemu-build.log  verbose output of the last run
#
# HASH covers the project series (series file and patches) and the configure
# flags, so a tree is rebuilt only when the Debian version or those change.
# The last line on stdout is the path of qemu-system-x86_64.
#
#   scripts/qemu-build.sh               build if needed, print the path
#   scripts/qemu-build.sh --print-path  print the path if built, else exit 1
#
# QEMU_APT_UPDATE=0 skips the apt-get update of the private index.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CXLVFIO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cxl-vfio-pci}
QROOT=$CACHE/qemu
SERIES_DIR=$REPO/qemu/patches
LOG=$QROOT/qemu-build.log
LOCK=/tmp/cxlvfio-bigbuild.lock
SUITE_LINE="deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main"

# Debian's firmware directories (seabios, ipxe-qemu, qemu-system-data), so the
# binary runs without -L.
FIRMWAREPATH=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu
CONFIGURE_FLAGS=(--target-list=x86_64-softmmu --without-default-features
	--enable-tcg --enable-fdt=system --disable-install-blobs --enable-virtfs
	--enable-attr --disable-docs --firmwarepath="$FIRMWAREPATH")
BUILD_DEPS=(gcc make pkg-config patch xz-utils ninja-build python3 python3-venv
	libglib2.0-dev zlib1g-dev libpixman-1-dev libfdt-dev libcap-ng-dev libattr1-dev)
RUN_DEPS=(seabios ipxe-qemu qemu-system-data)

print_path=0
case "${1:-}" in
"") ;;
--print-path) print_path=1 ;;
*)
	echo "usage: $0 [--print-path]" >&2
	exit 2
	;;
esac

step() { echo "qemu-build: $*"; }
die() {
	echo "qemu-build: error: $*" >&2
	exit 1
}

APT_DIR=$QROOT/apt
APT_OPTS=(-o "Dir::Etc::sourcelist=$APT_DIR/sources.list" -o "Dir::Etc::sourceparts=-"
	-o "Dir::State::Lists=$APT_DIR/lists" -o "Dir::Cache=$APT_DIR/cache"
	-o "APT::Sandbox::User=root")

apt_setup() {
	mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial"
	if [ "$(cat "$APT_DIR/sources.list" 2>/dev/null)" != "$SUITE_LINE" ]; then
		echo "$SUITE_LINE" >"$APT_DIR/sources.list"
	fi
}

# Newest 1:10.0.* version of source package qemu in the private index.
newest_version() {
	local v best=""
	while read -r v; do
		case "$v" in
		1:10.0.*) ;;
		*) continue ;;
		esac
		if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$best"; then
			best=$v
		fi
	done < <(apt-cache "${APT_OPTS[@]}" showsrc qemu 2>/dev/null |
		awk '/^Package: /{p=$2} /^Version: /{if (p == "qemu") print $2}')
	printf '%s' "$best"
}

series_hash() {
	{
		printf '%s\n' "${CONFIGURE_FLAGS[@]}"
		if [ -f "$SERIES_DIR/series" ]; then
			cat "$SERIES_DIR/series"
			series_patches | while read -r p; do
				sha256sum <"$SERIES_DIR/$p"
			done
		fi
	} | sha256sum | cut -c1-12
}

series_patches() {
	[ -f "$SERIES_DIR/series" ] || return 0
	sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$SERIES_DIR/series"
}

tree_dir() { # VERSION -> build directory
	printf '%s/%s-%s' "$QROOT" "$(printf '%s' "$1" | tr ':~+' '__p')" "$(series_hash)"
}

# --print-path: no network, no apt, no build.
if [ "$print_path" = 1 ]; then
	[ -d "$APT_DIR/lists" ] || exit 1
	apt_setup
	ver=$(newest_version)
	[ -n "$ver" ] || exit 1
	dir=$(tree_dir "$ver")
	[ -f "$dir/stamp" ] && [ -x "$dir/bin/qemu-system-x86_64" ] || exit 1
	echo "$dir/bin/qemu-system-x86_64"
	exit 0
fi

mkdir -p "$QROOT"
: >"$LOG"
step "log: $LOG"

apt_install() {
	local p missing=()
	for p in "$@"; do
		if [ "$(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
			missing+=("$p")
		fi
	done
	[ "${#missing[@]}" -gt 0 ] || return 0
	step "apt-get install ${missing[*]}"
	[ "$(id -u)" = 0 ] || die "need root to apt-get install ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$LOG" 2>&1; then
		apt-get update -q >>"$LOG" 2>&1 || true
		apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$LOG" 2>&1 ||
			die "apt-get install failed, see $LOG"
	fi
}

# 1. The private trixie source index.
apt_setup
if [ "${QEMU_APT_UPDATE:-1}" != 0 ]; then
	step "apt-get update (private trixie deb-src index in $APT_DIR)"
	if ! apt-get "${APT_OPTS[@]}" update >>"$LOG" 2>&1; then
		[ -n "$(newest_version)" ] || die "apt-get update of the private index failed, see $LOG"
		step "apt-get update failed; using the index from the last update"
	fi
fi
VER=$(newest_version)
if [ -z "$VER" ]; then
	other=$(apt-cache "${APT_OPTS[@]}" showsrc qemu 2>/dev/null | awk '/^Version: /{print $2}' | tr '\n' ' ')
	die "trixie serves no qemu 1:10.0.x source (found: ${other:-nothing}); refusing"
fi
DIR=$(tree_dir "$VER")
# The binary is copied out of the build tree: next to build/qemu-bundle it
# would look for firmware there instead of in FIRMWAREPATH.
BIN=$DIR/bin/qemu-system-x86_64
step "Debian source: qemu $VER; series hash $(series_hash)"

if [ -f "$DIR/stamp" ] && [ -x "$BIN" ]; then
	apt_install "${RUN_DEPS[@]}"
	step "up to date: $DIR"
	echo "$BIN"
	exit 0
fi

# 2. Build dependencies.
apt_install "${BUILD_DEPS[@]}" "${RUN_DEPS[@]}"

VENV=$QROOT/venv
if ! "$VENV/bin/python3" -c 'import sys, mesonbuild.coredata as c, pycotap
v = tuple(int(x) for x in c.version.split(".")[:2]); sys.exit(not (1, 5) <= v < (1, 6))' 2>/dev/null; then
	step "meson 1.5 venv in $VENV"
	rm -rf "$VENV"
	/usr/bin/python3 -m venv "$VENV" >>"$LOG" 2>&1 || die "python3 -m venv failed, see $LOG"
	"$VENV/bin/pip" install -q 'meson>=1.5,<1.6' pycotap >>"$LOG" 2>&1 ||
		die "pip install meson failed, see $LOG"
fi

# 3. The source package.
DL=$QROOT/dl/$(printf '%s' "$VER" | tr ':~+' '__p')
find_dl() { find "$DL" -maxdepth 1 -name "$1" 2>/dev/null | head -n1 || true; }
dsc=$(find_dl 'qemu_*.dsc')
orig=$(find_dl 'qemu_*.orig.tar.*')
deb=$(find_dl 'qemu_*.debian.tar.*')
if [ -z "$dsc" ] || [ -z "$orig" ] || [ -z "$deb" ]; then
	step "fetching source package qemu=$VER"
	rm -rf "$DL.tmp"
	mkdir -p "$DL.tmp"
	(cd "$DL.tmp" && apt-get "${APT_OPTS[@]}" source --download-only "qemu=$VER") >>"$LOG" 2>&1 ||
		die "apt-get source failed, see $LOG"
	rm -rf "$DL"
	mv "$DL.tmp" "$DL"
	orig=$(find_dl 'qemu_*.orig.tar.*')
	deb=$(find_dl 'qemu_*.debian.tar.*')
	if [ -z "$orig" ] || [ -z "$deb" ]; then
		die "no orig/debian tarball in $DL"
	fi
fi

# 4. Unpack and patch (once per tree): Debian's series, then ours.
SRC=$DIR/src
if [ ! -f "$SRC/.cxlvfio-patched" ]; then
	step "unpacking $(basename "$orig") + $(basename "$deb")"
	rm -rf "$DIR"
	mkdir -p "$DIR/src.tmp"
	tar --no-same-owner -xf "$orig" -C "$DIR/src.tmp" --strip-components=1
	tar --no-same-owner -xf "$deb" -C "$DIR/src.tmp"
	n=0
	while read -r p opts; do
		# shellcheck disable=SC2086 # options from the series file
		patch -d "$DIR/src.tmp" ${opts:--p1} --batch --forward --no-backup-if-mismatch \
			<"$DIR/src.tmp/debian/patches/$p" >>"$LOG" 2>&1 || die "Debian patch $p failed, see $LOG"
		n=$((n + 1))
	done < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$DIR/src.tmp/debian/patches/series")
	step "applied $n Debian patches"
	n=0
	while read -r p; do
		[ -f "$SERIES_DIR/$p" ] || die "qemu/patches/series names a missing patch: $p"
		echo "== $p" >>"$LOG"
		patch -d "$DIR/src.tmp" -p1 --batch --forward --no-backup-if-mismatch \
			<"$SERIES_DIR/$p" >>"$LOG" 2>&1 || die "project patch $p failed, see $LOG"
		step "applied $p"
		n=$((n + 1))
	done < <(series_patches)
	[ "$n" -gt 0 ] || step "qemu/patches/series is empty or missing: plain Debian QEMU"
	touch "$DIR/src.tmp/.cxlvfio-patched"
	mv "$DIR/src.tmp" "$SRC"
fi

# 5. Configure and build, one big build at a time on this machine.
touch "$LOCK" 2>/dev/null || true
(
	exec 9>>"$LOCK"
	if ! flock -n 9; then
		step "waiting for $LOCK (another big build is running)"
		flock 9
	fi
	cd "$DIR"
	if [ ! -f build/build.ninja ]; then
		step "configure: ${CONFIGURE_FLAGS[*]}"
		rm -rf build
		mkdir build
		(cd build && nice -n 10 ../src/configure --python="$VENV/bin/python3" \
			"${CONFIGURE_FLAGS[@]}") >>"$LOG" 2>&1 || die "configure failed, see $LOG"
	fi
	step "ninja -j2 qemu-system-x86_64 (nice 10; a few minutes when cold)"
	start=$(date +%s)
	nice -n 10 ninja -C build -j2 qemu-system-x86_64 >>"$LOG" 2>&1 ||
		die "build failed, see $LOG (tail: $(tail -n 3 "$LOG" | tr '\n' ' '))"
	step "built in $(($(date +%s) - start)) s"
)

mkdir -p "$DIR/bin" "$DIR/share"
cp "$DIR/build/qemu-system-x86_64" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
ln -sfn ../build/qemu-bundle/usr/local/share/qemu "$DIR/share/qemu" # keymaps
"$BIN" -device help 2>/dev/null | grep -q '"cxl-type3"' ||
	die "$BIN does not list cxl-type3, see $LOG"
"$BIN" -L help 2>/dev/null | grep -qx /usr/share/seabios ||
	die "$BIN does not look for firmware in /usr/share/seabios"
printf '%s\n' "$VER" >"$DIR/stamp"

# Keep this tree and the one built before it (about 800 MB each).
n=0
while read -r old; do
	n=$((n + 1))
	if [ "$n" -gt 2 ] || [ ! -f "$old/stamp" ]; then
		[ "$old" = "$DIR" ] && continue
		step "removing old tree $old"
		rm -rf "$old"
	fi
done < <(find "$QROOT" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended \
	-regex '.*/[0-9]+_10\.0\.[^/]*-[0-9a-f]{12}' -printf '%T@ %p\n' | sort -rn | cut -d' ' -f2-)
step "done: $DIR"
echo "$BIN"
