package policy

import (
	"net/http"
	"net/netip"
	"path"
	"strings"

	"github.com/embedgate/embedgate/internal/reason"
)

// Boundary is the identity boundary: the one place that decides what of a
// client's request may travel on to the app. The app trusts the headers the
// gateway sets (X-Embed-*, forward_claim headers), so every channel by which
// a client could forge, remove or smuggle past them is checked here:
//
//   - request headers: every X-Embed-* and protected header is removed, and
//     so are method-override headers and HTTP2-Settings;
//   - hop-by-hop handling: a Connection header naming a protected header
//     would make the proxy delete the gateway's own copy after it was set;
//   - trailers: a declared or sent protected, removed or routing trailer
//     would arrive after the headers were checked (trailers.go);
//   - upgrades: after 101 the proxy tunnels bytes it never parses, so only
//     WebSocket (which the gateway Origin-checks) may pass;
//   - Host: parsed strictly, so that no odd spelling escapes the host to
//     tenant binding;
//   - path: none that an app would read a host from ("//x"), and
//     CanonicalPath where a rule reads it;
//   - query: the token parameter after '&' or ';' (query.go).
type Boundary struct {
	protected []string     // canonical names, beyond the X-Embed- prefix
	ahead     *aheadBudget // the bytes ReadTrailersAhead may hold
}

// alwaysRemoved are request headers that never reach the app:
//   - the method-override headers that many frameworks honour (a cross-site
//     GET with X-HTTP-Method-Override: DELETE would pass as a safe method);
//   - HTTP2-Settings, which only means something on an h2c upgrade;
//   - the headers by which frameworks let a front proxy override the host,
//     scheme, port or path they read. The gateway binds a session to the
//     Host it checked and applies require rules to the path it checked: a
//     client's Forwarded: host=other-tenant (Rack, Spring), X-Forwarded-Prefix
//     (Symfony, Spring, Werkzeug) or X-Original-URL (IIS, Laminas) would
//     have the app read another. X-Forwarded-Host is among them: Caddy's
//     reverse_proxy passes a trusted_proxies client's on as it came (a load
//     balancer that sets none lets the client's through), and otherwise
//     sets it from the Host; removed here, it always sets it from the Host
//     the gateway checked. X-Forwarded-For and -Proto stay Caddy's. An
//     operator who wants any of these for the app sets them with
//     header_up, which runs after the gateway.
var alwaysRemoved = []string{
	"X-Http-Method-Override", "X-Http-Method", "X-Method-Override", "Http2-Settings",
	"Forwarded", "X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server",
	"X-Forwarded-Scheme", "X-Forwarded-Ssl", "X-Forwarded-Uri", "X-Forwarded-Path",
	"Front-End-Https", "X-Url-Scheme", "X-Original-Url", "X-Original-Uri", "X-Rewrite-Url",
	"X-Original-Host",
}

// NewBoundary protects X-Embed-* and each of protected (header names the
// gateway sets upstream, such as forward_claim headers).
func NewBoundary(protected []string) *Boundary {
	b := &Boundary{ahead: processAhead}
	for _, p := range protected {
		b.protected = append(b.protected, http.CanonicalHeaderKey(p))
	}
	return b
}

// Protects reports whether name, folding ASCII case and '_' and '.' to '-',
// is a header only the gateway may set.
func (b *Boundary) Protects(name string) bool {
	if headerPrefix(name, embedPrefix) {
		return true
	}
	return equalFoldAny(name, b.protected)
}

// Admit checks r before any tenant logic and removes what a client may never
// send. It returns a *reason.Error with reason.BadRequest (answer 400) for a
// request that cannot be made safe; nothing of r is changed then. On success
// r's protected and always-removed headers are gone and, where the body can
// carry trailers, the body refuses a forbidden trailer when it arrives.
// Nothing is read ahead here, before any session is checked (that would
// let anyone have the gateway buffer maxTrailerBody per request):
// ReadTrailersAhead does it for a request about to go upstream.
func (b *Boundary) Admit(r *http.Request) error {
	if err := b.AdmitHeaders(r); err != nil {
		return err
	}
	return b.guardBody(r)
}

