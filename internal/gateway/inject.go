package gateway

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"html"
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
// bridge script to its HTML when inject_bridge is on. Only a document load
// (wantsDocument) is wrapped: any other response, such as an HTML fragment
// fetched by script, streams through untouched and unbuffered.
func (g *Gateway) serveUpstream(w http.ResponseWriter, r *http.Request, next Next) error {
	if !g.cfg.InjectBridge || r.Method == http.MethodHead || !wantsDocument(r) {
		return next(w, r)
	}
	// HTML is rewritten only when it arrives uncompressed; Caddy's encode
	// handler can still compress the result toward the browser.
	r.Header.Del("Accept-Encoding")
	// The tag's src is absolute: a relative one resolves against the page's
	// base URL, which a <base href> the app lets through (HTML injection)
	// points at another site, whose script would then run under the nonce
	// the tag carries.
	self := policy.SelfOrigin(r)
	iw := &injectWriter{ResponseWriter: w, src: html.EscapeString(self + g.paths.bridge),
		srcURL: cspSourceURL(self, g.paths.bridge), newNonce: newNonce}
	err := next(iw, r)
	if ferr := iw.finish(); err == nil {
		err = ferr
	}
	return err
}

// wantsDocument reports whether r loads a document into a window or frame:
// a navigation (policy.IsNavigation) whose Sec-Fetch-Dest, when sent, is
// document, iframe or frame. fetch(), XHR and htmx requests have mode cors
// or same-origin and Sec-Fetch-Dest "empty".
func wantsDocument(r *http.Request) bool {
	if !policy.IsNavigation(r) {
		return false
	}
	dest := r.Header.Get("Sec-Fetch-Dest")
	return dest == "" || strings.EqualFold(dest, "document") || strings.EqualFold(dest, "iframe") || strings.EqualFold(dest, "frame")
}

