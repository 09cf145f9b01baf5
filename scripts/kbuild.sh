#!/usr/bin/env bash
# Build the test kernel and modules from the pristine base tree, the patch
# series (patches/series) and the overlay (every file under the repo's kernel
# paths), configured from configs/cxl-vfio-test.config on top of tinyconfig.
# KERNEL_FLAVOR=sanitize (see scripts/env.sh): the same tree, configured from the test
# fragment and then configs/cxl-vfio-sanitize.config, built in its own directory
# (build-sanitize/) with its own configuration stamp (state/config-sanitize.sha).
#
# Incremental and never stale:
#  - the source tree is unpacked once; a change of the patch series restores
#    every file the old series touched, then applies the new one;
#  - overlay files are copied only when their content changed (mtimes of
#    unchanged files are kept, so kbuild rebuilds only what it must), and a file
#    removed from the repo is removed from the tree;
#  - the configuration is regenerated when the fragment changes.
set -euo pipefail
. "$(dirname "$0")/env.sh"

OVERLAY_DIRS=(drivers rust include Documentation samples)
STATE="$KTREE_ROOT/state"
log() { echo "kbuild: $*"; }

[ -f "$KSRC_TARBALL" ] || { echo "kbuild: $KSRC_TARBALL missing: run scripts/setup.sh" >&2; exit 1; }
mkdir -p "$KTREE_ROOT" "$KBUILD" "$STATE"

