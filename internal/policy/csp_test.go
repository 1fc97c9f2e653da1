package policy

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestMergeCSP(t *testing.T) {
	const fa = "frame-ancestors https://a.example"
	for _, c := range []struct {
		name       string
		in         http.Header
		want       []string // Content-Security-Policy after the merge
		wantReport []string // Content-Security-Policy-Report-Only after the merge
	}{
		{name: "no upstream CSP", in: http.Header{}, want: []string{fa}},
		{
			name: "frame-ancestors replaced",
			in:   http.Header{"Content-Security-Policy": {"default-src 'self'; frame-ancestors *; img-src https:"}},
			want: []string{"default-src 'self'; img-src https:; " + fa},
		},
		{
			name: "no frame-ancestors: appended",
			in:   http.Header{"Content-Security-Policy": {"default-src 'self'"}},
			want: []string{"default-src 'self'; " + fa},
		},
		{
			name: "trailing semicolon and spaces",
			in:   http.Header{"Content-Security-Policy": {"  default-src 'self' ;  "}},
			want: []string{"default-src 'self'; " + fa},
		},
		{
			name: "two CSP headers",
			in: http.Header{"Content-Security-Policy": {
				"script-src 'self'; frame-ancestors 'none'",
				"img-src *; frame-ancestors https://evil.example",
			}},
			want: []string{"script-src 'self'; " + fa, "img-src *"},
		},
		{
			name: "FRAME-ANCESTORS upper case",
			in:   http.Header{"Content-Security-Policy": {"FRAME-ANCESTORS *; default-src 'none'"}},
			want: []string{"default-src 'none'; " + fa},
		},
		{
			name: "tab after the name, no value",
			in:   http.Header{"Content-Security-Policy": {"Frame-Ancestors\t*; frame-ancestors; default-src 'none'"}},
			want: []string{"default-src 'none'; " + fa},
		},
		{
			name: "similar directive name kept",
			in:   http.Header{"Content-Security-Policy": {"frame-ancestors-x y"}},
			want: []string{"frame-ancestors-x y; " + fa},
		},
		{
			name: "value that was only frame-ancestors dropped",
			in: http.Header{"Content-Security-Policy": {
				"frame-ancestors *",
				"default-src 'self'",
			}},
			want: []string{"default-src 'self'; " + fa},
		},
		{
			name: "only frame-ancestors everywhere",
			in:   http.Header{"Content-Security-Policy": {"frame-ancestors *", " ; frame-ancestors 'self';"}},
			want: []string{fa},
		},
		{
			name: "comma-separated policies in one value",
			in:   http.Header{"Content-Security-Policy": {"frame-ancestors *, default-src 'self'; frame-ancestors *, img-src *"}},
			want: []string{"default-src 'self'; " + fa + ", img-src *"},
		},
		{
			name:       "report-only untouched",
			in:         http.Header{"Content-Security-Policy-Report-Only": {"frame-ancestors 'none'; default-src 'self'"}},
			want:       []string{fa},
			wantReport: []string{"frame-ancestors 'none'; default-src 'self'"},
		},
		{
			name: "X-Frame-Options dropped",
			in:   http.Header{"X-Frame-Options": {"DENY", "SAMEORIGIN"}},
			want: []string{fa},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := c.in.Clone()
			MergeCSP(h, fa)
			if got := h["Content-Security-Policy"]; !slices.Equal(got, c.want) {
				t.Errorf("CSP = %q, want %q", got, c.want)
			}
			if got := h["Content-Security-Policy-Report-Only"]; !slices.Equal(got, c.wantReport) {
				t.Errorf("report-only = %q, want %q", got, c.wantReport)
			}
			if _, ok := h["X-Frame-Options"]; ok {
				t.Errorf("X-Frame-Options kept: %q", h["X-Frame-Options"])
			}
		})
	}
}

func TestMergeCSPNoUpstreamAllocs(t *testing.T) {
	h := http.Header{"Content-Type": {"text/html"}, "X-Frame-Options": {"DENY"}}
	allocs := testing.AllocsPerRun(100, func() {
		MergeCSP(h, "frame-ancestors 'none'")
		delete(h, "Content-Security-Policy")
	})
	if allocs > 1 {
		t.Fatalf("MergeCSP without upstream CSP: %v allocs, want <= 1", allocs)
	}
}

