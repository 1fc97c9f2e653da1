package policy

import "testing"

// Config and requests meet on the form a browser writes an IP host in.
func TestCanonicalIPv6(t *testing.T) {
	for in, want := range map[string]string{
		"::1": "::1", "0:0::1": "::1", "::ABCD": "::abcd",
		"2001:DB8:0:0:0:0:0:1": "2001:db8::1", "2001:db8:0:0:1:0:0:1": "2001:db8::1:0:0:1",
	} {
		if got, ok := CanonicalIPv6(in); !ok || got != want {
			t.Errorf("CanonicalIPv6(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"acme.test", "127.0.0.1", "fe80::1%eth0", "::ffff:1.2.3.4", "a:b:c", ""} {
		if got, ok := CanonicalIPv6(in); ok || got != in {
			t.Errorf("CanonicalIPv6(%q) = %q, %v; want it unchanged and not ok", in, got, ok)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = CanonicalIPv6("2001:db8::1") }); n != 0 {
		t.Errorf("CanonicalIPv6 of a canonical address allocates %v times", n)
	}
}

// Each odd spelling is one a browser turns into a dotted quad, so a host
// configured so would match no request.
func TestOddIPv4(t *testing.T) {
	for _, odd := range []string{"127.1", "0x7f.0.0.1", "2130706433", "127.000.000.001", "1.2.3.0x4", "a.0x", "host.123", "1.2.3.4.5"} {
		if !OddIPv4(odd) {
			t.Errorf("OddIPv4(%q) = false; a browser reads it as another IPv4 address", odd)
		}
	}
	for _, ok := range []string{"127.0.0.1", "10.1.2.3", "acme.test", "x1.test", "0xfoo.test", "123.example", "localhost", "1.2.3.4."} {
		if OddIPv4(ok) {
			t.Errorf("OddIPv4(%q) = true; want false", ok)
		}
	}
}
