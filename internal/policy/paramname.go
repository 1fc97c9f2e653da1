package policy

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Query and cookie names as apps read them. A name reaches the app through
// its framework, which may fold it first:
//   - PHP drops leading spaces, turns ' ' and '.' into '_', ends a name at
//     NUL, and reads org[]= or org[x]= as an array named org (a '[' with no
//     ']' after it becomes '_');
//   - ASP.NET Core looks query and cookie names up ignoring ASCII case;
//   - Rack and Node's qs build arrays and hashes from '['.
//
// So two names that Caddy's placeholders (and a byte comparison) tell apart
// may be one name to the app, and a name the gateway does not know may be
// one it does. Every rule about a parameter's name compares names folded
// the way the most lenient of these parsers does.

// nameFold walks a name as folded: one byte at a time, to the name's end.
type nameFold struct {
	s string
	i int
}

func newNameFold(s string) nameFold {
	i := 0
	for i < len(s) && s[i] == ' ' {
		i++
	}
	return nameFold{s: s, i: i}
}

// next is the next folded byte; false at the end of the name as PHP reads
// it (the string's end, a NUL, or a '[' that opens an array).
func (f *nameFold) next() (byte, bool) {
	if f.i >= len(f.s) {
		return 0, false
	}
	c := f.s[f.i]
	if c == 0 || c == '[' && strings.IndexByte(f.s[f.i:], ']') >= 0 {
		return 0, false
	}
	f.i++
	switch {
	case c == ' ' || c == '.' || c == '[':
		return '_', true
	case 'A' <= c && c <= 'Z':
		return c + ('a' - 'A'), true
	}
	return c, true
}

// SameParamName reports whether an app may read the decoded names a and b
// as one parameter: equal after folding as above. It allocates nothing.
func SameParamName(a, b string) bool {
	fa, fb := newNameFold(a), newNameFold(b)
	for {
		ca, okA := fa.next()
		cb, okB := fb.next()
		if okA != okB || ca != cb {
			return false
		}
		if !okA {
			return true
		}
	}
}

// foldParamName is name as folded, and whether every parser reads it as
// one plain name: no control byte (PHP ends a name at NUL, others keep
// it) and no '[' or ']' (an array to some, a name to others).
func foldParamName(name string) (string, bool) {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < ' ' || c == 0x7f || c == '[' || c == ']' {
			return "", false
		}
	}
	var b strings.Builder
	b.Grow(len(name))
	for f := newNameFold(name); ; {
		c, ok := f.next()
		if !ok {
			return b.String(), true
		}
		b.WriteByte(c)
	}
}

// uniqueNames collects folded names and reports whether each added one is
// plain and not yet seen. A few names are compared in a slice; past that a
// set, so a query or Cookie header of a hundred thousand names (a megabyte
// of "a=&") costs linear time, not quadratic.
type uniqueNames struct {
	few  []string
	many map[string]struct{}
}

func (u *uniqueNames) add(name string) bool {
	folded, ok := foldParamName(name)
	if !ok {
		return false
	}
	if u.many != nil {
		if _, dup := u.many[folded]; dup {
			return false
		}
		u.many[folded] = struct{}{}
		return true
	}
	if slices.Contains(u.few, folded) {
		return false
	}
	u.few = append(u.few, folded)
	if len(u.few) > 16 {
		u.many = make(map[string]struct{}, 2*len(u.few))
		for _, n := range u.few {
			u.many[n] = struct{}{}
		}
	}
	return true
}

// CanonicalQuery reports whether a raw query reads the same to every parser:
// no ';' (some split on it, some do not), every name plain and no name given
// twice as an app may fold it (some take the first value, some the last, as
// Caddy's placeholder takes the first: org=acme&+org=globex is org=globex
// to PHP, ORG=globex&org=acme to ASP.NET). A require rule that reads the
// query, such as {http.request.uri.query.org}, is only applied to such
// queries.
func CanonicalQuery(raw string) bool {
	if strings.IndexByte(raw, ';') >= 0 {
		return false
	}
	var seen uniqueNames
	for raw != "" {
		var pair string
		pair, _, raw = nextPair(raw)
		k, _, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(k)
		if err != nil || !seen.add(name) {
			return false
		}
	}
	return true
}

// CanonicalCookies reports whether the request's cookies read the same to
// every parser: every name plain and none sent twice as an app may fold it
// (Caddy's {http.request.cookie.org} takes the first org, Python's and
// Django's parsers the last). Cookies named one of own (the gateway's,
// which never reach the app) are not counted: a browser may send a
// partitioned and an unpartitioned session cookie side by side. A require
// rule that reads a cookie is only applied to such requests.
func CanonicalCookies(h http.Header, own []string) bool {
	var seen uniqueNames
	for _, line := range h["Cookie"] {
		for line != "" {
			var pair string
			if pair, line = nextCookie(line); pair == "" {
				continue
			}
			if name, _, _ := cookieName(pair); !isOneOf(name, own) && !seen.add(name) {
				return false
			}
		}
	}
	return true
}
