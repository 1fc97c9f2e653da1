package policy

import (
	"net/http"
	"strings"
)

// embedPrefix is the prefix of every identity header the gateway sets
// upstream; a client-supplied copy must never reach the app.
const embedPrefix = "x-embed-"

// StripHeaders deletes from h every header whose name, compared
// case-insensitively and with '_' and '.' treated as '-', starts with "x-embed-" or
// equals one of extra (canonical names) or of alwaysRemoved, all copies. '_' matters because
// CGI, PHP and some proxies map X_Embed_Subject to the same variable as
// X-Embed-Subject, and net/http does not canonicalize names holding '_'.
// It walks the map once and allocates nothing.
func StripHeaders(h http.Header, extra []string) {
	for k := range h {
		if headerPrefix(k, embedPrefix) {
			delete(h, k)
			continue
		}
		if equalFoldAny(k, extra) || IsAlwaysRemoved(k) {
			delete(h, k)
		}
	}
}

// equalFoldAny reports whether name equals one of names, folding ASCII case
// and '_' to '-'.
func equalFoldAny(name string, names []string) bool {
	for _, e := range names {
		if SameHeaderName(name, e) {
			return true
		}
	}
	return false
}

// SameHeaderName reports whether an app may read a and b as one header:
// equal after folding ASCII case and '_' and '.' to '-' (CGI and PHP map
// X_Embed_Subject and X.Embed.Subject to the variable of X-Embed-Subject).
func SameHeaderName(a, b string) bool { return len(a) == len(b) && headerPrefix(a, b) }

// headerPrefix reports whether name starts with prefix, folding ASCII case
// and '_' and '.' to '-' on both sides: CGI and PHP map X_Embed_Subject and
// X.Embed.Subject to the same variable as X-Embed-Subject.
func headerPrefix(name, prefix string) bool {
	if len(name) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if foldHeaderByte(name[i]) != foldHeaderByte(prefix[i]) {
			return false
		}
	}
	return true
}

func foldHeaderByte(c byte) byte {
	switch {
	case c == '_' || c == '.':
		return '-'
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	}
	return c
}

// CookieValue returns the value of the first cookie named name in h's
// Cookie headers (unquoted), without parsing the others: this runs on every
// request. It reads the pairs through nextCookie and cookieName, as
// StripCookies does, so a cookie it reads is one StripCookies removes:
// trimming more here (strings.TrimSpace also trims U+00A0) let
// "z=1;\u00a0<name>=v" open a session whose cookie then went on to the app.
func CookieValue(h http.Header, name string) (string, bool) {
	for _, line := range h["Cookie"] {
		for line != "" {
			var pair string
			pair, line = nextCookie(line)
			// A pair named name starts with it: the prefix test keeps the
			// split off most other pairs.
			if !strings.HasPrefix(pair, name) {
				continue
			}
			if n, v, ok := cookieName(pair); ok && n == name {
				if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
					v = v[1 : len(v)-1]
				}
				return v, v != ""
			}
		}
	}
	return "", false
}

// nextCookie splits the first pair off a Cookie header value. It and
// cookieName are the one reading of cookies every reader here uses
// (CookieValue, StripCookies, CanonicalCookies), so none of them reads a
// request differently from another. Pairs end at ';' and lose HTTP's
// optional whitespace (spaces and tabs only) at both ends; empty pairs are
// skipped. pair is "" when line holds no more pairs.
func nextCookie(line string) (pair, rest string) {
	for line != "" {
		pair, line, _ = strings.Cut(line, ";")
		if pair = trimOWS(pair); pair != "" {
			return pair, line
		}
	}
	return "", ""
}

// cookieName splits a pair (as nextCookie returns it) into its name, the
// part before the first '=' less optional whitespace, and its value, the
// rest; ok is false for a pair without '=' (whose name is then the pair).
func cookieName(pair string) (name, value string, ok bool) {
	name, value, ok = strings.Cut(pair, "=")
	return trimOWS(name), value, ok
}

