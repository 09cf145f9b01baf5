#!/usr/bin/env bash
# Every `unsafe {` block in the kernel-side Rust we own must be preceded by a
# `// SAFETY:` comment within the lines of the statement it belongs to.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
for f in $(git ls-files --cached --others --exclude-standard 'rust/*.rs'); do
	awk -v f="$f" '
		/\/\/ SAFETY:/ { last = NR }
		/unsafe \{/ && !/^\s*\/\/\// {
			if (NR - last > 6) { printf "%s:%d: unsafe block without a SAFETY comment\n", f, NR; bad = 1 }
		}
		END { exit bad }' "$f" || bad=1
done
exit $bad