// AdmitHeaders is Admit for a request the gateway answers itself (its
// endpoints), which goes neither upstream nor to Caddy's error routes: the
// same checks and removals, but its body is neither read ahead nor
// guarded, since no trailer of it reaches anyone. Reading ahead there
// would buffer up to maxTrailerBody before the endpoint's own, far
// smaller, body limit applies.
func (b *Boundary) AdmitHeaders(r *http.Request) error {
	if err := CheckHost(r.Host); err != nil {
		return err
	}
	if err := checkUpgrade(r); err != nil {
		return err
	}
	if err := checkTarget(r); err != nil {
		return err
	}
	// A tunnel's body is the tunnel: reading it ahead for its trailers
	// (ReadTrailersAhead) would hold the handshake until it closes.
	declared, hasTrailer := r.Header["Trailer"]
	if OpensTunnel(r) && (hasTrailer || r.Trailer != nil) {
		return reason.Errorf(reason.BadRequest, "a WebSocket handshake declares trailers")
	}
	// TRACE (and IIS's TRACK) asks the server to echo the request: an app
	// or server that does would hand the identity headers and the signed
	// assertion the gateway added back to the client (cross-site tracing).
	// Any case: some servers read method names without it.
	if strings.EqualFold(r.Method, "TRACE") || strings.EqualFold(r.Method, "TRACK") {
		return reason.Errorf(reason.BadRequest, "method %s: the request would be echoed with the gateway's headers", r.Method)
	}
	if name, ok := b.firstProtected(r.Header["Connection"]); ok {
		return reason.Errorf(reason.BadRequest, "Connection names the protected header %s", sanitizeName(name))
	}
	if name, ok := b.refusedDeclared(declared, r.Trailer); ok {
		return reason.Errorf(reason.BadRequest, "Trailer declares the header %s, which no trailer may carry", sanitizeName(name))
	}
	StripHeaders(r.Header, b.protected)
	return nil
}

// checkTarget refuses request targets that an app reading its URL from
// the request line would take for another host, and the asterisk form on
// anything but OPTIONS, the one method it belongs to (RFC 9112 section
// 3.2.4). A path beginning "//" once decoded ("/%2F/" too, for apps that
// decode first), or "/\\" (WHATWG URL parsers read "\\" as "/"): Node's
// new URL(req.url, base) and Python's urlsplit read "//globex.test/x" as
// host globex.test, while the session is bound to the Host the gateway
// checked.
func checkTarget(r *http.Request) error {
	if r.URL == nil {
		return nil
	}
	// "http:globex.test/x" parses as an opaque URL: no path at all, and
	// a host to any parser that takes the scheme as a hint.
	if r.URL.Opaque != "" {
		return reason.Errorf(reason.BadRequest, "an opaque request target: an app would read a host from it")
	}
	p := r.URL.Path
	if len(p) >= 2 && p[0] == '/' {
		// WHATWG URL parsers (Node) and Python's urlsplit drop tab, CR
		// and LF anywhere, so "/%09/globex.test" decodes to a host too.
		rest := strings.TrimLeft(p[1:], "\t\r\n")
		if rest != "" && (rest[0] == '/' || rest[0] == '\\') {
			return reason.Errorf(reason.BadRequest, "the path begins with %q: an app would read a host from it", p[:len(p)-len(rest)+1])
		}
	}
	if p == "*" && r.Method != http.MethodOptions {
		return reason.Errorf(reason.BadRequest, "the asterisk-form target is for OPTIONS only")
	}
	return nil
}

// checkUpgrade lets only a WebSocket handshake change protocols. After a 101
// the proxy copies bytes both ways without parsing them, so an h2c (or any
// other) upgrade would carry requests that no check ever sees. An HTTP/2
// extended CONNECT (RFC 8441) is the same handshake, allowed only for
// websocket; any other CONNECT has no business behind an app gateway.
func checkUpgrade(r *http.Request) error {
	if r.Method == http.MethodConnect {
		// Exactly the test Caddy's proxy makes before it turns the CONNECT
		// into a WebSocket upgrade: HTTP/2 carries :protocol as a header,
		// quic-go's HTTP/3 puts it in r.Proto.
		if r.ProtoMajor == 2 && r.Header.Get(":protocol") == "websocket" ||
			r.ProtoMajor == 3 && r.Proto == "websocket" {
			return nil
		}
		return reason.Errorf(reason.BadRequest, "CONNECT is only accepted for a WebSocket (RFC 8441, RFC 9220)")
	}
	vals, ok := r.Header["Upgrade"]
	if !ok {
		return nil
	}
	toks := listTokens(vals)
	if len(toks) != 1 || !strings.EqualFold(toks[0], "websocket") {
		return reason.Errorf(reason.BadRequest, "only Upgrade: websocket is accepted")
	}
	return nil
}

// OpensTunnel reports whether r asks to become a tunnel: an Upgrade or a
// CONNECT, which the boundary admits only as a WebSocket (checkUpgrade).
// After the handshake the proxy carries bytes no request check sees.
func OpensTunnel(r *http.Request) bool {
	_, upgrade := r.Header["Upgrade"]
	return upgrade || r.Method == http.MethodConnect
}

// firstProtected is the first token of comma-separated header values that
// names a protected header. It allocates nothing: Connection is on nearly
// every HTTP/1.1 request.
func (b *Boundary) firstProtected(vals []string) (string, bool) {
	for _, v := range vals {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			if tok = trimOWS(tok); tok != "" && b.Protects(tok) {
				return tok, true
			}
		}
	}
	return "", false
}

