package gateway

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/embedgate/embedgate/internal/policy"
)

// maxInjectBody bounds the HTML the gateway holds to insert the bridge
// script; a larger response passes through untouched.
const maxInjectBody = 8 << 20

// serveUpstream runs the upstream with w (the framing writer), adding the
// bridge script to its HTML when inject_bridge is on.
func (g *Gateway) serveUpstream(w http.ResponseWriter, r *http.Request, next Next) error {
	if !g.cfg.InjectBridge || r.Method == http.MethodHead {
		return next(w, r)
	}
	if policy.IsNavigation(r) {
		// HTML is rewritten only when it arrives uncompressed; Caddy's encode
		// handler can still compress the result toward the browser.
		r.Header.Del("Accept-Encoding")
	}
	iw := &injectWriter{ResponseWriter: w, src: g.paths.bridge, newNonce: newNonce}
	err := next(iw, r)
	if ferr := iw.finish(); err == nil {
		err = ferr
	}
	return err
}

// injectWriter holds an eligible HTML response (text/html, not encoded, not
// 1xx/204/206/304, at most maxInjectBody) and writes it on finish with
// <script src="{prefix}/bridge.js" defer> before </body>, Content-Length
// fixed and the upstream CSP adjusted so that the script may run. Anything
// else passes straight through.
type injectWriter struct {
	http.ResponseWriter
	src      string
	newNonce func() string
	state    int
	status   int
	buf      bytes.Buffer
}

const (
	injectUndecided = iota
	injectBuffering
	injectPassing
)

func (iw *injectWriter) WriteHeader(status int) {
	switch iw.state {
	case injectPassing:
		iw.ResponseWriter.WriteHeader(status)
		return
	case injectBuffering:
		return // superfluous, as net/http would treat it
	}
	if status < 200 && status != http.StatusSwitchingProtocols {
		iw.ResponseWriter.WriteHeader(status) // informational: still undecided
		return
	}
	if injectable(iw.Header(), status) {
		iw.state, iw.status = injectBuffering, status
		return
	}
	iw.state = injectPassing
	iw.ResponseWriter.WriteHeader(status)
}

func (iw *injectWriter) Write(b []byte) (int, error) {
	if iw.state == injectUndecided {
		iw.WriteHeader(http.StatusOK)
	}
	if iw.state == injectPassing {
		return iw.ResponseWriter.Write(b)
	}
	if iw.buf.Len()+len(b) > maxInjectBody {
		// Too large to hold: send what is held and the rest as they are.
		iw.state = injectPassing
		iw.ResponseWriter.WriteHeader(iw.status)
		if _, err := iw.ResponseWriter.Write(iw.buf.Bytes()); err != nil {
			return 0, err
		}
		iw.buf = bytes.Buffer{}
		return iw.ResponseWriter.Write(b)
	}
	return iw.buf.Write(b)
}

// FlushError holds a flush while the page is buffered: Caddy's proxy
// flushes every write of a response without Content-Length, and the script
// can only go in once the whole page is there.
func (iw *injectWriter) FlushError() error {
	if iw.state != injectPassing {
		return nil
	}
	return http.NewResponseController(iw.ResponseWriter).Flush()
}

// Flush is http.Flusher for handlers that type-assert it.
func (iw *injectWriter) Flush() { _ = iw.FlushError() }

// Unwrap lets http.ResponseController reach Hijack and deadlines underneath.
func (iw *injectWriter) Unwrap() http.ResponseWriter { return iw.ResponseWriter }

// finish writes a held page, with the script when the CSP can allow it.
func (iw *injectWriter) finish() error {
	if iw.state != injectBuffering {
		return nil
	}
	iw.state = injectPassing
	body := iw.buf.Bytes()
	h := iw.Header()
	if nonce, ok := allowBridgeScript(h, iw.newNonce); ok {
		body = insertScript(body, scriptTag(iw.src, nonce))
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if et := h.Get("ETag"); et != "" && !strings.HasPrefix(et, "W/") {
			h.Set("ETag", "W/"+et) // the bytes differ from the upstream's
		}
	}
	iw.ResponseWriter.WriteHeader(iw.status)
	_, err := iw.ResponseWriter.Write(body)
	iw.buf = bytes.Buffer{}
	return err
}

