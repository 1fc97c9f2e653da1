package policy

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/embedgate/embedgate/internal/reason"
)

func TestSelfOrigin(t *testing.T) {
	for _, c := range []struct {
		host string
		tls  bool
		want string
	}{
		{"portal.example", true, "https://portal.example"},
		{"Portal.Example:443", true, "https://portal.example"},
		{"[0:0::1]:8443", true, "https://[::1]:8443"},
		{"[::ABCD]", true, "https://[::abcd]"},
		{"portal.example:8443", true, "https://portal.example:8443"},
		{"portal.example:80", true, "https://portal.example:80"},
		{"localhost:80", false, "http://localhost"},
		{"localhost:8080", false, "http://localhost:8080"},
		{"localhost:443", false, "http://localhost:443"},
		{"[::1]:443", true, "https://[::1]"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = c.host
		r.TLS = nil
		if c.tls {
			r.TLS = &tls.ConnectionState{}
		}
		if got := SelfOrigin(r); got != c.want {
			t.Errorf("SelfOrigin(%q, tls=%v) = %q, want %q", c.host, c.tls, got, c.want)
		}
	}
}

// TestServedOrigin: the port is the listener's, never Host's; HTTP/3's
// listener is a UDP address, a Unix socket has no port.
func TestServedOrigin(t *testing.T) {
	tcp := func(p int) net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p} }
	for _, c := range []struct {
		host  string
		tls   bool
		local net.Addr
		want  string
	}{
		{"portal.example", true, tcp(443), "https://portal.example"},
		{"[0:0::1]:9443", true, tcp(443), "https://[::1]"},
		{"Portal.Example:8443", true, tcp(443), "https://portal.example"},
		{"portal.example", true, tcp(8443), "https://portal.example:8443"},
		{"portal.example:9443", true, &net.UDPAddr{Port: 8443}, "https://portal.example:8443"},
		{"localhost:8080", false, tcp(80), "http://localhost"},
		{"localhost", false, tcp(443), "http://localhost:443"},
		{"[::1]:8443", true, tcp(443), "https://[::1]"},
		{"[::1]", true, tcp(8443), "https://[::1]:8443"},
		{"portal.example:8443", true, &net.UnixAddr{Name: "/run/caddy.sock", Net: "unix"}, "https://portal.example"},
		{"portal.example:8443", true, nil, "https://portal.example"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = c.host
		r.TLS = nil
		if c.tls {
			r.TLS = &tls.ConnectionState{}
		}
		if c.local != nil {
			r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, c.local))
		}
		if got := ServedOrigin(r); got != c.want {
			t.Errorf("ServedOrigin(%q, tls=%v, on %v) = %q, want %q", c.host, c.tls, c.local, got, c.want)
		}
	}
}

func TestIsUnsafeMethod(t *testing.T) {
	for m, want := range map[string]bool{
		"GET": false, "HEAD": false, "OPTIONS": false, "TRACE": false,
		"POST": true, "PUT": true, "PATCH": true, "DELETE": true,
		"PROPFIND": true, "get": true, "": true,
	} {
		if got := IsUnsafeMethod(m); got != want {
			t.Errorf("IsUnsafeMethod(%q) = %v, want %v", m, got, want)
		}
	}
}

