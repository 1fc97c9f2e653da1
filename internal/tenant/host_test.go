package tenant

import (
	"strings"
	"testing"
)

// TestConfiguredHostMatchesItsRequests: a configured host either loads and
// is found for the Host a browser (and Caddy's host matcher) uses for it,
// or is a config error. An IDN host
// written in Unicode (as Caddy accepts it in a site address and a host
// matcher, which convert it to punycode) must not load as a host that no
// request can ever match: the tenant would silently lose its host binding,
// and another tenant's tokens and sessions would be accepted on its host.
func TestConfiguredHostMatchesItsRequests(t *testing.T) {
	k := []SecretConfig{{Secret: strings.Repeat("k", 32)}}
	for _, c := range []struct{ configured, onTheWire string }{
		{"bücher.test", "xn--bcher-kva.test"},
		{"Bücher.Test", "xn--bcher-kva.test"},
		{"portal.münchen.test", "portal.xn--mnchen-3ya.test"},
		// Browsers send an IPv6 host in its RFC 5952 form.
		{"::ABCD", "[::abcd]"},
		{"0:0::1", "[::1]:8443"},
		{"2001:DB8:0:0:0:0:0:1", "[2001:db8::1]"},
		{"[2001:db8::1]", "[2001:db8::1]"},
		// Browsers send an IPv4 host as a dotted quad.
		{"127.1", ""},
		{"0x7f.0.0.1", ""},
		{"2130706433", ""},
		{"127.000.000.001", ""},
		{"acme..test", ""},    // no request can carry it (policy.CheckHost refuses it)
		{"acme.test..", ""},   // idem
		{"-acme.test", ""},    // idem
		{"acme\x00.test", ""}, // idem
		{"acme.test\t", ""},   // idem
	} {
		reg, err := NewRegistry([]Config{{ID: "acme", Keys: k, Hosts: []string{c.configured}}})
		if err != nil {
			if c.onTheWire != "" {
				t.Errorf("hosts %q refused (%v), but browsers reach it as %q", c.configured, err, c.onTheWire)
			}
			continue // refused at load: fine
		}
		if c.onTheWire == "" {
			t.Errorf("hosts %q loaded, but no request Host can ever match it (the tenant has no host binding)", c.configured)
			continue
		}
		if got, ok := reg.ByHost(HostOf(c.onTheWire)); !ok || got.ID != "acme" {
			t.Errorf("hosts %q loaded, but a request with Host %q (what browsers send, and what Caddy's host matcher matches) finds no tenant", c.configured, c.onTheWire)
		}
	}
}

// TestDuplicateHostAcrossIDNSpellings: two tenants claiming the same host
// in two spellings (Unicode and punycode) is a duplicate host.
func TestDuplicateHostAcrossIDNSpellings(t *testing.T) {
	k := []SecretConfig{{Secret: strings.Repeat("k", 32)}}
	_, err := NewRegistry([]Config{
		{ID: "a", Keys: k, Hosts: []string{"bücher.test"}},
		{ID: "b", Keys: k, Hosts: []string{"xn--bcher-kva.test"}},
	})
	if err == nil {
		t.Fatal("two tenants claim the same host (bücher.test = xn--bcher-kva.test); want a duplicate host error")
	}
}