// injectable reports whether a response with header h and status may get
// the script.
func injectable(h http.Header, status int) bool {
	switch {
	case status < 200, status == http.StatusNoContent, status == http.StatusPartialContent, status == http.StatusNotModified:
		return false
	case h.Get("Content-Range") != "":
		return false
	}
	if ce := h.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return false
	}
	if mt, _, err := mime.ParseMediaType(h.Get("Content-Type")); err != nil || mt != "text/html" {
		return false
	}
	if cl := h.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err != nil || n > maxInjectBody {
			return false
		}
	}
	return true
}

func scriptTag(src, nonce string) []byte {
	tag := `<script src="` + src + `" defer`
	if nonce != "" {
		tag += ` nonce="` + nonce + `"`
	}
	return []byte(tag + `></script>`)
}

// insertScript puts tag before the last </body>, or at the end without one.
func insertScript(body, tag []byte) []byte {
	i := lastIndexFold(body, "</body")
	if i < 0 {
		return append(body, tag...)
	}
	out := make([]byte, 0, len(body)+len(tag))
	out = append(out, body[:i]...)
	out = append(out, tag...)
	return append(out, body[i:]...)
}

// lastIndexFold is bytes.LastIndex ignoring ASCII case; sub is lower case.
func lastIndexFold(b []byte, sub string) int {
	for i := len(b) - len(sub); i >= 0; i-- {
		if b[i] == sub[0] && strings.EqualFold(string(b[i:i+len(sub)]), sub) {
			return i
		}
	}
	return -1
}

func newNonce() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// allowBridgeScript adjusts the upstream's Content-Security-Policy in h so
// that an external same-origin script tag with the returned nonce (none when
// "") may run, and reports false when the script must not be added.
//
// Each enforced policy's directive for <script> elements (script-src-elem,
// else script-src, else default-src) is checked; the tag must satisfy all.
//   - A nonce already in a policy is reused, so the tag carries it.
//   - A policy satisfied by that nonce, or by 'self' (or *, https:) without
//     'strict-dynamic', is left alone.
//   - A policy with 'strict-dynamic' or a nonce of its own gets 'nonce-N'
//     (its 'unsafe-inline' is already ignored by browsers, so its inline
//     scripts are unaffected).
//   - Any other policy gets 'self'. A nonce is never added to a policy that
//     relies on 'unsafe-inline' without a nonce or hash: it would disable
//     that policy's inline scripts.
//   - Sources only in default-src are copied into a new script-src, so that
//     the addition does not widen images, styles or connections.
//   - A policy whose scripts are 'none' keeps its word: no script is added.
func allowBridgeScript(h http.Header, newNonce func() string) (string, bool) {
	vals := h["Content-Security-Policy"]
	if len(vals) == 0 {
		return "", true
	}
	policies := parseCSP(vals)
	nonce := ""
	for _, p := range policies {
		if d := p.scriptDirective(); d != nil {
			if n := d.firstNonce(); n != "" {
				nonce = n
				break
			}
		}
	}
	changed := false
	for i := range policies {
		p := &policies[i]
		d := p.scriptDirective()
		if d == nil {
			continue
		}
		f := d.features()
		switch {
		case f.none:
			return "", false
		case nonce != "" && f.nonces[nonce]:
			continue
		case f.allowsSelf && !f.strictDynamic:
			continue
		}
		var add string
		if f.strictDynamic || f.hasNonce {
			if f.unsafeInline && !f.hasNonce && !f.hasHash {
				return "", false // strict-dynamic with only 'unsafe-inline': a nonce would break CSP2 browsers
			}
			if nonce == "" {
				nonce = newNonce()
			}
			add = "'nonce-" + nonce + "'"
		} else {
			add = "'self'"
		}
		p.add(d, add)
		changed = true
	}
	if changed {
		h["Content-Security-Policy"] = serializeCSP(policies)
	}
	return nonce, true
}

