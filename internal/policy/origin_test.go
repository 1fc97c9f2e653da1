package policy

import (
	"net/url"
	"testing"
)

func TestParseOrigin(t *testing.T) {
	for _, c := range []struct {
		in, want string // want "" means refused
	}{
		{"https://a.example", "https://a.example"},
		{"https://a.example/", "https://a.example"},
		{"https://a.example:443", "https://a.example"},
		{"https://a.example:8443", "https://a.example:8443"},
		{"HTTPS://A.Example", "https://a.example"},
		{"http://localhost:3000", "http://localhost:3000"},
		{"http://app.localhost", "http://app.localhost"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"http://127.1.2.3", "http://127.1.2.3"},
		// IP hosts as a browser's Origin writes them (RFC 5952, dotted quad).
		{"https://[2001:DB8:0::1]", "https://[2001:db8::1]"},
		{"http://[0:0::1]:8080", "http://[::1]:8080"},
		{"https://127.1", ""},
		{"https://0x7f.0.0.1", ""},
		{"https://2130706433", ""},
		{"https://10.000.0.1", ""},
		{"http://[::1]:3000", "http://[::1]:3000"},
		{"http://localhost:80", "http://localhost"},
		{"https://[2001:db8::1]", "https://[2001:db8::1]"},
		{"http://a.example", ""},
		{"http://localhost.evil.example", ""},
		{"http://128.0.0.1", ""},
		{"https://a.example/path", ""},
		{"https://a.example?q=1", ""},
		{"https://a.example?", ""},
		{"https://a.example#frag", ""},
		{"https://a.example#", ""},
		{"https://user@a.example", ""},
		{"https://user:pw@a.example", ""},
		{"*", ""},
		{"https://*.a.example", ""},
		{"https://a.example;", ""},
		{"https://a.example; script-src *", ""},
		{"https://a.example,https://b.example", ""},
		{"https://a.example https://b.example", ""},
		{"'none'", ""},
		{"'self'", ""},
		{"ftp://a.example", ""},
		{"javascript:alert(1)", ""},
		{"a.example", ""},
		{"//a.example", ""},
		{"https://", ""},
		{"", ""},
	} {
		got, err := ParseOrigin(c.in)
		if c.want == "" {
			if err == nil {
				t.Errorf("ParseOrigin(%q) = %q, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseOrigin(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestNormalizeOrigin(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"https://A.example:443", "https://a.example"},
		{"http://a.example:80", "http://a.example"},
		{"http://a.example:8080", "http://a.example:8080"},
		{"https://[::1]:443", "https://[::1]"},
		{"null", ""},
		{"", ""},
		{"https://a.example/x", ""},
		{"https://u@a.example", ""},
		{"ftp://a.example", ""},
		{"a.example", ""},
	} {
		if got := NormalizeOrigin(c.in); got != c.want {
			t.Errorf("NormalizeOrigin(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestFrameAncestors(t *testing.T) {
	if got := FrameAncestors(nil); got != "frame-ancestors 'none'" {
		t.Errorf("empty: %q", got)
	}
	if got := FrameAncestors([]string{"https://a.example", "https://b.example"}); got != "frame-ancestors https://a.example https://b.example" {
		t.Errorf("two: %q", got)
	}
}

func TestSecureURL(t *testing.T) {
	for raw, want := range map[string]bool{
		"https://idp.example/jwks":      true,
		"HTTPS://idp.example/jwks":      true,
		"http://localhost:8080/jwks":    true,
		"http://127.0.0.1/jwks":         true,
		"http://[::1]:9000/jwks":        true,
		"http://app.localhost/login":    true,
		"http://idp.example/jwks":       false,
		"ftp://idp.example/jwks":        false,
		"https:///jwks":                 false,
		"/jwks":                         false,
		"idp.example/jwks":              false,
		"https:idp.example":             false,
		"http://127.0.0.1.example/jwks": false,
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := SecureURL(u); got != want {
			t.Errorf("SecureURL(%q) = %v, want %v", raw, got, want)
		}
	}
}

// Errors and logs name a URL without what may be a credential, and mark
// where it was cut.
func TestShownURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://idp.test/jwks":                       "https://idp.test/jwks",
		"https://idp.test/jwks?access_token=hunter2":  "https://idp.test/jwks?…",
		"https://svc:hunter2@idp.test/o":              "https://…@idp.test/o",
		"https://hunter2@idp.test:8443/o?x=hunter2#f": "https://…@idp.test:8443/o?…",
		"http://127.0.0.1:9/jwks?":                    "http://127.0.0.1:9/jwks?…",
	} {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := ShownURL(u); got != want {
			t.Errorf("ShownURL(%s) = %q, want %q", in, got, want)
		}
	}
}

// A configured URL in an error: never its user info or query, and an
// unparsable one only when it cannot hold either.
func TestShown(t *testing.T) {
	for in, want := range map[string]string{
		"https://login.acme.test/sso":          `"https://login.acme.test/sso"`,
		"https://svc:pw@login.acme.test/sso?k": `"https://…@login.acme.test/sso?…"`,
		"acme-idp":                             `"acme-idp"`,
		"https://a b.test":                     `"https://a b.test"`,
		"https://u:pw@a b.test":                "(a URL that does not parse)",
		"%zz?token=pw":                         "(a URL that does not parse)",
	} {
		if got := Shown(in); got != want {
			t.Errorf("Shown(%q) = %s, want %s", in, got, want)
		}
	}
}
