#!/usr/bin/env bash
# Clippy over the kernel-side Rust we own: the abstractions in rust/kernel, their
# doctests, and the driver. Rebuilds them with CLIPPY=1 (make LLVM=1 CLIPPY=1) and
# fails on any warning located in our files. Prints each warning.
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$REPO"
scripts/kbuild.sh >/dev/null 2>&1
ours=$(git ls-files --cached --others --exclude-standard 'rust/*.rs' 'drivers/*.rs')
# Touch our files in the tree so that clippy sees every one of them again.
for f in $ours; do touch "$KSRC/$f"; done
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"${KMAKE[@]}" CLIPPY=1 bzImage modules >"$log" 2>&1 || { tail -n 40 "$log"; exit 1; }
# Warnings in the generated doctests are ours when the doctest they sit in is.
gen="$KBUILD/rust/doctests_kernel_generated.rs"
doctest_owner() { # LINE -> source path of the doctest around that line
	awk -v n="$1" 'NR <= n && /\.location: / { sub(/.*\.location: /, ""); sub(/:[0-9]+.*/, ""); f = $0 } NR == n { print f; exit }' "$gen"
}
bad=0
while IFS= read -r loc; do
	file=${loc%%:*}
	file=${file#"$KSRC/"}
	if [ "$file" = rust/doctests_kernel_generated.rs ]; then
		line=${loc#*:}
		file=$(doctest_owner "${line%%:*}")
	fi
	if grep -qxF "$file" <<<"$ours"; then
		echo "clippy: $loc (in $file)"
		bad=1
	fi
done < <(grep -A3 '^warning\|^error' "$log" | sed -n 's/^ *--> *//p')
[ "$bad" = 0 ] && echo "clippy: clean ($(echo "$ours" | wc -l) files)"
[ "$bad" = 0 ] && { scripts/kbuild.sh >/dev/null 2>&1; } # back to the plain build for the tests
exit "$bad"
