package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/embedgate/embedgate/internal/policy"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/session"
	"github.com/embedgate/embedgate/internal/tenant"
	"github.com/embedgate/embedgate/internal/token"
)

// Event kinds for the audit log.
const (
	EventExchange = "exchange"
	EventReject   = "reject"
	EventSignout  = "signout"
)

// Event is one audit record. It never holds a token, secret or cookie value:
// JTI and Session are fingerprints.
type Event struct {
	Kind    string
	Tenant  string
	Subject string
	JTI     string
	Session string
	Reason  reason.Reason
	Detail  string
	// HotPath marks refusals on the per-request session path, which the
	// adapter logs at Debug so a crawler without cookies cannot flood logs.
	HotPath bool
}

// Fingerprint is a short, non-reversible id for a jti or session id in logs.
func Fingerprint(s string) string {
	if s == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// record hands one event to the Observer's counts and then to Audit, so a
// count never depends on what Audit does with the event.
func (g *Gateway) record(r *http.Request, e Event) {
	if e.Reason == reason.StoreUnavailable {
		g.cfg.Observer.StoreError()
	}
	g.cfg.Audit(r, e)
}

func (g *Gateway) audit(r *http.Request, t *tenant.Tenant, s *session.Session, err error, exchange bool) {
	typed := reason.Ensure(err, reason.BadRequest)
	e := Event{Kind: EventReject, Reason: typed.Reason, Detail: typed.Detail, HotPath: !exchange}
	if t != nil {
		e.Tenant = t.ID
	}
	if s != nil {
		e.Subject, e.Session = s.Subject, Fingerprint(s.ID)
	}
	g.record(r, e)
}

type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// setFraming writes the tenant's frame-ancestors policy (or 'none').
func setFraming(h http.Header, t *tenant.Tenant) {
	h.Del("X-Frame-Options")
	if t == nil {
		h.Set("Content-Security-Policy", policy.FrameAncestors(nil))
		return
	}
	h.Set("Content-Security-Policy", t.FrameAncestorsCSP())
}

// refuse answers a failed exchange; nothing has been applied. res, when
// the token verified, names who and which jti for the audit log.
func (g *Gateway) refuse(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, res *token.Result, err error) {
	typed := reason.Ensure(err, reason.Malformed)
	why := typed.Reason
	g.auditExchangeReject(r, t, res, typed)
	setFraming(w.Header(), t)
	writeRefusal(w, why, pathExchange)
}

// denyToken answers a GET whose ?embed_token= failed to exchange.
func (g *Gateway) denyToken(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, res *token.Result, err error) {
	typed := reason.Ensure(err, reason.Malformed)
	g.auditExchangeReject(r, t, res, typed)
	_ = g.respondDenied(w, r, t, typed, true) // a token failure is always written
}

// deny answers a request into the app that has no usable session; a
// *RefusalError when the caller renders refusals (Config.ReturnRefusals).
func (g *Gateway) deny(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, err error) error {
	g.audit(r, t, nil, err, false)
	return g.respondDenied(w, r, t, err, false)
}

func (g *Gateway) auditExchangeReject(r *http.Request, t *tenant.Tenant, res *token.Result, err *reason.Error) {
	e := Event{Kind: EventReject, Reason: err.Reason, Detail: err.Detail}
	if t != nil {
		e.Tenant = t.ID
	}
	if res != nil {
		e.Tenant, e.Subject, e.JTI = res.Tenant.ID, res.Claims.Subject, Fingerprint(res.Claims.ID)
	}
	g.cfg.Observer.Exchange(e.Tenant, e.Reason)
	g.record(r, e)
}

// respondDenied is a login redirect for top-level navigations of a tenant
// with a login_url, the HTML gate page for other navigations, JSON otherwise.
// For a request into the app (not a token failure) the 401 and 403 JSON
// answers go through refuseRequest.
func (g *Gateway) respondDenied(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, err error, tokenFailure bool) error {
	why := reason.Of(err)
	h := w.Header()
	setFraming(h, t)
	h.Set("Cache-Control", "no-store")
	p := pathSession
	if tokenFailure {
		p = pathToken
	}
	a := answerFor(why, p)
	switch a.status {
	case http.StatusForbidden:
		return g.answerDenied(w, a, why, p)
	case http.StatusServiceUnavailable:
		writeAnswer(w, a, why)
		return nil
	}
	// Anything else means no usable session or token: 401, with the code
	// of this path, unless a navigation gets the login redirect or gate.
	a = answer{status: http.StatusUnauthorized, code: answerFor(reason.SessionMissing, p).code}
	g.storageAccessHeaders(h, r, t)
	if policy.IsNavigation(r) {
		if t != nil && t.LoginURL != "" && policy.IsTopLevelNavigation(r) && !tokenFailure {
			h.Set("Location", loginRedirect(h, t, policy.SelfOrigin(r)+originalURI(r, g.cfg.TokenParam)))
			w.WriteHeader(http.StatusFound)
			return nil
		}
		g.writeGate(w, r, t, why)
		return nil
	}
	return g.answerDenied(w, a, why, p)
}

// answerDenied writes a, or, on the session path, hands it to refuseRequest.
func (g *Gateway) answerDenied(w http.ResponseWriter, a answer, why reason.Reason, p path) error {
	if p == pathSession {
		return g.refuseRequest(w, a, why)
	}
	writeAnswer(w, a, why)
	return nil
}

// originalURI is the request URI without the token parameter.
func originalURI(r *http.Request, tokenParam string) string {
	u := r.URL.EscapedPath()
	if q := policy.RemoveQueryParam(r.URL.RawQuery, tokenParam); q != "" {
		u += "?" + q
	}
	return u
}

// cookie is the Set-Cookie line for a session value.
func (g *Gateway) cookie(value string, maxAge time.Duration) string {
	// Round up: the cookie may outlive the session by under a second (the
	// session itself still expires on time), never the other way round.
	secs := max(int64((maxAge+time.Second-1)/time.Second), 1)
	return g.cfg.CookieName + "=" + value + "; Path=/; Max-Age=" + strconv.FormatInt(secs, 10) +
		"; HttpOnly; Secure; SameSite=None; Partitioned"
}

// clearCookie removes the cookie with the same attributes it was set with;
// a Partitioned cookie is only removed by a Partitioned Set-Cookie.
func (g *Gateway) clearCookie() string {
	return g.cfg.CookieName + "=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=None; Partitioned"
}

// framingWriter merges the tenant's frame-ancestors into whatever CSP the
// upstream sends and drops its X-Frame-Options, just before the header goes.
type framingWriter struct {
	http.ResponseWriter
	csp   string
	wrote bool
	// private: the gateway put the session's Set-Cookie (a sliding
	// refresh) on the app's response, which no shared cache may then store.
	private bool
	// refresh is the Set-Cookie line of the gateway's refresh ("" for
	// none); any other line for one of ownCookies is the app's, and goes.
	refresh    string
	ownCookies []string
}

func (fw *framingWriter) WriteHeader(status int) {
	if !fw.wrote {
		fw.merge()
		if status >= 200 || status == http.StatusSwitchingProtocols {
			fw.wrote = true
		}
	}
	fw.ResponseWriter.WriteHeader(status)
}

// merge applies the framing policy to the pending header. The common case,
// an upstream that set no CSP of its own, is one comparison.
func (fw *framingWriter) merge() {
	h := fw.ResponseWriter.Header()
	if sc := h["Set-Cookie"]; len(sc) > 1 || len(sc) == 1 && sc[0] != fw.refresh {
		policy.StripSetCookies(h, fw.refresh, fw.ownCookies)
	}
	if fw.private {
		keepFromSharedCaches(h)
	}
	if v := h["Content-Security-Policy"]; len(v) == 1 && v[0] == fw.csp && len(h["X-Frame-Options"]) == 0 {
		return
	}
	policy.MergeCSP(h, fw.csp)
}

// keepFromSharedCaches makes a response that carries the session cookie
// one no shared cache (a CDN in front of the gateway) may store: else it
// would hand the cookie to every later visitor of a "public" asset. The
// app's Cache-Control becomes "private, no-cache" unless it says no-store,
// and the fields that target CDNs alone (RFC 9213's CDN-Cache-Control, a
// vendor's *-CDN-Cache-Control, Surrogate-Control, Akamai's Edge-Control,
// nginx's X-Accel-Expires), which such a cache obeys instead of
// Cache-Control, are dropped.
func keepFromSharedCaches(h http.Header) {
	for name := range h {
		if lower := strings.ToLower(name); lower == "surrogate-control" || lower == "edge-control" ||
			lower == "x-accel-expires" || strings.HasSuffix(lower, "cdn-cache-control") {
			delete(h, name)
		}
	}
	// A no-store counts only in a field every cache parses alike: in a
	// malformed one some cache may read it as inside a quoted string.
	if dirs, clean := policy.ParseCacheControl(h["Cache-Control"]); clean {
		for _, d := range dirs {
			if d.Name == "no-store" && !d.HasArg {
				return
			}
		}
	}
	h["Cache-Control"] = []string{"private, no-cache"}
}

// FlushError merges before a flush sends the header (http.ResponseController
// prefers it over reaching the writer underneath through Unwrap).
func (fw *framingWriter) FlushError() error {
	if !fw.wrote {
		fw.merge()
		fw.wrote = true
	}
	return http.NewResponseController(fw.ResponseWriter).Flush()
}

// Flush is http.Flusher for handlers that type-assert it.
func (fw *framingWriter) Flush() { _ = fw.FlushError() }

// finish covers an upstream that set headers but wrote nothing: whatever
// writes the response afterwards (Caddy's error handling) sends them merged.
func (fw *framingWriter) finish() {
	if !fw.wrote {
		fw.merge()
	}
}

func (fw *framingWriter) Write(b []byte) (int, error) {
	if !fw.wrote {
		fw.WriteHeader(http.StatusOK)
	}
	return fw.ResponseWriter.Write(b)
}

// ReadFrom keeps the writer underneath reachable as an io.ReaderFrom, so a
// file served behind the gateway still goes out by sendfile.
func (fw *framingWriter) ReadFrom(src io.Reader) (int64, error) {
	if !fw.wrote {
		fw.WriteHeader(http.StatusOK)
	}
	if rf, ok := fw.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(fw.ResponseWriter, src)
}

// Unwrap lets http.ResponseController reach Flush and Hijack underneath.
func (fw *framingWriter) Unwrap() http.ResponseWriter { return fw.ResponseWriter }

// firstValue is h.Get(key) for a key already in canonical form: every
// request with a session asks for a few headers, and Get canonicalises
// the name again each time.
func firstValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}
