package policy

import (
	"net/http"
	"strings"
)

// FrameAncestors returns the CSP directive allowing exactly these origins,
// or frame-ancestors 'none' for an empty list.
func FrameAncestors(origins []string) string {
	if len(origins) == 0 {
		return "frame-ancestors 'none'"
	}
	return "frame-ancestors " + strings.Join(origins, " ")
}

// MergeCSP rewrites the response headers h so that framing is governed only
// by directive (e.g. "frame-ancestors https://a.example"): every
// Content-Security-Policy value loses its frame-ancestors directive(s)
// (directive names compare case-insensitively), values left empty are
// dropped, and directive is appended to the first remaining policy, or set
// alone when none remains. X-Frame-Options is deleted, since it would deny
// framing that frame-ancestors allows in browsers that still honour it.
// Content-Security-Policy-Report-Only is left as is: it cannot block.
//
// When the upstream sent no CSP (the common case) the only allocation is the
// one-element slice of the header value. Keys are expected in canonical form,
// as net/http produces them.
func MergeCSP(h http.Header, directive string) {
	delete(h, "X-Frame-Options")
	vals := h["Content-Security-Policy"]
	if len(vals) == 0 {
		h["Content-Security-Policy"] = []string{directive}
		return
	}
	// A header value is a comma-separated list of policies, each a
	// semicolon-separated list of directives; neither separator can occur
	// inside a directive value, so splitting on them is exact.
	var out []string
	appended := false
	for _, v := range vals {
		var policies []string
		for _, p := range strings.Split(v, ",") {
			var kept []string
			for _, d := range strings.Split(p, ";") {
				d = strings.Trim(d, asciiSpace)
				if d == "" || isFrameAncestors(d) {
					continue
				}
				kept = append(kept, d)
			}
			if len(kept) == 0 {
				continue
			}
			if !appended {
				kept = append(kept, directive)
				appended = true
			}
			policies = append(policies, strings.Join(kept, "; "))
		}
		if len(policies) > 0 {
			out = append(out, strings.Join(policies, ", "))
		}
	}
	if !appended {
		out = []string{directive}
	}
	h["Content-Security-Policy"] = out
}

// isFrameAncestors reports whether the trimmed directive d is named
// frame-ancestors; the name ends at the first ASCII whitespace.
func isFrameAncestors(d string) bool {
	const name = "frame-ancestors"
	if len(d) < len(name) || !strings.EqualFold(d[:len(name)], name) {
		return false
	}
	return len(d) == len(name) || strings.IndexByte(asciiSpace, d[len(name)]) >= 0
}

// asciiSpace is CSP's whitespace (ASCII whitespace in the CSP grammar).
const asciiSpace = " \t\n\r\f"
