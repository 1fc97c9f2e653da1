package policy

import (
	"net/http"
	"slices"
	"testing"
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
}
