package policy

import (
	"iter"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/embedgate/embedgate/internal/reason"
)

// SelfOrigin is the origin of the request's own URL as the browser sees it:
// "https://" when r.TLS != nil, else "http://", plus the Host, lower-cased
// and without the scheme's default port, so that it compares equal to a
// NormalizeOrigin result. Behind a proxy that terminates TLS, r.TLS is nil and
// the result says http.
func SelfOrigin(r *http.Request) string {
	scheme, defPort := schemeOf(r)
	return scheme + strings.TrimSuffix(strings.ToLower(canonicalHostPort(requestHost(r))), defPort)
}

// ServedOrigin is the origin the gateway itself vouches that r was served
// at, for claims it signs: the scheme from the connection (r.TLS), the host
// name from Host (which a session's binding has checked), and the port of
// the listener that accepted the connection, when it is not the scheme's
// default. Host's own port is the client's word (Caddy's host matcher
// ignores it), so a signed origin never takes it: else a session holder
// could have the gateway vouch for another site on the same host name.
// Without a listener port (a Unix socket) the origin has none.
func ServedOrigin(r *http.Request) string {
	scheme, defPort := schemeOf(r)
	// A fully qualified name's trailing dot is dropped, as the session's
	// host binding (tenant.HostOf) drops it: one host, one origin.
	origin := scheme + strings.TrimSuffix(strings.ToLower(hostName(canonicalHostPort(requestHost(r)))), ".")
	if p := LocalPort(r); p != 0 {
		if port := ":" + strconv.Itoa(p); port != defPort {
			origin += port
		}
	}
	return origin
}

// schemeOf is the scheme of r's connection, as an origin starts, and its
// default port as a Host writes it.
func schemeOf(r *http.Request) (scheme, defPort string) {
	if r.TLS != nil {
		return "https://", ":443"
	}
	return "http://", ":80"
}

// requestHost is r's Host, else its URL's host.
func requestHost(r *http.Request) string {
	if r.Host == "" && r.URL != nil {
		return r.URL.Host
	}
	return r.Host
}

// hostName is host without any port, an IPv6 literal keeping its brackets.
func hostName(host string) string {
	if strings.HasPrefix(host, "[") {
		if end := strings.IndexByte(host, ']'); end >= 0 {
			return host[:end+1]
		}
		return host
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		return host[:i]
	}
	return host
}

// LocalPort is the port of the listener that accepted r's connection (TCP
// for HTTP/1 and 2, UDP for HTTP/3), or 0 when the server did not say.
func LocalPort(r *http.Request) int {
	switch a := r.Context().Value(http.LocalAddrContextKey).(type) {
	case *net.TCPAddr:
		return a.Port
	case *net.UDPAddr:
		return a.Port
	case net.Addr:
		if _, port, err := net.SplitHostPort(a.String()); err == nil {
			if p, err := strconv.Atoi(port); err == nil && p > 0 && p <= 65535 {
				return p
			}
		}
	}
	return 0
}

