package gateway_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/embedgate/embedgate/internal/gateway"
)

// TestCheckPrefix: the pages and bridge.js resolve prefix+"/exchange" as a
// URL against the gateway's origin; a prefix that a URL parser reads as an
// authority (//evil.test, /\evil.test, a tab the parser drops) would send
// the token to another host, and a dot segment would move it elsewhere on
// this one. Every prefix accepted resolves to itself, on the same origin.
func TestCheckPrefix(t *testing.T) {
	for _, p := range []string{"/.embed", "/_gate", "/a/b-c/~d.e"} {
		if err := gateway.CheckPrefix(p); err != nil {
			t.Errorf("%q refused: %v", p, err)
		}
	}
	for _, p := range []string{"", ".embed", "/", "/.embed/", "//evil.test", "/\\evil.test", "/\t/evil.test", "/./x", "/a/../b",
		"/a b", "/a?b", "/a#b", "/a*", "/%2e%2e", "/a\"b", "/a<b", "/é"} {
		if err := gateway.CheckPrefix(p); err == nil {
			t.Errorf("%q accepted", p)
		}
	}
	if !strings.Contains(gateway.CheckPrefix("//evil.test").Error(), `"//evil.test"`) {
		t.Error("the error does not name the prefix")
	}
}

// FuzzCheckPrefix: a prefix CheckPrefix accepts resolves, with an endpoint
// name after it, to that very path on the gateway's own host.
func FuzzCheckPrefix(f *testing.F) {
	for _, p := range []string{"/.embed", "//evil.test", "/\\evil.test", "/./x", "/a/..", "/\t/x"} {
		f.Add(p)
	}
	base, _ := url.Parse("https://portal.gate.test")
	f.Fuzz(func(t *testing.T, p string) {
		if gateway.CheckPrefix(p) != nil {
			return
		}
		u, err := base.Parse(p + "/exchange")
		if err != nil || u.Host != base.Host || u.Path != p+"/exchange" || u.RawQuery != "" || u.Fragment != "" {
			t.Fatalf("%q accepted but %q/exchange resolves to %v (%v)", p, p, u, err)
		}
	})
}