// cspPolicy is one policy; header is the index of the header value it came
// from, so that the header keeps its shape.
type cspPolicy struct {
	header     int
	directives []cspDirective
}

type cspDirective struct {
	name    string // lower case
	sources []string
}

func parseCSP(vals []string) []cspPolicy {
	var out []cspPolicy
	for i, v := range vals {
		for _, p := range strings.Split(v, ",") {
			pol := cspPolicy{header: i}
			for _, d := range strings.Split(p, ";") {
				fields := strings.Fields(d)
				if len(fields) == 0 {
					continue
				}
				pol.directives = append(pol.directives, cspDirective{name: strings.ToLower(fields[0]), sources: fields[1:]})
			}
			if len(pol.directives) > 0 {
				out = append(out, pol)
			}
		}
	}
	return out
}

func serializeCSP(policies []cspPolicy) []string {
	var out []string
	last := -1
	for _, p := range policies {
		parts := make([]string, len(p.directives))
		for i, d := range p.directives {
			parts[i] = strings.Join(append([]string{d.name}, d.sources...), " ")
		}
		s := strings.Join(parts, "; ")
		if p.header == last {
			out[len(out)-1] += ", " + s
			continue
		}
		out = append(out, s)
		last = p.header
	}
	return out
}

// scriptDirective is the directive that governs <script src> in p (the first
// of a name counts, as in browsers), or nil when scripts are unrestricted.
func (p *cspPolicy) scriptDirective() *cspDirective {
	for _, name := range []string{"script-src-elem", "script-src", "default-src"} {
		for i := range p.directives {
			if p.directives[i].name == name {
				return &p.directives[i]
			}
		}
	}
	return nil
}

// add appends source to d, or, when d is default-src, to a new script-src
// holding default-src's sources.
func (p *cspPolicy) add(d *cspDirective, source string) {
	if d.name != "default-src" {
		d.sources = append(d.sources, source)
		return
	}
	srcs := append(append([]string(nil), d.sources...), source)
	if len(d.sources) == 1 && strings.EqualFold(d.sources[0], "'none'") {
		srcs = []string{source}
	}
	p.directives = append(p.directives, cspDirective{name: "script-src", sources: srcs})
}

type scriptFeatures struct {
	none, allowsSelf, strictDynamic, unsafeInline, hasNonce, hasHash bool
	nonces                                                           map[string]bool
}

func (d *cspDirective) features() scriptFeatures {
	f := scriptFeatures{nonces: map[string]bool{}}
	f.none = len(d.sources) == 0 || (len(d.sources) == 1 && strings.EqualFold(d.sources[0], "'none'"))
	// default-src 'none' is about everything: a script-src of our own is fine.
	if f.none && d.name == "default-src" && len(d.sources) == 1 {
		f.none = false
	}
	for _, s := range d.sources {
		ls := strings.ToLower(s)
		switch {
		case ls == "'self'", ls == "*", ls == "https:", ls == "http:":
			f.allowsSelf = true
		case ls == "'strict-dynamic'":
			f.strictDynamic = true
		case ls == "'unsafe-inline'":
			f.unsafeInline = true
		case strings.HasPrefix(ls, "'nonce-") && strings.HasSuffix(ls, "'"):
			f.hasNonce = true
			f.nonces[s[len("'nonce-"):len(s)-1]] = true
		case strings.HasPrefix(ls, "'sha256-"), strings.HasPrefix(ls, "'sha384-"), strings.HasPrefix(ls, "'sha512-"):
			f.hasHash = true
		}
	}
	return f
}

// firstNonce is the value of d's first well-formed nonce source.
func (d *cspDirective) firstNonce() string {
	for _, s := range d.sources {
		if len(s) > len("'nonce-'") && strings.EqualFold(s[:len("'nonce-")], "'nonce-") && s[len(s)-1] == '\'' {
			if v := s[len("'nonce-") : len(s)-1]; validNonce(v) {
				return v
			}
		}
	}
	return ""
}

// validNonce accepts CSP's base64-value: it goes into an HTML attribute.
func validNonce(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '-' || c == '_' || c == '=') {
			return false
		}
	}
	return v != ""
}
