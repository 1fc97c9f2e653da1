package policy

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestStripHeaders(t *testing.T) {
	extra := []string{"X-Forwarded-User", "Remote-User"}
	for _, c := range []struct {
		name string
		in   http.Header
		want http.Header
	}{
		{"nothing to strip",
			http.Header{"Accept": {"*/*"}, "X-Embedded": {"1"}, "X-Embed": {"1"}},
			http.Header{"Accept": {"*/*"}, "X-Embedded": {"1"}, "X-Embed": {"1"}}},
		{"canonical", http.Header{"X-Embed-Subject": {"root"}, "Accept": {"*/*"}}, http.Header{"Accept": {"*/*"}}},
		{"mixed case", http.Header{"x-EMBED-tenant": {"acme"}, "X-EmBeD-Subject": {"root"}}, http.Header{}},
		{"underscores", http.Header{"X_Embed_Subject": {"root"}, "x-embed_claims": {"{}"}, "X_EMBED-Tenant": {"t"}}, http.Header{}},
		{"multiple copies", http.Header{"X-Embed-Subject": {"a", "b", "c"}, "Cookie": {"a=b"}}, http.Header{"Cookie": {"a=b"}}},
		{"extra headers, folded",
			http.Header{"X-Forwarded-User": {"root"}, "remote_user": {"root"}, "X-Forwarded-Users": {"kept"}, "Remote-User-Id": {"kept"}},
			http.Header{"X-Forwarded-Users": {"kept"}, "Remote-User-Id": {"kept"}}},
		{"prefix only, nothing after", http.Header{"X-Embed-": {"x"}}, http.Header{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := c.in.Clone()
			StripHeaders(h, extra)
			if !maps.EqualFunc(h, c.want, slices.Equal) {
				t.Errorf("got %q, want %q", h, c.want)
			}
		})
	}
}

func TestStripCookies(t *testing.T) {
	names := []string{"__Host-embed_session", "__Host-embed_login"}
	for _, c := range []struct {
		name string
		in   []string
		want []string // nil: no Cookie header left
	}{
		{"only", []string{"__Host-embed_session=abc"}, nil},
		{"first", []string{"__Host-embed_session=abc; a=1; b=2"}, []string{"a=1; b=2"}},
		{"middle", []string{"a=1; __Host-embed_session=abc; b=2"}, []string{"a=1; b=2"}},
		{"last", []string{"a=1; b=2; __Host-embed_session=abc"}, []string{"a=1; b=2"}},
		{"absent", []string{"a=1;b=2;  c=\"q; r\""}, []string{"a=1;b=2;  c=\"q; r\""}},
		{"values kept byte for byte", []string{"a= x=1 ; __Host-embed_session=abc;b=%3D=="}, []string{"a= x=1; b=%3D=="}},
		{"similar names kept", []string{"__Host-embed_session2=x; embed_session=y; __Host-embed_session=abc; __host-embed_session=z"},
			[]string{"__Host-embed_session2=x; embed_session=y; __host-embed_session=z"}},
		{"name only in a value", []string{"a=__Host-embed_session"}, []string{"a=__Host-embed_session"}},
		{"spaces around the name", []string{"a=1; __Host-embed_session =abc"}, []string{"a=1"}},
		{"twice in one header", []string{"__Host-embed_session=a; x=1; __Host-embed_session=b"}, []string{"x=1"}},
		{"multiple Cookie headers", []string{"a=1", "__Host-embed_session=abc", "b=2; __Host-embed_session=def", "c=3"},
			[]string{"a=1", "b=2", "c=3"}},
		{"all headers emptied", []string{"__Host-embed_session=a", " __Host-embed_session=b ; "}, nil},
		{"every name given", []string{"__Host-embed_login=n; a=1; __Host-embed_session=abc"}, []string{"a=1"}},
		{"the second name alone", []string{"a=1", "__Host-embed_login=n"}, []string{"a=1"}},
		{"the second name's look-alike kept", []string{"__Host-embed_login2=n; __Host-embed_session=abc"}, []string{"__Host-embed_login2=n"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{"Cookie": slices.Clone(c.in), "Accept": {"*/*"}}
			StripCookies(h, names)
			got, ok := h["Cookie"]
			if c.want == nil {
				if ok {
					t.Fatalf("Cookie header kept: %q", got)
				}
			} else if !slices.Equal(got, c.want) {
				t.Fatalf("got %q, want %q", got, c.want)
			}
			if len(h["Accept"]) != 1 {
				t.Fatal("other header touched")
			}
		})
	}
	h := http.Header{"Accept": {"*/*"}}
	StripCookies(h, names)
	if _, ok := h["Cookie"]; ok {
		t.Fatal("Cookie header created")
	}
}