# 1. Unpack the pristine tree once.
if [ ! -f "$STATE/unpacked" ]; then
	log "unpacking $KSRC_TARBALL into $KSRC"
	rm -rf "$KSRC" "$KTREE_ROOT/unpack.tmp" "$STATE"/*
	mkdir -p "$KTREE_ROOT/unpack.tmp"
	tar -C "$KTREE_ROOT/unpack.tmp" -xf "$KSRC_TARBALL"
	mv "$KTREE_ROOT/unpack.tmp"/linux-source-6.12 "$KSRC"
	rmdir "$KTREE_ROOT/unpack.tmp"
	touch "$STATE/unpacked"
fi

# 2. Patch series.
series_files() { grep -v '^\s*\(#\|$\)' "$REPO/patches/series" 2>/dev/null || true; }
series_hash() {
	{ cat "$REPO/patches/series" 2>/dev/null; for p in $(series_files); do cat "$REPO/patches/$p"; done; } |
		sha256sum | cut -d' ' -f1
}
want=$(series_hash)
have=$(cat "$STATE/series.sha" 2>/dev/null || echo none)
if [ "$want" != "$have" ]; then
	if [ -f "$STATE/patched-files" ]; then
		log "patch series changed: restoring the files the old series touched"
		while read -r f; do
			if [ -f "$STATE/orig/$f" ]; then
				cp "$STATE/orig/$f" "$KSRC/$f" # new mtime: kbuild rebuilds its users
			else
				rm -f "$KSRC/$f"
			fi
		done <"$STATE/patched-files"
	fi
	rm -rf "$STATE/orig" "$STATE/patched-files" "$STATE/series.sha"
	mkdir -p "$STATE/orig"
	touch "$STATE/patched-files"
	for p in $(series_files); do
		log "applying $p"
		for f in $(sed -n 's#^+++ b/\([^[:space:]]*\).*#\1#p; s#^--- a/\([^[:space:]]*\).*#\1#p' "$REPO/patches/$p" | sort -u); do
			grep -qxF "$f" "$STATE/patched-files" && continue
			echo "$f" >>"$STATE/patched-files"
			if [ -f "$KSRC/$f" ]; then
				mkdir -p "$(dirname "$STATE/orig/$f")"
				cp -p "$KSRC/$f" "$STATE/orig/$f"
			fi
		done
		patch -d "$KSRC" -p1 --forward --no-backup-if-mismatch --quiet <"$REPO/patches/$p"
	done
	echo "$want" >"$STATE/series.sha"
fi

# 3. Overlay.
cd "$REPO"
git_tracked_or_present() {
	# Files in the overlay directories, tracked or new (not ignored).
	git ls-files --cached --others --exclude-standard -- "${OVERLAY_DIRS[@]}" 2>/dev/null |
		while read -r f; do [ -f "$f" ] && echo "$f"; done | sort -u
}
git_tracked_or_present >"$STATE/overlay.new"
while read -r f; do
	if [ -f "$STATE/orig/$f" ] || { [ -f "$KSRC/$f" ] && ! grep -qxF "$f" "$STATE/overlay-files" 2>/dev/null; }; then
		echo "kbuild: overlay file $f would replace an upstream file; change it with a patch instead" >&2
		exit 1
	fi
	if ! cmp -s "$f" "$KSRC/$f"; then
		mkdir -p "$(dirname "$KSRC/$f")"
		cp "$f" "$KSRC/$f"
		log "overlay $f"
	fi
done <"$STATE/overlay.new"
if [ -f "$STATE/overlay-files" ]; then
	comm -23 "$STATE/overlay-files" "$STATE/overlay.new" | while read -r f; do
		log "removing $f (gone from the repo)"
		rm -f "$KSRC/$f"
	done
fi
mv "$STATE/overlay.new" "$STATE/overlay-files"

# 4. Configuration.
FRAGMENT=${KFRAGMENT:-$REPO/configs/cxl-vfio-test.config}
fragments=("$FRAGMENT")
config_stamp=$STATE/config.sha
if [ "$KERNEL_FLAVOR" = sanitize ]; then
	fragments+=("$REPO/configs/cxl-vfio-sanitize.config")
	config_stamp=$STATE/config-sanitize.sha
fi
cfg_want=$(cat "${fragments[@]}" "$STATE/series.sha" | sha256sum | cut -d' ' -f1)
if [ "$cfg_want" != "$(cat "$config_stamp" 2>/dev/null)" ] || [ ! -f "$KBUILD/.config" ]; then
	log "configuring from $(for f in "${fragments[@]}"; do basename "$f"; done | paste -sd+)"
	"${KMAKE[@]}" -s tinyconfig >/dev/null
	(cd "$KBUILD" && KCONFIG_CONFIG=.config "$KSRC/scripts/kconfig/merge_config.sh" -m -O "$KBUILD" .config "${fragments[@]}" >/dev/null)
	"${KMAKE[@]}" -s olddefconfig >/dev/null
	# Every symbol each fragment asks for must have landed (unless a later fragment sets it).
	bad=0
	for ((i = 0; i < ${#fragments[@]}; i++)); do
		while read -r line; do
			case "$line" in
			CONFIG_*=*) s=${line%%=*} ;;
			"# CONFIG_"*" is not set") s=${line#\# }; s=${s%% *} ;;
			*) continue ;;
			esac
			for later in "${fragments[@]:i+1}"; do
				grep -q "^$s=\|^# $s is not set" "$later" && continue 2
			done
			case "$line" in
			CONFIG_*=*) grep -qxF "$line" "$KBUILD/.config" || { echo "kbuild: config: wanted $line, got: $(grep "^$s=\|^# $s " "$KBUILD/.config" || echo unset)" >&2; bad=1; } ;;
			*) grep -q "^$s=" "$KBUILD/.config" && { echo "kbuild: config: wanted $s unset" >&2; bad=1; } ;;
			esac
		done <"${fragments[i]}"
	done
	[ "$bad" = 0 ] || exit 1
	echo "$cfg_want" >"$config_stamp"
fi

# 5. Build.
log "building $(make -s -C "$KSRC" kernelversion) in $KBUILD"
"${KMAKE[@]}" ${KBUILD_EXTRA:-} bzImage modules
log "built base kernel $(make -s -C "$KSRC" kernelversion): $KBUILD/arch/x86/boot/bzImage"
