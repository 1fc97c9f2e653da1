package policy

import (
	"net/url"
	"strings"
)

// The query functions read the raw query so that, when the token parameter
// is removed, the rest is kept byte-for-byte. Pairs are separated by '&' or
// ';': Rack, older Python and other parsers split on both, so a token after
// ';' would otherwise reach the app (and the access log) as a parameter the
// gateway never saw. Names compare decoded (embed%5Ftoken is embed_token)
// and folded as apps fold them (paramname.go).

// nextPair cuts the first pair off raw: the pair, the separator after it
// (0 at the end) and the rest.
func nextPair(raw string) (pair string, sep byte, rest string) {
	// A byte loop, not strings.IndexAny: every request's query is read
	// for the token parameter.
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c == '&' || c == ';' {
			return raw[:i], c, raw[i+1:]
		}
	}
	return raw, 0, ""
}

// isParam reports whether pair's name decodes to name as an app may read
// it (SameParamName): embed.token and EMBED_TOKEN are embed_token to PHP and
// ASP.NET, and a token under such a name must not reach the app or the log.
func isParam(pair, name string) bool {
	k, _, _ := strings.Cut(pair, "=")
	key, err := url.QueryUnescape(k)
	return err == nil && SameParamName(key, name)
}

// HasQueryParam reports whether the raw query carries name.
func HasQueryParam(raw, name string) bool {
	_, ok := findQueryParam(raw, name)
	return ok
}

// QueryParam is the decoded value of the first name in the raw query; ""
// when absent or undecodable.
func QueryParam(raw, name string) string {
	v, _ := findQueryParam(raw, name)
	return v
}

func findQueryParam(raw, name string) (string, bool) {
	for raw != "" {
		var pair string
		pair, _, raw = nextPair(raw)
		if !isParam(pair, name) {
			continue
		}
		_, v, _ := strings.Cut(pair, "=")
		val, err := url.QueryUnescape(v)
		if err != nil {
			return "", true
		}
		return val, true
	}
	return "", false
}

// RemoveQueryParam drops every pair named name from the raw query and keeps
// the others, and the separators between them, as they were.
func RemoveQueryParam(raw, name string) string {
	if raw == "" {
		return ""
	}
	var b strings.Builder
	b.Grow(len(raw))
	var pendingSep byte
	for raw != "" {
		pair, sep, rest := nextPair(raw)
		raw = rest
		if pair == "" || isParam(pair, name) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(pendingSep)
		}
		b.WriteString(pair)
		pendingSep = sep
		if pendingSep == 0 {
			pendingSep = '&'
		}
	}
	return b.String()
}
