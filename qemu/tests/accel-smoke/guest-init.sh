#!/bin/sh
# Guest /init for run.sh: enumerate the CXL test devices and poke them.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "=== GUEST START $(uname -r)"
r32() { devmem "$1" 32; }
w32() { devmem "$1" 32 "$2"; }
cfgw8() { # dev offset value: write one config byte through sysfs
	printf "\\$(printf '%03o' "$3")" | dd of="$1/config" bs=1 seek="$2" count=1 conv=notrunc 2>/dev/null
}
echo "--- PCI devices"
for d in /sys/bus/pci/devices/*; do
	echo "$(basename "$d") $(cat "$d/vendor"):$(cat "$d/device") class $(cat "$d/class")"
done
echo "--- CEDT"
od -A n -t x1 -v /sys/firmware/acpi/tables/CEDT | awk -f /cedt.awk
cfmws=$(od -A n -t x1 -v /sys/firmware/acpi/tables/CEDT | awk -f /cedt.awk | awk '/^CFMWS/{print $3; exit}')
for d in /sys/bus/pci/devices/*; do
	v=$(cat "$d/vendor"); c=$(cat "$d/class")
	case "$v:$c" in 0x1b36:0x120000 | 0x8086:0x050210) ;; *) continue ;; esac
	echo "--- $(basename "$d") config"
	od -A n -t x1 -v "$d/config" | awk -f /pciparse.awk
	# shellcheck disable=SC2046 # split the fields
	set -- $(head -n 1 "$d/resource")
	bar=$(($1)); size=$(($2 - $1 + 1))
	printf 'BAR0 at 0x%x size 0x%x (%d KiB) flags %s\n' "$bar" "$size" $((size / 1024)) "$3"

	# Memory decode on (Linux does not enable unbound devices)
	cmd=$(od -A n -t u1 -j 4 -N 1 "$d/config")
	cfgw8 "$d" 4 $((cmd | 2))
	# Component register block from the Register Locator DVSEC
	# shellcheck disable=SC2046 # split the fields
	set -- $(od -A n -t x1 -v "$d/config" | awk -f /pciparse.awk | awk '/block BIR/ && $5 == 1 {print $3, $7; exit}')
	bir=$1; off=$(($2))
	cbar=$(($(awk -v n=$((bir + 1)) 'NR == n {print $1}' "$d/resource")))
	cb=$((cbar + off))
	printf 'component block: BAR%d + 0x%x\n' "$bir" "$off"
	cm=$((cb + 0x1000))
	hdr=$(r32 $cm); printf 'CXL capability header %s (array size %d)\n' "$hdr" $((hdr >> 24))
	hdm=""
	i=1
	while [ $i -le $((hdr >> 24)) ]; do
		e=$(r32 $((cm + 4 * i)))
		printf '  cap %d: id %d version %d ptr 0x%x\n' $i $((e & 0xffff)) $(((e >> 16) & 0xf)) $((e >> 20))
		[ $((e & 0xffff)) = 5 ] && hdm=$((cm + (e >> 20)))
		i=$((i + 1))
	done
	hcap=$(r32 $hdm)
	printf 'HDM decoder capability %s: decoder count field %d\n' "$hcap" $((hcap & 0xf))
	for i in 1 2 3; do
		w32 $((hdm + 0x10 + i * 0x20)) 0x10000000
		printf 'decoder %d BASE_LO after writing 0x10000000: %s\n' $i "$(r32 $((hdm + 0x10 + i * 0x20)))"
		w32 $((hdm + 0x10 + i * 0x20)) 0
	done
	if [ "$c" = 0x120000 ]; then
		echo "--- cxl-accel BAR 0 slots"
		for s in 0 1 2 3; do
			a=$((bar + s * 0x10000))
			printf 'slot %d +0x%05x: ID %s COMP_OFFSET %s BAR_SIZE %s SLOT %s\n' $s $((s * 0x10000)) \
				"$(r32 $a)" "$(r32 $((a + 4)))" "$(r32 $((a + 8)))" "$(r32 $((a + 12)))"
		done
		printf 'hole in block (+0x2000): %s\n' "$(r32 $((cb + 0x2000)))"
		for s in 0 1 2 3; do
			a=$((bar + s * 0x10000))
			[ $((s * 0x10000)) = "$off" ] && continue
			w32 $((a + 0x10)) 0x$((s + 1))1
			w32 $((a + 0x100)) 0xcafe000$s
			w32 $((a + 0xfffc)) 0xbeef000$s
		done
		w32 $((bar + ((off + 0x10000) % 0x40000) + 0x10)) 0x77
		printf 'doorbell count %s, last doorbell %s\n' "$(r32 $((bar + ((off + 0x10000) % 0x40000) + 0x14)))" \
			"$(r32 $((bar + ((off + 0x10000) % 0x40000) + 0x10)))"
		a=$((bar + ((off + 0x10000) % 0x40000)))
		devmem $((a + 0x200)) 64 0x1122334455667788
		devmem $((a + 0x2f0)) 8 0xab
		printf '64-bit scratch: %s, upper half %s; byte write: %s\n' "$(devmem $((a + 0x200)) 64)" "$(r32 $((a + 0x204)))" "$(r32 $((a + 0x2f0)))"
		for s in 0 1 2 3; do
			a=$((bar + s * 0x10000))
			[ $((s * 0x10000)) = "$off" ] && continue
			printf 'slot %d scratch +0x100 %s +0xfffc %s\n' $s "$(r32 $((a + 0x100)))" "$(r32 $((a + 0xfffc)))"
		done
	fi
	# HDM decoder 0 -> CFMWS window, then memory through it
	if [ -n "$cfmws" ]; then
		base=$((cfmws))
		w32 $((hdm + 0x10)) $((base & 0xffffffff))
		w32 $((hdm + 0x14)) $((base >> 32))
		w32 $((hdm + 0x18)) 0x10000000
		w32 $((hdm + 0x1c)) 0
		w32 $((hdm + 0x20)) 0x200
		printf 'decoder 0 ctrl after commit: %s\n' "$(r32 $((hdm + 0x20)))"
		w32 $base 0x5a5aa5a5
		w32 $((base + 0x1000)) 0x12345678
		printf 'CXL.mem via window: [0]=%s [0x1000]=%s\n' "$(r32 $base)" "$(r32 $((base + 0x1000)))"
	fi
	if [ "$c" = 0x120000 ]; then
		# PCI PM: D3hot and back
		pm=$(od -A n -t u1 -j 52 -N 1 "$d/config"); pm=$((pm))
		while [ $pm -ne 0 ]; do
			id=$(od -A n -t u1 -j $pm -N 1 "$d/config"); [ $((id)) = 1 ] && break
			pm=$(($(od -A n -t u1 -j $((pm + 1)) -N 1 "$d/config")))
		done
		cfgw8 "$d" $((pm + 4)) 3
		printf 'PMCSR after D3hot write: %s; BAR0 ID in D3hot: %s\n' "$(od -A n -t x2 -j $((pm + 4)) -N 2 "$d/config")" "$(r32 $((bar + ((off + 0x10000) % 0x40000))))"
		cfgw8 "$d" $((pm + 4)) 0
		printf 'PMCSR after D0 write: %s; BAR0 ID in D0: %s\n' "$(od -A n -t x2 -j $((pm + 4)) -N 2 "$d/config")" "$(r32 $((bar + ((off + 0x10000) % 0x40000))))"
	fi
	# Reset through Linux (saves and restores config space): a bus reset here
	printf 'reset_method: %s\n' "$(cat "$d/reset_method" 2>&1)"
	echo 1 >"$d/reset"
	printf 'after reset: decoder 0 ctrl %s base %s\n' "$(r32 $((hdm + 0x20)))" "$(r32 $((hdm + 0x10)))"
	if [ "$c" = 0x120000 ]; then
		printf 'after reset: doorbell count %s, scratch %s\n' \
			"$(r32 $((bar + ((off + 0x10000) % 0x40000) + 0x14)))" "$(r32 $((bar + ((off + 0x10000) % 0x40000) + 0x100)))"
	fi
done
echo "=== GUEST DONE"
poweroff -f
