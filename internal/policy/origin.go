package policy

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// ParseOrigin validates an origin from configuration (frame_ancestors) and
// returns its serialized form: lower-case scheme and host, default port
// dropped. Only https is accepted, except http for loopback hosts (localhost,
// 127.0.0.0/8, ::1) so that local development works. Wildcards, paths,
// queries, user info and the separators ';' and ',' are refused, because each
// would either widen the allowlist or corrupt the CSP it is written into.
func ParseOrigin(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("empty origin")
	}
	if strings.ContainsAny(s, "*;, \t'\"") {
		return "", fmt.Errorf("origin %s: wildcards, quotes, spaces, ';' and ',' are not allowed", Shown(s))
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("origin %s: %w", Shown(s), URLCause(err))
	}
	scheme := strings.ToLower(u.Scheme)
	if u.Opaque != "" || u.Host == "" {
		return "", fmt.Errorf("origin %s: must be scheme://host[:port]", Shown(s))
	}
	if u.User != nil {
		return "", fmt.Errorf("origin %s: user info is not allowed", Shown(s))
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || strings.HasSuffix(s, "#") {
		return "", fmt.Errorf("origin %s: an origin has no path, query or fragment", Shown(s))
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	switch scheme {
	case "https":
		if port == "443" {
			port = ""
		}
	case "http":
		if !IsLoopbackHost(host) {
			return "", fmt.Errorf("origin %s: scheme must be https (http only for localhost)", Shown(s))
		}
		if port == "80" {
			port = ""
		}
	default:
		return "", fmt.Errorf("origin %s: scheme must be https (http only for localhost)", Shown(s))
	}
	if host == "" {
		return "", fmt.Errorf("origin %s: missing host", Shown(s))
	}
	if c, ok := CanonicalIPv6(host); ok {
		host = c // as a browser's Origin writes it
	} else if OddIPv4(host) {
		return "", fmt.Errorf("origin %s: browsers send an IPv4 address as four decimal numbers (127.0.0.1); write it so", Shown(s))
	}
	return serialize(scheme, host, port), nil
}

// IsLoopbackHost reports whether host (no port) names this machine.
func IsLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// SecureURL reports whether u is absolute (has a host) and either https, or
// http to a loopback host (IsLoopbackHost) for local development. Callers
// add their own rules (user info, fragment, ...).
func SecureURL(u *url.URL) bool {
	return u.Host != "" && (u.Scheme == "https" || (u.Scheme == "http" && IsLoopbackHost(u.Hostname())))
}

// Shown is a configured URL as errors name it, quoted: ShownURL of it, or,
// when it does not parse, the text as given unless it holds an '@' or a
// '?' (then a mark: user info or a query may be a credential).
func Shown(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return strconv.Quote(ShownURL(u))
	}
	if !strings.ContainsAny(raw, "@?") {
		return strconv.Quote(raw)
	}
	return "(a URL that does not parse)"
}

// URLCause is err without the URL that a *url.Error (from url.Parse or an
// http.Client) repeats, query and user info included.
func URLCause(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}

// ShownURL is u as errors and logs may name it: without user info and
// query, either of which may hold a credential (?access_token=…), marked
// "…@" and "?…" where they were cut (so an error about them still shows
// where the problem is).
func ShownURL(u *url.URL) string {
	shown := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}).String()
	if u.User != nil {
		shown = strings.Replace(shown, "//", "//…@", 1)
	}
	if u.RawQuery != "" || u.ForceQuery {
		shown += "?…"
	}
	return shown
}

// NormalizeOrigin canonicalizes an Origin header value from a request so it
// can be compared with configured origins. It returns "" for anything that is
// not a plain scheme://host[:port] origin, including "null".
func NormalizeOrigin(s string) string {
	if s == "" || s == "null" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if scheme != "https" && scheme != "http" {
		return ""
	}
	return serialize(scheme, host, port)
}

// serialize writes an origin as browsers send it: IPv6 hosts bracketed, the
// port only when it is not the scheme's default (callers drop that).
func serialize(scheme, host, port string) string {
	out := scheme + "://"
	if strings.Contains(host, ":") {
		out += "[" + host + "]"
	} else {
		out += host
	}
	if port != "" {
		out += ":" + port
	}
	return out
}