func BenchmarkMergeCSP(b *testing.B) {
	const fa = "frame-ancestors https://app.acme.example https://portal.acme.example"
	b.Run("NoUpstreamCSP", func(b *testing.B) {
		h := http.Header{"Content-Type": {"text/html"}, "Cache-Control": {"no-store"}}
		b.ReportAllocs()
		for b.Loop() {
			MergeCSP(h, fa)
			delete(h, "Content-Security-Policy")
		}
	})
	b.Run("UpstreamCSP", func(b *testing.B) {
		v := []string{"default-src 'self'; script-src 'self' 'nonce-abc'; frame-ancestors 'self'"}
		h := http.Header{"Content-Type": {"text/html"}}
		b.ReportAllocs()
		for b.Loop() {
			h["Content-Security-Policy"] = v
			MergeCSP(h, fa)
		}
	})
	b.Run("UpstreamCSPNoFrameAncestors", func(b *testing.B) {
		v := []string{"default-src 'self'; script-src 'self' 'nonce-abc'; img-src *"}
		h := http.Header{"Content-Type": {"text/html"}}
		b.ReportAllocs()
		for b.Loop() {
			h["Content-Security-Policy"] = v
			MergeCSP(h, fa)
		}
	})
}

func TestParseCSP(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []string
		want CSP
	}{
		{name: "no values", in: nil, want: nil},
		{name: "only separators and spaces", in: []string{" ; , ;", ""}, want: nil},
		{
			name: "directives kept as written, trimmed",
			in:   []string{"Default-Src  'self' ;; img-src\t*  "},
			want: CSP{{Value: 0, Directives: []CSPDirective{"Default-Src  'self'", "img-src\t*"}}},
		},
		{
			name: "policies remember their value",
			in:   []string{"a, ;", " ", "b; c, d"},
			want: CSP{
				{Value: 0, Directives: []CSPDirective{"a"}},
				{Value: 2, Directives: []CSPDirective{"b", "c"}},
				{Value: 2, Directives: []CSPDirective{"d"}},
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := ParseCSP(c.in)
			if !slices.EqualFunc(got, c.want, func(a, b CSPPolicy) bool {
				return a.Value == b.Value && slices.Equal(a.Directives, b.Directives)
			}) {
				t.Fatalf("ParseCSP(%q) = %+v, want %+v", c.in, got, c.want)
			}
		})
	}
}

func TestCSPValues(t *testing.T) {
	in := []string{"a  x;b, ;", "", "c; d,e"}
	if got, want := ParseCSP(in).Values(), []string{"a  x; b", "c; d, e"}; !slices.Equal(got, want) {
		t.Fatalf("Values = %q, want %q", got, want)
	}
	if got := CSP(nil).Values(); got != nil {
		t.Fatalf("empty CSP: %q", got)
	}
}

func TestCSPPolicyAdd(t *testing.T) {
	// Adding to one policy must not write over the next one's directives,
	// whether it fits the spare room or not.
	csp := ParseCSP([]string{"a; b, c", "d"})
	csp[0].Add("x")
	csp[0].Add("y")
	csp[1].Add("z")
	if got, want := csp.Values(), []string{"a; b; x; y, c; z", "d"}; !slices.Equal(got, want) {
		t.Fatalf("Values = %q, want %q", got, want)
	}
}

func TestCSPRemove(t *testing.T) {
	csp := ParseCSP([]string{"frame-ancestors *, a; FRAME-ANCESTORS 'none'; frame-ancestors-x y", "frame-ancestors\t*"})
	if got, want := csp.Remove("frame-ancestors").Values(), []string{"a; frame-ancestors-x y"}; !slices.Equal(got, want) {
		t.Fatalf("Values = %q, want %q", got, want)
	}
}

func TestCSPNormalize(t *testing.T) {
	// Only CSP's whitespace separates, as in browsers: a non-breaking space
	// or a \v is part of its token, so a directive a browser ignores (its
	// name runs into its sources) stays one it ignores.
	csp := ParseCSP([]string{"Script-Src  'self'\u00a0'nonce-a'; \u00a0 ;IMG-SRC\t*", "\u00a0", "x y\vz; style-src 'self'", "SCRIPT-SRC\u00a0'unsafe-inline'"}).Normalize()
	want := []string{"script-src 'self'\u00a0'nonce-a'; \u00a0; img-src *", "\u00a0", "x y\vz; style-src 'self'", "script-src\u00a0'unsafe-inline'"}
	if got := csp.Values(); !slices.Equal(got, want) {
		t.Fatalf("Values = %q, want %q", got, want)
	}
	if d := csp[3].Lookup("script-src"); d != nil {
		t.Fatalf("Lookup(script-src) = %q in a directive browsers ignore", *d)
	}
}