// injectWriter holds an eligible HTML response (text/html, not encoded, not
// 1xx/204/206/304, at most maxInjectBody) and writes it on finish with
// <script src="{origin}{prefix}/bridge.js" defer> before </body>, Content-Length
// fixed and the upstream CSP adjusted so that the script may run. Anything
// else passes straight through.
type injectWriter struct {
	http.ResponseWriter
	src      string // the tag's src, HTML-escaped: {origin}{prefix}/bridge.js
	srcURL   string // the same as a CSP source expression, or "" (cspSourceURL)
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
	// Where first: a page with no place for the script keeps its CSP too.
	if at := scriptInsertion(body, h.Get("Content-Type")); at >= 0 {
		if nonce, ok := allowBridgeScript(h, iw.srcURL, iw.newNonce); ok {
			body = insertAt(body, scriptTag(iw.src, nonce), at)
			h.Set("Content-Length", strconv.Itoa(len(body)))
			if et := h.Get("ETag"); et != "" && !strings.HasPrefix(et, "W/") {
				h.Set("ETag", "W/"+et) // the bytes differ from the upstream's
			}
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
	case len(h["Content-Range"]) > 0, !identityEncoded(h["Content-Encoding"]):
		return false
	}
	// Every line counts, not only the first (h.Get): with two Content-Type
	// lines a browser may take the second, and "identity" then "gzip" is a
	// gzip body.
	ct := h["Content-Type"]
	if len(ct) != 1 {
		return false
	}
	if mt, _, err := mime.ParseMediaType(ct[0]); err != nil || mt != "text/html" {
		return false
	}
	switch cl := h["Content-Length"]; len(cl) {
	case 0:
	case 1:
		if n, err := strconv.ParseInt(cl[0], 10, 64); err != nil || n > maxInjectBody {
			return false
		}
	default:
		return false
	}
	return true
}

// identityEncoded reports whether every coding on every Content-Encoding
// line is identity (or there is none).
func identityEncoded(lines []string) bool {
	for _, line := range lines {
		for c := range strings.SplitSeq(line, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				return false
			}
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

// newNonce is a fresh CSP nonce: 144 bits from crypto/rand, base64.
func newNonce() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b) // never fails (crypto/rand crashes the program instead)
	return base64.StdEncoding.EncodeToString(b)
}

const (
	cspHeader           = "Content-Security-Policy"
	cspReportOnlyHeader = "Content-Security-Policy-Report-Only"
)

// addsNonce reports whether nonce would be added to one of the enforced
// policies csp, one that lacks it.
func addsNonce(csp policy.CSP, nonce string, httpsPage bool) bool {
	for i := range csp {
		if d := scriptDirective(&csp[i]); d != nil && bridgeNeeds(d.Sources(), nonce, httpsPage) == needNonce {
			return true
		}
	}
	return false
}

// allowBridgeScript adjusts the upstream's CSP in h so that the tag
// <script src="{prefix}/bridge.js" nonce="N"> (no nonce attribute when N is
// "") may run, without letting anything else run that did not before, and
// reports false when the script must not be added (h is then unchanged).
// srcURL is that script's absolute URL as a source expression (cspSourceURL),
// "" when it cannot be written as one.
//
// In each policy the directive for <script> elements (script-src-elem, else
// script-src, else default-src) decides; every enforced policy must allow
// the tag, so the first well-formed nonce found in one is the tag's nonce
// when every enforced policy that needs a nonce holds it already (else a
// fresh one: adding the app's nonce to a policy would let the app's scripts
// tagged with it run where that policy blocked them):
//   - a policy holding that nonce is left alone;
//   - 'none' (alone, or an empty list) keeps its word: no script is added;
//   - 'strict-dynamic' (host sources and 'self' ignored) gets 'nonce-N';
//   - 'self', * or the page's scheme already allow the script: left alone;
//   - 'unsafe-inline' without a nonce or hash gets srcURL, an exact path
//     source matching that one file (a nonce would switch 'unsafe-inline'
//     off and break the app's inline scripts);
//   - anything else (hashes, host lists, another nonce) gets 'nonce-N'.
//
// 'self' is never added: it would let every same-origin script run (JSONP
// endpoints, uploaded files). A nonce is fresh (newNonce) unless reused.
// When only default-src restricts scripts, a new script-src copies its
// sources plus the addition, so that neither default-src (images, styles,
// connections) nor the app's own script sources change.
//
// Content-Security-Policy-Report-Only gets the same additions, so that a
// policy the app is trialling does not report the gateway's script on every
// page view (which would bury real reports and make it look unsafe to
// enforce). Report-only policies cannot block, so they never stop the
// injection: one whose scripts are 'none' (or that needs a URL that cannot be
// written) is left as it is and will report.
func allowBridgeScript(h http.Header, srcURL string, newNonce func() string) (string, bool) {
	// Normalized first, so that a header rewritten here keeps the form it
	// has always had: lower-case names, sources separated by single spaces.
	enforced := policy.ParseCSP(h[cspHeader]).Normalize()
	reportOnly := policy.ParseCSP(h[cspReportOnlyHeader]).Normalize()
	if len(enforced) == 0 && len(reportOnly) == 0 {
		return "", true
	}
	nonce := firstNonce(enforced)
	if nonce == "" {
		nonce = firstNonce(reportOnly)
	}
	httpsPage := strings.HasPrefix(srcURL, "https:")
	if nonce != "" && addsNonce(enforced, nonce, httpsPage) {
		// An app's nonce goes only where a policy holds it already: added
		// to an enforced policy that lacks it, it would let run the app's
		// scripts tagged with it, which that policy blocked. A fresh one
		// lets only the bridge through.
		nonce = ""
	}
	apply := func(csp policy.CSP, enforcing bool) (changed, ok bool) {
		for i := range csp {
			p := &csp[i]
			d := scriptDirective(p)
			if d == nil {
				continue
			}
			var add string
			switch bridgeNeeds(d.Sources(), nonce, httpsPage) {
			case needNothing:
				continue
			case needRefusal:
				if enforcing {
					return false, false
				}
				continue
			case needURL:
				if srcURL == "" {
					if enforcing {
						return false, false
					}
					continue
				}
				add = srcURL
			case needNonce:
				if nonce == "" {
					nonce = newNonce()
				}
				add = "'nonce-" + nonce + "'"
			}
			addScriptSource(p, d, add)
			changed = true
		}
		return changed, true
	}
	changedE, ok := apply(enforced, true)
	if !ok {
		return "", false
	}
	changedR, _ := apply(reportOnly, false)
	if changedE {
		h[cspHeader] = enforced.Values()
	}
	if changedR {
		h[cspReportOnlyHeader] = reportOnly.Values()
	}
	return nonce, true
}

// What a policy's script directive needs for the bridge script to load.
const (
	needNothing = iota // it allows the script as it is
	needNonce          // 'nonce-N' added
	needURL            // the script's exact URL added
	needRefusal        // scripts are 'none': no script may be added
)

// bridgeNeeds applies allowBridgeScript's rules to a script directive's
// sources; nonce is the tag's nonce ("" for none yet) and httpsPage whether
// the page is served over https.
func bridgeNeeds(sources []string, nonce string, httpsPage bool) int {
	if len(sources) == 0 || (len(sources) == 1 && strings.EqualFold(sources[0], "'none'")) {
		return needRefusal
	}
	var allowsSelf, strictDynamic, unsafeInline, hasNonce, hasHash bool
	for _, s := range sources {
		ls := strings.ToLower(s)
		switch {
		case ls == "'self'", ls == "*", ls == "http:", ls == "https:" && httpsPage:
			allowsSelf = true // http: also matches https in CSP3
		case ls == "'strict-dynamic'":
			strictDynamic = true
		case ls == "'unsafe-inline'":
			unsafeInline = true
		case nonceValue(s) != "":
			if nonce != "" && nonceValue(s) == nonce {
				return needNothing
			}
			hasNonce = true
		case strings.HasPrefix(ls, "'sha256-"), strings.HasPrefix(ls, "'sha384-"), strings.HasPrefix(ls, "'sha512-"):
			hasHash = true
		}
	}
	switch {
	case strictDynamic:
		// CSP3 browsers ignore host sources, 'self' and 'unsafe-inline' here:
		// only a nonce works, and it switches nothing off that was on.
		return needNonce
	case allowsSelf:
		return needNothing
	case unsafeInline && !hasNonce && !hasHash:
		return needURL
	}
	return needNonce
}

// scriptDirective is the directive that governs <script src> in p, or nil
// when scripts are unrestricted.
func scriptDirective(p *policy.CSPPolicy) *policy.CSPDirective {
	for _, name := range []string{"script-src-elem", "script-src", "default-src"} {
		if d := p.Lookup(name); d != nil {
			return d
		}
	}
	return nil
}

// addScriptSource appends source to d, p's script directive, or, when d is
// default-src, adds a script-src holding a copy of default-src's sources
// and source, so that default-src itself is not widened.
func addScriptSource(p *policy.CSPPolicy, d *policy.CSPDirective, source string) {
	if !d.Is("default-src") {
		*d = d.WithSource(source)
		return
	}
	p.Add(policy.NewCSPDirective("script-src", append(d.Sources(), source)...))
}

// firstNonce is the first well-formed nonce in the script directives of csp.
func firstNonce(csp policy.CSP) string {
	for i := range csp {
		if d := scriptDirective(&csp[i]); d != nil {
			for _, s := range d.Sources() {
				if v := nonceValue(s); v != "" {
					return v
				}
			}
		}
	}
	return ""
}

// nonceValue is the value of the nonce source s ('nonce-V'), or "" when s is
// not a well-formed one (browsers ignore those).
func nonceValue(s string) string {
	const pre = "'nonce-"
	if len(s) <= len(pre)+1 || !strings.EqualFold(s[:len(pre)], pre) || s[len(s)-1] != '\'' {
		return ""
	}
	if v := s[len(pre) : len(s)-1]; validNonce(v) {
		return v
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

// cspSourceURL is origin (policy.SelfOrigin: scheme://host[:port]) plus path
// as a CSP source expression. With no trailing slash its path matches only
// that file (CSP3 path matching; CSP1 browsers, which ignore paths, would
// allow the origin). It is "" when the Host cannot be written as a CSP
// host-source (an IPv6 literal, or characters a header could smuggle a
// directive in with) or the path holds characters a source may not.
func cspSourceURL(origin, path string) string {
	scheme, hostport, ok := strings.Cut(origin, "://")
	if !ok || (scheme != "http" && scheme != "https") || !strings.HasPrefix(path, "/") {
		return ""
	}
	host, port, hasPort := strings.Cut(hostport, ":")
	if hasPort && (port == "" || len(port) > 5 || strings.Trim(port, "0123456789") != "") {
		return ""
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || strings.Trim(label, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return ""
		}
	}
	for i := 0; i < len(path); i++ {
		c := path[i]
		if !unreserved(c) && strings.IndexByte("!$&()*+=:@/%", c) < 0 {
			return ""
		}
	}
	return origin + path
}