// StripCookies removes every cookie named one of names from every Cookie
// header of h, so the app never sees a cookie the gateway owns (its session,
// its login-state nonce). Every other cookie is kept byte-for-byte and in
// order, re-joined with "; "; a Cookie header left empty is deleted. Names
// compare exactly after trimming, as net/http parses them. Headers that
// contain none of names are not touched, which keeps the common case
// allocation-free.
func StripCookies(h http.Header, names []string) {
	vals := h["Cookie"]
	if len(vals) == 0 {
		return
	}
	var out []string
	changed := false
	for i, v := range vals {
		nv, removed := v, false
		if containsAny(v, names) {
			nv, removed = removeCookies(v, names)
		}
		if !removed {
			if changed {
				out = append(out, v)
			}
			continue
		}
		if !changed {
			// Most requests carry the session cookie alone: removing
			// it deletes the header and allocates nothing.
			if i > 0 {
				out = append(make([]string, 0, len(vals)), vals[:i]...)
			}
			changed = true
		}
		if nv != "" {
			out = append(out, nv)
		}
	}
	switch {
	case !changed:
	case len(out) == 0:
		delete(h, "Cookie")
	default:
		h["Cookie"] = out
	}
}

// containsAny reports whether v holds one of names (a quick pre-check).
func containsAny(v string, names []string) bool {
	for _, n := range names {
		if n != "" && strings.Contains(v, n) {
			return true
		}
	}
	return false
}

// isOneOf reports whether name is one of names (exactly; "" never is).
func isOneOf(name string, names []string) bool {
	for _, n := range names {
		if n != "" && name == n {
			return true
		}
	}
	return false
}

// removeCookies drops the pairs named one of names from one Cookie header
// value.
func removeCookies(v string, names []string) (string, bool) {
	if strings.IndexByte(v, ';') < 0 {
		// One pair, the usual header behind the gateway: nothing to join.
		if n, _, _ := cookieName(trimOWS(v)); isOneOf(n, names) {
			return "", true
		}
		return v, false
	}
	// The kept parts are gathered first (on the stack for up to eight),
	// so the result is one allocation of its exact size; strings.Cut, not
	// SplitSeq, whose closure escapes here.
	var buf [8]string
	kept, size, removed := buf[:0], 0, false
	for rest := v; rest != ""; {
		var part string
		if part, rest = nextCookie(rest); part == "" {
			break
		}
		if name, _, _ := cookieName(part); isOneOf(name, names) {
			removed = true
			continue
		}
		kept = append(kept, part)
		size += len(part)
	}
	if !removed || len(kept) == 0 {
		return "", removed
	}
	var b strings.Builder
	b.Grow(size + 2*(len(kept)-1))
	for i, part := range kept {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(part)
	}
	return b.String(), true
}

// StripSetCookies removes from h every Set-Cookie line that sets a cookie
// named one of names, but a line equal to keep (the gateway's own, "" for
// none): the response-side twin of StripCookies, so an app (or a header
// injection in it) cannot set, fix or clear a cookie the gateway owns. The
// gateway's line is known by its text, not its place, since a handler may
// replace the slice. A line's cookie is read as browsers read it (RFC
// 6265bis 5.7): the part before the first ';', its name before the first
// '=', trimmed; a line with an empty name (or no '=') sets a nameless
// cookie whose value the browser sends back alone, so "=<name>=v" comes
// back as "<name>=v" and counts as setting <name>.
func StripSetCookies(h http.Header, keep string, names []string) {
	lines := h["Set-Cookie"]
	var kept []string
	dropped := false
	for i, line := range lines {
		if line == keep || !setsCookie(line, names) {
			if dropped {
				kept = append(kept, line)
			}
			continue
		}
		if !dropped {
			// A copy: h's slice may be shared, and is not written.
			kept = append(make([]string, 0, len(lines)-1), lines[:i]...)
			dropped = true
		}
	}
	switch {
	case !dropped:
	case len(kept) == 0:
		delete(h, "Set-Cookie")
	default:
		h["Set-Cookie"] = kept
	}
}

// setsCookie reports whether the Set-Cookie line sets one of names.
func setsCookie(line string, names []string) bool {
	pair, _, _ := strings.Cut(line, ";")
	name, value, ok := strings.Cut(pair, "=")
	if name = trimOWS(name); ok && name != "" {
		return isOneOf(name, names)
	}
	if !ok {
		value = pair
	}
	// Nameless: the browser sends the value alone.
	value = trimOWS(value)
	for _, n := range names {
		if n != "" && (value == n || strings.HasPrefix(value, n+"=")) {
			return true
		}
	}
	return false
}

// trimOWS trims spaces and tabs, HTTP's optional whitespace, from both ends
// of s (strings.Trim with a cutset builds the set on every call).
func trimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// lowerASCII is s with ASCII upper case lowered, other bytes as they are.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