func TestCSPPolicyLookup(t *testing.T) {
	p := ParseCSP([]string{"script-src-elem a; Script-Src b; script-src c"})[0]
	if d := p.Lookup("script-src"); d == nil || *d != "Script-Src b" {
		t.Fatalf("Lookup(script-src) = %v, want the first script-src", d)
	}
	if d := p.Lookup("default-src"); d != nil {
		t.Fatalf("Lookup(default-src) = %q, want nil", *d)
	}
}

func TestCSPDirective(t *testing.T) {
	for _, c := range []struct {
		d       CSPDirective
		is      bool // named frame-ancestors
		name    string
		sources []string
	}{
		{"frame-ancestors 'self' https://a.example", true, "frame-ancestors", []string{"'self'", "https://a.example"}},
		{"Frame-Ancestors\t*", true, "Frame-Ancestors", []string{"*"}},
		{"FRAME-ANCESTORS", true, "FRAME-ANCESTORS", nil},
		{"frame-ancestors-x y", false, "frame-ancestors-x", []string{"y"}},
		{"frame-ancestor", false, "frame-ancestor", nil},
		// Only ASCII folds and separates, as in the CSP grammar.
		{"frame-anceſtors *", false, "frame-anceſtors", []string{"*"}},
		{"frame-ancestors\u00a0*", false, "frame-ancestors\u00a0*", nil},
		{"img-src \f*\r\ndata: ", false, "img-src", []string{"*", "data:"}},
	} {
		if got := c.d.Is("frame-ancestors"); got != c.is {
			t.Errorf("%q.Is(frame-ancestors) = %v", c.d, got)
		}
		if got := c.d.Name(); got != c.name {
			t.Errorf("%q.Name() = %q, want %q", c.d, got, c.name)
		}
		if got := c.d.Sources(); !slices.Equal(got, c.sources) {
			t.Errorf("%q.Sources() = %q, want %q", c.d, got, c.sources)
		}
	}
	if got := NewCSPDirective("script-src", "'self'", "'nonce-a'").WithSource("https://b.example/x.js"); got != "script-src 'self' 'nonce-a' https://b.example/x.js" {
		t.Errorf("NewCSPDirective(...).WithSource = %q", got)
	}
	if got := NewCSPDirective("upgrade-insecure-requests"); got != "upgrade-insecure-requests" {
		t.Errorf("NewCSPDirective without sources = %q", got)
	}
}

func TestParseCSPAllocs(t *testing.T) {
	v := []string{"default-src 'self'; script-src 'self' 'nonce-abc'", "img-src *, frame-ancestors 'self'"}
	if allocs := testing.AllocsPerRun(100, func() { ParseCSP(v) }); allocs > 2 {
		t.Fatalf("ParseCSP: %v allocs, want <= 2", allocs)
	}
	h := http.Header{}
	if allocs := testing.AllocsPerRun(100, func() {
		h["Content-Security-Policy"] = v[:1]
		MergeCSP(h, "frame-ancestors 'none'")
	}); allocs > 4 {
		t.Fatalf("MergeCSP with an upstream CSP: %v allocs, want <= 4", allocs)
	}
}

// FuzzCSPNormalize checks Normalize against the long way of the CSP
// grammar: fields split on CSP's (ASCII) whitespace alone, the name in
// ASCII lower case, single spaces; and its shortcut, that a directive it
// keeps as it is is what the long way makes of it.
func FuzzCSPNormalize(f *testing.F) {
	for _, s := range []string{"script-src 'self'", "Script-Src 'self'", "img-src  *", "img-src\t*", "a\u00a0b", "a\vb", "k\u212a", "\xff", "x ", "SCRIPT-SRC\u00a0'unsafe-inline'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fields := strings.FieldsFunc(s, func(r rune) bool { return r < utf8.RuneSelf && isSpace(byte(r)) })
		long := ""
		if len(fields) > 0 {
			name := []byte(fields[0])
			for i, c := range name {
				if 'A' <= c && c <= 'Z' {
					name[i] = c + 'a' - 'A'
				}
			}
			fields[0] = string(name)
			long = strings.Join(fields, " ")
		}
		d := CSPDirective(s)
		if got := d.normalize(); string(got) != long {
			t.Fatalf("%q: normalize = %q, the long way %q", s, got, long)
		}
		if d.normalized() && long != s {
			t.Fatalf("%q: normalized, but the long way gives %q", s, long)
		}
	})
}
