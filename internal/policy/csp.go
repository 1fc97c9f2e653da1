package policy

import (
	"net/http"
	"slices"
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
	csp := ParseCSP(vals).Remove("frame-ancestors")
	if len(csp) == 0 {
		h["Content-Security-Policy"] = []string{directive}
		return
	}
	csp[0].Add(CSPDirective(directive))
	h["Content-Security-Policy"] = csp.Values()
}

// CSP is a Content-Security-Policy (or -Report-Only) header field: its
// policies in order, across all of its values.
type CSP []CSPPolicy

// CSPPolicy is one policy of a CSP. Value is the index of the header value
// it came from, so that Values keeps the header's shape.
type CSPPolicy struct {
	Value      int
	Directives []CSPDirective
}

// CSPDirective is one directive as written, trimmed of ASCII whitespace:
// its name, then its source expressions. Kept as text so that rewriting a
// header leaves every directive it does not touch byte for byte as it was.
type CSPDirective string

// ParseCSP parses the values of a CSP header field. A value is a
// comma-separated list of policies, each a semicolon-separated list of
// directives; neither separator can occur inside a directive, so splitting
// on them is exact. Empty directives, and then empty policies, are dropped.
//
// The result is two allocations whatever the size, since it is built on
// every proxied response that carries a CSP; each policy has room for one
// more directive, as both callers add one.
func ParseCSP(values []string) CSP {
	maxPolicies, maxDirectives := 0, 0
	for _, v := range values {
		commas := strings.Count(v, ",")
		maxPolicies += commas + 1
		maxDirectives += commas + 1 + strings.Count(v, ";")
	}
	if maxPolicies == 0 {
		return nil
	}
	csp := make(CSP, 0, maxPolicies)
	dirs := make([]CSPDirective, maxDirectives+maxPolicies)
	n := 0
	for i, v := range values {
		for p := range strings.SplitSeq(v, ",") {
			start := n
			for d := range strings.SplitSeq(p, ";") {
				if d = trimSpace(d); d != "" {
					dirs[n] = CSPDirective(d)
					n++
				}
			}
			if n > start {
				csp = append(csp, CSPPolicy{Value: i, Directives: dirs[start : n : n+1]})
				n++ // the spare slot
			}
		}
	}
	if len(csp) == 0 {
		return nil
	}
	return csp
}

// Values serializes c as header values: the policies of one value joined
// by ", ", their directives by "; ". A value left without policies is gone.
func (c CSP) Values() []string {
	if len(c) == 0 {
		return nil
	}
	n := 1
	for i := 1; i < len(c); i++ {
		if c[i].Value != c[i-1].Value {
			n++
		}
	}
	out := make([]string, 0, n)
	for i := 0; i < len(c); {
		j := i + 1
		for j < len(c) && c[j].Value == c[i].Value {
			j++
		}
		out = append(out, joinPolicies(c[i:j]))
		i = j
	}
	return out
}

// joinPolicies is one header value; sized first so that it is one
// allocation.
func joinPolicies(ps []CSPPolicy) string {
	size := len(", ") * (len(ps) - 1)
	for _, p := range ps {
		size += len("; ") * (len(p.Directives) - 1)
		for _, d := range p.Directives {
			size += len(d)
		}
	}
	var b strings.Builder
	b.Grow(size)
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		for j, d := range p.Directives {
			if j > 0 {
				b.WriteString("; ")
			}
			b.WriteString(string(d))
		}
	}
	return b.String()
}

// Remove drops every directive named name from c, then the policies left
// empty, and returns what remains (c's backing array, reused).
func (c CSP) Remove(name string) CSP {
	kept := c[:0]
	for _, p := range c {
		p.Directives = slices.DeleteFunc(p.Directives, func(d CSPDirective) bool { return d.Is(name) })
		if len(p.Directives) > 0 {
			kept = append(kept, p)
		}
	}
	clear(c[len(kept):])
	return kept
}