func TestStripNoAllocs(t *testing.T) {
	h := requestHeaders()
	if n := testing.AllocsPerRun(100, func() { StripHeaders(h, []string{"X-Forwarded-User"}) }); n != 0 {
		t.Errorf("StripHeaders with nothing to strip: %v allocs", n)
	}
	if n := testing.AllocsPerRun(100, func() { StripCookies(h, []string{"__Host-embed_session"}) }); n != 0 {
		t.Errorf("StripCookies with the cookie absent: %v allocs", n)
	}
}

// requestHeaders is a typical browser request, with nothing to strip.
func requestHeaders() http.Header {
	return http.Header{
		"Accept":          {"text/html,application/xhtml+xml,*/*;q=0.8"},
		"Accept-Encoding": {"gzip, deflate, br"},
		"Accept-Language": {"en-US,en;q=0.9"},
		"Cookie":          {"_ga=GA1.1.1; theme=dark"},
		"Sec-Fetch-Dest":  {"iframe"},
		"Sec-Fetch-Mode":  {"navigate"},
		"Sec-Fetch-Site":  {"cross-site"},
		"User-Agent":      {"Mozilla/5.0"},
		"X-Forwarded-For": {"203.0.113.7"},
		"Referer":         {"https://app.acme.example/deals"},
	}
}

func BenchmarkStripHeaders(b *testing.B) {
	extra := []string{"X-Forwarded-User", "Remote-User"}
	b.Run("NothingToStrip", func(b *testing.B) {
		h := requestHeaders()
		b.ReportAllocs()
		for b.Loop() {
			StripHeaders(h, extra)
		}
	})
	b.Run("Forged", func(b *testing.B) {
		h := requestHeaders()
		subject, tenant := []string{"root"}, []string{"acme"}
		b.ReportAllocs()
		for b.Loop() {
			h["X-Embed-Subject"] = subject
			h["X_Embed_Tenant"] = tenant
			StripHeaders(h, extra)
		}
	})
}

// BenchmarkStripCookie removes the gateway's cookies (the session and the
// login-state nonce, as the gateway strips them) from a header that holds
// the session alone (what the gateway's own pages send) and from one that
// also holds the app's cookies (what a browser sends the app).
func BenchmarkStripCookie(b *testing.B) {
	names := []string{"__Host-embed_session", "__Host-embed_login"}
	session := "__Host-embed_session=" + strings.Repeat("A", 160)
	for name, line := range map[string]string{
		"Alone":       session,
		"AmongOthers": "theme=dark; " + session + "; lang=en",
		"WithoutIt":   "theme=dark; lang=en",
	} {
		b.Run(name, func(b *testing.B) {
			vals := []string{line}
			h := http.Header{}
			b.ReportAllocs()
			for b.Loop() {
				h["Cookie"] = vals
				StripCookies(h, names)
			}
		})
	}
}

