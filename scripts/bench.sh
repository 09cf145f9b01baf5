#!/usr/bin/env bash
# `make bench`: one VM boot (the type-3 with 1 GiB of memory at a 1 GiB-aligned base, so that
# PUD mappings are possible), tests/vm/bench.sh in it, then the measurements side by side:
# a table on stdout and a JSON file (BENCH_JSON, default bench.json in the log directory).
# Ratios come from one run; the absolute times are TCG's. Nothing is asserted.
#   scripts/bench.sh            (BENCH_LOG_DIR: where the VM's output and logs go)
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$REPO"
logs=${BENCH_LOG_DIR:-$(mktemp -d /tmp/cxlvfio-bench.XXXXXX)}
mkdir -p "$logs"
json=${BENCH_JSON:-$logs/bench.json}
echo "bench: one VM boot, logs in $logs"
# no_debug_objects: the test kernel's CONFIG_DEBUG_OBJECTS checks every page of a freed kernel
# mapping, which makes closing a device with 1 GiB of memory cost about 0.5 s under TCG (see
# the README); the benchmark measures the driver, not that debug option.
VM_APPEND="loglevel=7 no_debug_objects" VM_CXL_MEM_SIZE=1G VM_LOG_PREFIX="$logs/vm" scripts/vm-run.sh -- tests/vm/bench.sh >"$logs/bench.out" 2>&1 || {
	tail -n 20 "$logs/bench.out"
	echo "bench: the VM run failed (console and guest kernel log: $logs/vm.console, $logs/vm.dmesg)" >&2
	exit 1
}
python3 - "$logs/bench.out" "$json" <<'PY'
import json, re, sys
vals = {}
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"^bench: (\w+)\.(\w+) (\S+)$", line.strip())
    if m:
        vals.setdefault(m.group(1), {})[m.group(2)] = float(m.group(3))
cxl, scrub, plain = (vals.get(p, {}) for p in ("cxl", "scrub", "plain"))
rows = []
def row(what, a_name, a, b_name, b, unit):
    ratio = a / b if a is not None and b else None
    rows.append({"what": what, "a": a_name, "a_value": a, "b": b_name, "b_value": b,
                 "unit": unit, "ratio": ratio})
row("open", "CXL", cxl.get("open_ms"), "disable_cxl=1", plain.get("open_ms"), "ms")
row("close", "CXL", cxl.get("close_ms"), "disable_cxl=1", plain.get("close_ms"), "ms")
row("VFIO_DEVICE_RESET", "CXL", cxl.get("reset_ms"), "disable_cxl=1", plain.get("reset_ms"), "ms")
row("4-byte pread", "COMP_REGS", cxl.get("comp_regs_pread_us"), "config space", cxl.get("config_pread_us"), "us")
row("config pread", "CXL", cxl.get("config_pread_us"), "disable_cxl=1", plain.get("config_pread_us"), "us")
for k in ("pud", "pmd", "pte"):
    row(f"faults per GiB, {k.upper()}-able mapping", k.upper(), cxl.get(f"faults_per_gib_{k}"),
        "PUD", cxl.get("faults_per_gib_pud"), "faults")
    rows.append({"what": f"latency of a faulting read, {k.upper()}-able mapping", "a": "median",
                 "a_value": cxl.get(f"fault_median_us_{k}"), "b": "longest",
                 "b_value": cxl.get(f"fault_max_us_{k}"), "unit": "us", "ratio": None})
row("first touch of a 2 MiB chunk", "scrubbing", scrub.get("scrub_chunk_ms"),
    "scrubbed", scrub.get("touch_chunk_ms"), "ms")
fmt = lambda v: "-" if v is None else (f"{v:.0f}" if v >= 100 else f"{v:.3g}")
print("| what | a | b | a / b |")
print("| --- | --- | --- | --- |")
for r in rows:
    ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
    print(f"| {r['what']} | {r['a']}: {fmt(r['a_value'])} {r['unit']} | {r['b']}: {fmt(r['b_value'])} {r['unit']} | {ratio} |")
print(f"(DPA region: {cxl.get('dpa_mib', 0):.0f} MiB; booted with no_debug_objects; absolute times are TCG's; ratios from one run)")
json.dump({"phases": vals, "rows": rows}, open(sys.argv[2], "w"), indent=1)
print(f"bench: JSON in {sys.argv[2]}")
PY
