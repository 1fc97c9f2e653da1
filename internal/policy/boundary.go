package policy

import (
	"bytes"
	"errors"
	"io"
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
//   - trailers: a declared or sent protected trailer would arrive after the
//     headers were checked;
//   - upgrades: after 101 the proxy tunnels bytes it never parses, so only
//     WebSocket (which the gateway Origin-checks) may pass;
//   - Host: parsed strictly, so that no odd spelling escapes the host to
//     tenant binding;
//   - path: CanonicalPath, where a rule reads it;
//   - query: the token parameter after '&' or ';' (query.go).
type Boundary struct {
	protected []string // canonical names, beyond the X-Embed- prefix
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
//     have the app read another. Caddy's reverse_proxy itself sets
//     X-Forwarded-For, -Proto and -Host (from trusted_proxies only), so
//     those stay its concern; an operator who wants any of these for the
//     app sets them with header_up, which runs after the gateway.
var alwaysRemoved = []string{
	"X-Http-Method-Override", "X-Http-Method", "X-Method-Override", "Http2-Settings",
	"Forwarded", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server",
	"X-Forwarded-Scheme", "X-Forwarded-Ssl", "X-Forwarded-Uri", "X-Forwarded-Path",
	"Front-End-Https", "X-Url-Scheme", "X-Original-Url", "X-Original-Uri", "X-Rewrite-Url",
	"X-Original-Host",
}

// NewBoundary protects X-Embed-* and each of protected (header names the
// gateway sets upstream, such as forward_claim headers).
func NewBoundary(protected []string) *Boundary {
	b := &Boundary{}
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
// carry trailers, the body refuses a protected trailer when it arrives.
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
	// net/http moves a declared Trailer header into r.Trailer's keys; a
	// handler-built request may still carry it as a header.
	if name, ok := b.firstProtected(r.Header["Trailer"]); ok {
		return reason.Errorf(reason.BadRequest, "Trailer declares the protected header %s", sanitizeName(name))
	}
	for name := range r.Trailer {
		if b.Protects(name) {
			return reason.Errorf(reason.BadRequest, "Trailer declares the protected header %s", sanitizeName(name))
		}
	}
	StripHeaders(r.Header, b.protected)
	return nil
}

// guardBody makes sure no protected trailer reaches the upstream with r.
func (b *Boundary) guardBody(r *http.Request) error {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	// net/http fills r.Trailer only when the body reaches EOF, after the
	// request has gone upstream, and with every trailer sent, declared or
	// not, once any is declared. So a request that declares trailers (rare:
	// chunked uploads with a checksum) is read first, up to
	// maxTrailerBody, and its trailers checked: a protected one is a 400
	// before anything goes upstream.
	if r.Trailer != nil {
		if err := b.readTrailers(r); err != nil {
			return err
		}
	}
	// A body still of unknown length may end in trailers nobody declared,
	// or be larger than maxTrailerBody: the guard checks them at EOF.
	if r.ContentLength < 0 || r.Trailer != nil {
		r.Body = &trailerGuard{ReadCloser: r.Body, req: r, b: b}
	}
	return nil
}

// maxTrailerBody bounds the body read ahead to check declared trailers; a
// longer one streams, and the guard fails it at EOF if a protected trailer
// comes.
const maxTrailerBody = 8 << 20

// readTrailers reads r's body (up to maxTrailerBody) so that its trailers
// are known, refuses a protected one, and puts the body back.
func (b *Boundary) readTrailers(r *http.Request) error {
	buf, err := io.ReadAll(io.LimitReader(r.Body, maxTrailerBody+1))
	if err != nil {
		return reason.Errorf(reason.BadRequest, "reading a body with trailers: %v", err)
	}
	if len(buf) > maxTrailerBody {
		// Too long to hold: stream the rest behind the guard.
		r.Body = readCloser{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
		return nil
	}
	for name := range r.Trailer {
		if b.Protects(name) {
			return reason.Errorf(reason.BadRequest, "a trailer carries the protected header %s", sanitizeName(name))
		}
	}
	_ = r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(buf))
	r.ContentLength = int64(len(buf))
	return nil
}

// readCloser reads from one reader and closes another.
type readCloser struct {
	io.Reader
	io.Closer
}

// ErrProtectedTrailer ends the body of a request whose trailers carry a
// protected header: the upstream request fails instead of completing with
// a forged identity in r.Trailer.
var ErrProtectedTrailer = errors.New("request trailer carries a protected header")

// trailerGuard checks the trailers net/http has just filled in at EOF, and
// removes protected ones before any reader of r.Trailer (the proxy copies
// them in its own body wrapper, which reads through this one) can see them.
type trailerGuard struct {
	io.ReadCloser
	req     *http.Request
	b       *Boundary
	refused bool // once refused, every later Read fails too
}

func (t *trailerGuard) Read(p []byte) (int, error) {
	if t.refused {
		return 0, ErrProtectedTrailer
	}
	n, err := t.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		for name := range t.req.Trailer {
			if t.b.Protects(name) {
				delete(t.req.Trailer, name)
				t.refused = true
			}
		}
		if t.refused {
			return n, ErrProtectedTrailer
		}
	}
	return n, err
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
