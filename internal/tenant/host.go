package tenant

import (
	"fmt"
	"net"
	"strings"

	"golang.org/x/net/idna"

	"github.com/embedgate/embedgate/internal/policy"
)

// A tenant's hosts as configured, and a request's Host, put in the one form
// the registry compares: the form a browser sends.

// normalizeHost lower-cases a host, drops a port and turns an IDN into its
// ASCII (punycode) form, as browsers send it and Caddy's host matcher
// compares it; it refuses URLs and any host no request Host can carry
// (policy.CheckHost), which would load as a tenant with no host binding.
func normalizeHost(h string) (string, error) {
	if h == "" || strings.ContainsAny(h, "/*@ ") {
		return "", fmt.Errorf("host %q: a bare host name is expected", h)
	}
	host := HostOf(h)
	if net.ParseIP(host) == nil {
		ascii, err := idna.ToASCII(host)
		if err != nil {
			return "", fmt.Errorf("host %q: not a valid host name", h)
		}
		host = strings.ToLower(ascii)
	}
	wire := host
	if strings.Contains(host, ":") {
		wire = "[" + host + "]"
	}
	if policy.CheckHost(wire) != nil || strings.HasSuffix(host, ".") {
		return "", fmt.Errorf("host %q: not a valid host name", h)
	}
	if policy.OddIPv4(host) {
		return "", fmt.Errorf("host %q: browsers read a name ending in a number as an IPv4 address and send it as four decimal numbers (127.0.0.1); write it so", h)
	}
	return host, nil
}

// HostOf returns the lower-case host of a request's Host header, without
// port; an IPv6 address in its canonical form (RFC 5952, as browsers
// serialize it), so that a configured "0:0::1" or "::ABCD" is the host a
// request for [::1] or [::abcd] names, not one no request can match.
func HostOf(hostport string) string {
	// SplitHostPort cannot succeed without a colon, and its error allocates:
	// the common case on the per-request path is a Host with no port.
	ipv6 := false
	if strings.Contains(hostport, ":") {
		if host, _, err := net.SplitHostPort(hostport); err == nil {
			hostport = host
		}
		ipv6 = strings.Contains(hostport, ":")
	}
	// The brackets of an IPv6 literal are trimmed by hand: strings.Trim
	// builds its cutset on every call, and this runs on every request.
	for hostport != "" && (hostport[0] == '[' || hostport[0] == ']') {
		hostport = hostport[1:]
	}
	for hostport != "" && (hostport[len(hostport)-1] == '[' || hostport[len(hostport)-1] == ']') {
		hostport = hostport[:len(hostport)-1]
	}
	if ipv6 {
		if c, ok := policy.CanonicalIPv6(hostport); ok {
			return c
		}
	}
	return strings.TrimSuffix(strings.ToLower(hostport), ".")
}