// Normalize rewrites every directive of c as its name in ASCII lower case
// and its sources, separated by single spaces, drops the directives this
// leaves empty and then the empty policies, and returns what remains (c's
// backing array, reused). It splits on CSP's whitespace alone, as browsers
// do: any other byte, a non-breaking space included, stays inside its
// token. Splitting wider (strings.Fields) turned a directive a browser
// ignores, "script-src\u00a0'unsafe-inline'", into a live one.
func (c CSP) Normalize() CSP {
	kept := c[:0]
	for _, p := range c {
		ds := p.Directives[:0]
		for _, d := range p.Directives {
			if d.normalized() {
				ds = append(ds, d) // the usual case, at no cost
				continue
			}
			if nd := d.normalize(); nd != "" {
				ds = append(ds, nd)
			}
		}
		clear(p.Directives[len(ds):])
		if p.Directives = ds; len(ds) > 0 {
			kept = append(kept, p)
		}
	}
	clear(c[len(kept):])
	return kept
}

// normalize is d in Normalize's form, or "" when d has no field.
func (d CSPDirective) normalize() CSPDirective {
	name, rest := nextField(string(d))
	if name == "" {
		return ""
	}
	var b strings.Builder
	b.Grow(len(d))
	b.WriteString(lowerASCII(name))
	for s, r := nextField(rest); s != ""; s, r = nextField(r) {
		b.WriteByte(' ')
		b.WriteString(s)
	}
	return CSPDirective(b.String())
}

// normalized reports whether Normalize would leave d as it is: single
// spaces between fields (no other CSP whitespace) and no ASCII upper case
// in the name.
func (d CSPDirective) normalized() bool {
	inName, prevSpace := true, true // prevSpace: a leading space fails
	for i := 0; i < len(d); i++ {
		switch c := d[i]; {
		case c == ' ':
			if prevSpace {
				return false
			}
			inName, prevSpace = false, true
		case isSpace(c):
			return false
		case inName && 'A' <= c && c <= 'Z':
			return false
		default:
			prevSpace = false
		}
	}
	return !prevSpace
}

// Lookup is the first directive of p named name, or nil: browsers ignore
// a directive repeated in one policy.
func (p *CSPPolicy) Lookup(name string) *CSPDirective {
	for i := range p.Directives {
		if p.Directives[i].Is(name) {
			return &p.Directives[i]
		}
	}
	return nil
}

// Add appends d to p.
func (p *CSPPolicy) Add(d CSPDirective) { p.Directives = append(p.Directives, d) }

// NewCSPDirective is the directive name with these sources.
func NewCSPDirective(name string, sources ...string) CSPDirective {
	if len(sources) == 0 {
		return CSPDirective(name)
	}
	return CSPDirective(name + " " + strings.Join(sources, " "))
}

// Is reports whether d is named name, comparing ASCII case-insensitively as
// browsers do; d's name ends at the first ASCII whitespace.
func (d CSPDirective) Is(name string) bool {
	if len(d) < len(name) || !strings.EqualFold(string(d[:len(name)]), name) {
		return false
	}
	return len(d) == len(name) || isSpace(d[len(name)])
}

// Name is d's name as written.
func (d CSPDirective) Name() string {
	name, _ := nextField(string(d))
	return name
}

// Sources are d's source expressions, in order.
func (d CSPDirective) Sources() []string {
	_, rest := nextField(string(d))
	n := 0
	for s, r := nextField(rest); s != ""; s, r = nextField(r) {
		n++
	}
	if n == 0 {
		return nil
	}
	out := make([]string, 0, n)
	for s, r := nextField(rest); s != ""; s, r = nextField(r) {
		out = append(out, s)
	}
	return out
}

// nextField splits the first whitespace-separated field off s; field is ""
// when there is none.
func nextField(s string) (field, rest string) {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	j := i
	for j < len(s) && !isSpace(s[j]) {
		j++
	}
	return s[i:j], s[j:]
}

// trimSpace is s without leading and trailing whitespace.
func trimSpace(s string) string {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// WithSource is d with source appended.
func (d CSPDirective) WithSource(source string) CSPDirective {
	return d + " " + CSPDirective(source)
}

// isSpace reports whether c is CSP's whitespace (ASCII whitespace in the
// CSP grammar); the byte loops it serves are faster than strings' cutsets.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
}