// FuzzCookieReadIsStripped holds the session cookie's one rule: a cookie
// that CookieValue reads (so the gateway opens it) is one StripCookies
// removes (so the app never gets it), whatever the header looks like. It
// is the regression test for the two drifting apart: CookieValue trimmed
// with strings.TrimSpace, StripCookies only spaces and tabs, so
// "z=1;\u00a0<name>=v" opened a session and still reached the app.
func FuzzCookieReadIsStripped(f *testing.F) {
	const name = "__Host-embed_session"
	for _, seed := range []string{
		name + "=v",
		"z=1;\u00a0" + name + "=v",
		"z=1;\u2003" + name + "=v;\u0085",
		"a=1; " + name + "=\"v\"; b=2",
		"\t" + name + "=v\t;" + name + "=w",
		name + " =v",
		name + "=",
		";;" + name + "=v;;",
		"a=" + name + "=v",
	} {
		f.Add(seed, "b=2")
	}
	f.Fuzz(func(t *testing.T, first, second string) {
		h := http.Header{"Cookie": {first, second}}
		v, ok := CookieValue(h, name)
		if !ok {
			return
		}
		StripCookies(h, []string{name})
		if w, ok := CookieValue(h, name); ok {
			t.Fatalf("read %q from %q, and %q is still there after StripCookies: %q", v, []string{first, second}, w, h["Cookie"])
		}
	})
}

func TestStripSetCookies(t *testing.T) {
	names := []string{"__Host-embed_session", "embed_session"}
	const mine = "__Host-embed_session=mine; Path=/; Secure"
	for _, c := range []struct {
		name  string
		lines []string
		keep  string
		want  []string // nil: the header is gone
	}{
		{"the app's own cookies stay", []string{"a=1; Path=/", "b=2"}, "", []string{"a=1; Path=/", "b=2"}},
		{"the app sets the session", []string{"a=1", "__Host-embed_session=x; Path=/", "b=2"}, "", []string{"a=1", "b=2"}},
		{"the gateway's line stays, by its text", []string{"__Host-embed_session=x", mine, " embed_session = n ; Secure"}, mine, []string{mine}},
		{"all gone", []string{"embed_session=n"}, "", nil},
		// Browsers take the name from before the first '=' of the first
		// ';'-part: these set other cookies.
		{"other names", []string{"__host-embed_session=x", "__Host-embed_session_x=1", "x=__Host-embed_session=1", "a=1; embed_session=2"}, "",
			[]string{"__host-embed_session=x", "__Host-embed_session_x=1", "x=__Host-embed_session=1", "a=1; embed_session=2"}},
		// A nameless cookie's value comes back alone: "=embed_session=X" is
		// sent as "embed_session=X", read as the session.
		{"nameless", []string{"=embed_session=X; Path=/deals", " =\tembed_session=X", "embed_session", "=embed_session", "=other=1", "=embed_sessionx=1"}, "",
			[]string{"=other=1", "=embed_sessionx=1"}},
	} {
		h := http.Header{"Set-Cookie": slices.Clone(c.lines)}
		shared := h["Set-Cookie"] // the app's slice: another writer may hold it
		StripSetCookies(h, c.keep, names)
		if got, ok := h["Set-Cookie"]; !slices.Equal(got, c.want) || ok != (c.want != nil) {
			t.Errorf("%s: Set-Cookie = %q (present %v), want %q", c.name, got, ok, c.want)
		}
		if !slices.Equal(shared, c.lines) {
			t.Errorf("%s: the original slice was written: %q", c.name, shared)
		}
	}
}

// TestNextCookie pins the one split every cookie reader uses (nextCookie,
// then cookieName): ';' ends a pair, only spaces and tabs are trimmed,
// empty pairs are skipped, and the name is what precedes the first '='.
func TestNextCookie(t *testing.T) {
	type pair struct{ pair, name string }
	for line, want := range map[string][]pair{
		"":                         nil,
		" ; ;\t":                   nil,
		"a=1":                      {{"a=1", "a"}},
		" a = 1 ;b":                {{"a = 1", "a"}, {"b", "b"}},
		"\u00a0a=1;\tb=x=y;":       {{"\u00a0a=1", "\u00a0a"}, {"b=x=y", "b"}},
		"=v; \"q\"=\"w\"":          {{"=v", ""}, {"\"q\"=\"w\"", "\"q\""}},
		"__Host-embed_session\t=v": {{"__Host-embed_session\t=v", "__Host-embed_session"}},
	} {
		var got []pair
		for rest := line; ; {
			var p string
			if p, rest = nextCookie(rest); p == "" {
				break
			}
			n, _, _ := cookieName(p)
			got = append(got, pair{p, n})
		}
		if !slices.Equal(got, want) {
			t.Errorf("%q split as %q, want %q", line, got, want)
		}
	}
}