// IsUnsafeMethod reports whether method may change state: anything but GET,
// HEAD, OPTIONS and TRACE. Methods are case-sensitive, so "get" is unsafe;
// an unknown method is unsafe, which fails closed.
func IsUnsafeMethod(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// CheckOrigin decides whether an unsafe request may proceed. self is the
// gateway's own origin (SelfOrigin) and allowed reports whether a normalized
// origin is in the allowlist (nil: none is). It returns "" to allow and
// reason.CrossOrigin to refuse.
//
// With an Origin header: "null" (sandboxed frames, opaque redirects, file:)
// and anything unparsable are refused; self or an allowed origin passes;
// anything else is refused. Without one, Sec-Fetch-Site "cross-site" or
// "same-site" is refused (a sibling subdomain is another site's page for
// CSRF purposes) and any other value passes. Neither header means a
// non-browser client, which a browser-borne CSRF cannot be, so it passes.
func CheckOrigin(r *http.Request, self string, allowed func(origin string) bool) reason.Reason {
	if vals, ok := r.Header["Origin"]; ok {
		// Browsers send one Origin; several are forged or mangled.
		if len(vals) != 1 {
			return reason.CrossOrigin
		}
		o := NormalizeOrigin(strings.TrimSpace(vals[0]))
		switch {
		case o == "": // "null", empty or not an origin
			return reason.CrossOrigin
		case o == self:
			return ""
		case allowed != nil && allowed(o):
			return ""
		}
		return reason.CrossOrigin
	}
	if FromOtherSite(r) {
		return reason.CrossOrigin
	}
	return ""
}

// FromOtherSite reports whether a browser says a page of another site made
// r: Sec-Fetch-Site "cross-site", or "same-site" (a sibling subdomain is
// another site's page for CSRF and for cross-site reads). Without the
// header (an older browser, a non-browser client) it is false.
func FromOtherSite(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	return strings.EqualFold(site, "cross-site") || strings.EqualFold(site, "same-site")
}

// IsNavigation reports whether r is a navigation (a document load rather
// than a fetch or subresource): Sec-Fetch-Mode "navigate", or, when the
// browser sends no Sec-Fetch-Mode, an Accept header that asks for text/html.
func IsNavigation(r *http.Request) bool {
	if mode := r.Header.Get("Sec-Fetch-Mode"); mode != "" {
		return strings.EqualFold(mode, "navigate")
	}
	return containsFold(r.Header.Get("Accept"), "text/html")
}

// IsTopLevelNavigation reports whether r loads a top-level document, the only
// case where redirecting to a customer's login page is useful (inside an
// iframe the login page would refuse to be framed). A navigation must have
// Sec-Fetch-Dest "document"; with no Sec-Fetch-* header at all (legacy
// browsers), a navigation detected by Accept counts.
func IsTopLevelNavigation(r *http.Request) bool {
	if !IsNavigation(r) {
		return false
	}
	if dest := r.Header.Get("Sec-Fetch-Dest"); dest != "" {
		return strings.EqualFold(dest, "document")
	}
	return !hasFetchMetadata(r.Header)
}

// hasFetchMetadata reports whether any Sec-Fetch-* request header is present.
func hasFetchMetadata(h http.Header) bool {
	for _, k := range [...]string{"Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Sec-Fetch-User"} {
		if len(h[k]) > 0 {
			return true
		}
	}
	return false
}

// containsFold reports whether substr (lower-case ASCII) occurs in s,
// ignoring ASCII case, without allocating.
func containsFold(s, substr string) bool {
	for i := 0; i+len(substr) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(substr)], substr) {
			return true
		}
	}
	return false
}

// ScopeToken reports whether s is one RFC 6749 scope-token (section 3.3):
// one or more of %x21 / %x23-5B / %x5D-7E, printable ASCII other than the
// space, '"' and '\\'.
func ScopeToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == '"' || c == '\\' || c >= 0x7f {
			return false
		}
	}
	return s != ""
}

// Scopes yields the scopes of a scope claim's text, split on the space
// (%x20) alone, as RFC 6749 delimits them; empty pieces are skipped. Any
// other byte, a tab or a non-breaking space included, stays inside its
// scope: splitting wider (strings.Fields) let one scope the token API
// accepted, "profile\u00a0deals:read", grant deals:read.
func Scopes(s string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for sc := range strings.SplitSeq(s, " ") {
			if sc != "" && !yield(sc) {
				return
			}
		}
	}
}

// ScopeClaims are the claims that grant scopes, as a require scope rule
// reads them: "scope" (RFC 8693, space-separated or an array) and "scp"
// (common in IdP tokens). A minted token gets its scope from the request
// only, so neither may be copied or set as an extra claim. A new slice
// each call: callers keep their own.
func ScopeClaims() []string { return []string{"scope", "scp"} }
