package policy

import (
	"net/netip"
	"strings"
)

// Hosts that are IP addresses, written as browsers write them (the WHATWG
// URL host serializer): an IPv6 address in RFC 5952's form, an IPv4
// address as four decimal numbers. A configured host or origin spelled
// otherwise names a host that no browser request carries, and a request
// that spells it otherwise is put in that form before it is compared.

// CanonicalIPv6 returns h, an IPv6 address without brackets or zone, in
// RFC 5952's form: h itself, without allocating, when it is so already.
// ok is false, and h returned as it is, for anything else; an IPv4-mapped
// address too, which netip and browsers write differently.
func CanonicalIPv6(h string) (canonical string, ok bool) {
	if strings.IndexByte(h, ':') < 0 {
		return h, false
	}
	a, err := netip.ParseAddr(h)
	if err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" {
		return h, false
	}
	var buf [48]byte
	if b := a.AppendTo(buf[:0]); string(b) != h {
		return string(b), true
	}
	return h, true
}

// canonicalHostPort is a Host header with a bracketed IPv6 address in
// RFC 5952's form; any other Host as it is, without allocating.
func canonicalHostPort(hostport string) string {
	if !strings.HasPrefix(hostport, "[") {
		return hostport
	}
	end := strings.IndexByte(hostport, ']')
	if end < 0 {
		return hostport
	}
	if c, ok := CanonicalIPv6(strings.ToLower(hostport[1:end])); ok && c != hostport[1:end] {
		return "[" + c + "]" + hostport[end+1:]
	}
	return hostport
}

// OddIPv4 reports whether a browser's URL parser reads host name h as an
// IPv4 address (its last label is a number: WHATWG URL's "ends in a
// number") that is not written as four decimal numbers, as 127.1,
// 0x7f.0.0.1, 2130706433 or 127.000.000.001: the browser sends 127.0.0.1
// for each.
func OddIPv4(h string) bool {
	h = strings.TrimSuffix(h, ".")
	last := h[strings.LastIndexByte(h, '.')+1:]
	if !isNumberLabel(last) {
		return false
	}
	a, err := netip.ParseAddr(h)
	return err != nil || !a.Is4()
}

// isNumberLabel: all decimal digits, or 0x / 0X and hex digits (none too).
func isNumberLabel(s string) bool {
	if s == "" {
		return false
	}
	digits := func(s string, ok func(byte) bool) bool {
		for i := 0; i < len(s); i++ {
			if !ok(s[i]) {
				return false
			}
		}
		return true
	}
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		return digits(s[2:], isHex)
	}
	return digits(s, func(c byte) bool { return '0' <= c && c <= '9' })
}