func TestCheckOrigin(t *testing.T) {
	const self = "https://portal.example"
	allowed := func(o string) bool { return o == "https://app.acme.example" }
	for _, c := range []struct {
		name    string
		headers map[string][]string
		allowed func(string) bool
		want    reason.Reason
	}{
		{"no headers (non-browser)", nil, allowed, ""},
		{"origin self", map[string][]string{"Origin": {"https://portal.example"}}, allowed, ""},
		{"origin self, default port and case", map[string][]string{"Origin": {"https://Portal.Example:443"}}, allowed, ""},
		{"origin allowed", map[string][]string{"Origin": {"https://app.acme.example"}, "Sec-Fetch-Site": {"cross-site"}}, allowed, ""},
		{"origin not allowed", map[string][]string{"Origin": {"https://evil.example"}}, allowed, reason.CrossOrigin},
		{"origin not allowed, nil allowlist", map[string][]string{"Origin": {"https://app.acme.example"}}, nil, reason.CrossOrigin},
		{"origin self over http", map[string][]string{"Origin": {"http://portal.example"}}, allowed, reason.CrossOrigin},
		{"origin null", map[string][]string{"Origin": {"null"}}, allowed, reason.CrossOrigin},
		{"origin null with same-origin fetch", map[string][]string{"Origin": {"null"}, "Sec-Fetch-Site": {"same-origin"}}, allowed, reason.CrossOrigin},
		{"origin empty", map[string][]string{"Origin": {""}}, allowed, reason.CrossOrigin},
		{"origin garbage", map[string][]string{"Origin": {"portal.example"}}, allowed, reason.CrossOrigin},
		{"two origins", map[string][]string{"Origin": {"https://portal.example", "https://evil.example"}}, allowed, reason.CrossOrigin},
		{"origin wins over site", map[string][]string{"Origin": {"https://portal.example"}, "Sec-Fetch-Site": {"cross-site"}}, allowed, ""},
		{"no origin, cross-site", map[string][]string{"Sec-Fetch-Site": {"cross-site"}}, allowed, reason.CrossOrigin},
		{"no origin, same-site", map[string][]string{"Sec-Fetch-Site": {"same-site"}}, allowed, reason.CrossOrigin},
		{"no origin, Cross-Site", map[string][]string{"Sec-Fetch-Site": {"Cross-Site"}}, allowed, reason.CrossOrigin},
		{"no origin, same-origin", map[string][]string{"Sec-Fetch-Site": {"same-origin"}}, allowed, ""},
		{"no origin, none", map[string][]string{"Sec-Fetch-Site": {"none"}}, allowed, ""},
	} {
		r := httptest.NewRequest("POST", "https://portal.example/x", nil)
		for k, v := range c.headers {
			r.Header[k] = v
		}
		if got := CheckOrigin(r, self, c.allowed); got != c.want {
			t.Errorf("%s: CheckOrigin = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestNavigation(t *testing.T) {
	const html = "text/html,application/xhtml+xml,*/*;q=0.8"
	for _, c := range []struct {
		name          string
		headers       map[string]string
		nav, topLevel bool
	}{
		{"top-level document", map[string]string{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document", "Accept": html}, true, true},
		{"iframe navigation", map[string]string{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe", "Accept": html}, true, false},
		{"navigate without dest", map[string]string{"Sec-Fetch-Mode": "navigate"}, true, false},
		{"fetch asking for html", map[string]string{"Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty", "Accept": html}, false, false},
		{"no-cors image", map[string]string{"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image", "Accept": "image/*"}, false, false},
		{"legacy browser page", map[string]string{"Accept": html}, true, true},
		{"legacy, upper-case accept", map[string]string{"Accept": "TEXT/HTML"}, true, true},
		{"legacy fetch", map[string]string{"Accept": "application/json"}, false, false},
		{"no headers", nil, false, false},
		{"accept html with only Sec-Fetch-Site", map[string]string{"Sec-Fetch-Site": "cross-site", "Accept": html}, true, false},
		{"accept html with only Sec-Fetch-User", map[string]string{"Sec-Fetch-User": "?1", "Accept": html}, true, false},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		for k, v := range c.headers {
			r.Header.Set(k, v)
		}
		if got := IsNavigation(r); got != c.nav {
			t.Errorf("%s: IsNavigation = %v, want %v", c.name, got, c.nav)
		}
		if got := IsTopLevelNavigation(r); got != c.topLevel {
			t.Errorf("%s: IsTopLevelNavigation = %v, want %v", c.name, got, c.topLevel)
		}
	}
}