// listTokens splits comma-separated header values into trimmed, non-empty
// tokens.
func listTokens(vals []string) []string {
	var out []string
	for _, v := range vals {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			if tok = trimOWS(tok); tok != "" {
				out = append(out, tok)
			}
		}
	}
	return out
}

// sanitizeName keeps a client-chosen header name printable and short for a
// log detail.
func sanitizeName(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

// CheckHost accepts a Host that is exactly host[:port]: a DNS name of valid
// labels with at most one trailing dot, an IPv4 address, or a bracketed IPv6
// address; at most one port of 1 to 5 digits, 1..65535, without a leading
// zero. Any other spelling (acme.test:80:80, acme.test.., acme.test:443:1)
// could normalize to no configured host and escape the host to tenant
// binding on a catch-all site, so it is refused before any tenant logic.
func CheckHost(hostport string) error {
	if validHostPort(hostport) {
		return nil
	}
	return reason.Errorf(reason.BadRequest, "Host is not a valid host[:port]")
}

// validHostPort is CheckHost's test; it allocates nothing.
func validHostPort(hostport string) bool {
	host, port := hostport, ""
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return false
		}
		host, port = hostport[1:end], hostport[end+1:]
		if !validIPv6(host) {
			return false
		}
	} else if i := strings.IndexByte(host, ':'); i >= 0 {
		host, port = hostport[:i], hostport[i:]
		if !validDNSName(host) {
			return false
		}
	} else if !validDNSName(host) {
		return false
	}
	return port == "" || validPort(port)
}

// validDNSName: 1..253 bytes of labels (letters, digits, '-' and '_', 1..63
// bytes, no leading or trailing '-'), with at most one trailing dot. An IPv4
// address is such a name too.
func validDNSName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	// One pass over the bytes, not SplitSeq: this runs on every request.
	start := 0
	for i := 0; i <= len(h); i++ {
		if i < len(h) && h[i] != '.' {
			if !isLabelByte(h[i]) {
				return false
			}
			continue
		}
		label := h[start:i]
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		start = i + 1
	}
	return true
}

// validIPv6 accepts hex digits, ':' and '.' (an embedded IPv4 tail) that
// form an address; a zone ("%eth0") is refused.
func validIPv6(h string) bool {
	if h == "" || !strings.Contains(h, ":") {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !isHex(c) && c != ':' && c != '.' {
			return false
		}
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.Is6() && a.Zone() == ""
}

func isLabelByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// validPort is ":" and 1..65535 in decimal without a leading zero.
func validPort(p string) bool {
	if len(p) < 2 || len(p) > 6 || p[0] != ':' || p[1] == '0' {
		return false
	}
	n := 0
	for i := 1; i < len(p); i++ {
		c := p[i]
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}

// CanonicalPath reports whether r's path reads the same to every parser: no
// dot segments, no empty segments, no encoded or literal slashes or
// backslashes, and no path parameters (';' or %3B) in any segment. A require
// rule such as claim org.id {http.request.uri.path.0} reads the decoded
// path; an upstream that resolves /acme/../globex itself, decodes %2F, or
// (as servlet containers do) drops ";params" and then resolves "..", would
// serve another tenant's data to a request the rule let through.
func CanonicalPath(r *http.Request) bool {
	p := r.URL.Path
	if p == "" || p == "/" {
		return true
	}
	if strings.ContainsAny(p, "\\;") || strings.Contains(p, "//") {
		return false
	}
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") {
		clean += "/"
	}
	if clean != p {
		return false
	}
	raw := strings.ToLower(r.URL.EscapedPath())
	// %25 too: an upstream that decodes twice would read %252e%252e as "..".
	for _, enc := range [...]string{"%2f", "%5c", "%2e", "%3b", "%25"} {
		if strings.Contains(raw, enc) {
			return false
		}
	}
	return true
}

// IsAlwaysRemoved reports whether name is a request header that never
// reaches the app (method overrides, HTTP2-Settings, host and path overrides).
// StripHeaders asks this about every header of every request, so it looks
// only at the removed names of name's length, and compares their last
// bytes first: names of one length that share a prefix (X-Forwarded-For,
// X-Forwarded-Ssl) differ mostly at the end.
func IsAlwaysRemoved(name string) bool {
	if len(name) == 0 || len(name) >= len(alwaysRemovedByLen) {
		return false
	}
	last := foldHeaderByte(name[len(name)-1])
	for _, e := range alwaysRemovedByLen[len(name)] {
		if last == foldHeaderByte(e[len(e)-1]) && headerPrefix(name, e) {
			return true
		}
	}
	return false
}

// alwaysRemovedByLen is alwaysRemoved by name length.
var alwaysRemovedByLen = func() (byLen [32][]string) {
	for _, n := range alwaysRemoved {
		byLen[len(n)] = append(byLen[len(n)], n)
	}
	return byLen
}()
