# Parse PCI config space bytes (od -t x1 output) and print what we care about.
function h(s,   i, v) {
	v = 0; s = tolower(s)
	for (i = 1; i <= length(s); i++)
		v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
	return v
}
function hx(v) { return sprintf("%04x%04x", int(v / 65536), v % 65536) }
function w(o) { return B[o] + B[o + 1] * 256 }
function d(o) { return w(o) + w(o + 2) * 65536 }
{ for (i = 1; i <= NF; i++) B[n++] = h($i) }
END {
	printf "ids %04x:%04x class %06x rev %02x cmd %04x status %04x\n", w(0), w(2), int(d(8) / 256), B[8], w(4), w(6)
	printf "bar0 %s bar1 %s bar2 %s\n", hx(d(0x10)), hx(d(0x14)), hx(d(0x18))
	p = B[0x34]
	while (p) {
		printf "cap @0x%02x id 0x%02x", p, B[p]
		if (B[p] == 1) printf " (PM) PMC %04x PMCSR %04x", w(p + 2), w(p + 4)
		if (B[p] == 0x10) printf " (PCIe) flags %04x", w(p + 2)
		printf "\n"
		p = B[p + 1]
	}
	p = 256
	while (p && n > 256) {
		hdr = d(p); id = and(hdr, 0xffff); nxt = rshift(hdr, 20)
		printf "ecap @0x%03x id 0x%04x", p, id
		if (id == 0x23) {
			h1 = d(p + 4); vid = and(h1, 0xffff); rev = and(rshift(h1, 16), 0xf); len = rshift(h1, 20)
			did = w(p + 8)
			printf " DVSEC vendor 0x%04x id %d rev %d len 0x%x", vid, did, rev, len
			if (did == 0) {
				cap = w(p + 0xa)
				printf "\n   cap 0x%04x (Cache_Capable %d IO %d Mem %d HwInit %d HDM_Count %d) ctrl 0x%04x cap2 0x%04x",
					cap, and(cap, 1), and(rshift(cap, 1), 1), and(rshift(cap, 2), 1), and(rshift(cap, 3), 1), and(rshift(cap, 4), 3), w(p + 0xc), w(p + 0x16)
				printf "\n   range1 size %s_%s base %s_%s", hx(d(p + 0x18)), hx(d(p + 0x1c)), hx(d(p + 0x20)), hx(d(p + 0x24))
				printf "\n   range2 size %s_%s base %s_%s", hx(d(p + 0x28)), hx(d(p + 0x2c)), hx(d(p + 0x30)), hx(d(p + 0x34))
			}
			if (did == 8) {
				for (e = p + 0xc; e + 8 <= p + len; e += 8) {
					lo = d(e); hi = d(e + 4)
					printf "\n   block BIR %d RBI %d offset 0x%s (hi 0x%s)", lo % 8, int(lo / 256) % 256, hx(int(lo / 65536) * 65536), hx(hi)
				}
			}
		}
		printf "\n"
		p = nxt
	}
}
