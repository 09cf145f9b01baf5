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
	o = 36
	while (o < n) {
		t = B[o]; l = w(o + 2)
		if (t == 0) printf "CHBS uid %d base 0x%s%s len 0x%s\n", d(o + 4), hx(d(o + 20)), hx(d(o + 16)), hx(d(o + 24))
		if (t == 1) printf "CFMWS base 0x%s%s size 0x%s%s\n", hx(d(o + 12)), hx(d(o + 8)), hx(d(o + 20)), hx(d(o + 16))
		if (l == 0) break
		o += l
	}
}
