package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/embedgate/embedgate/internal/policy"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/session"
	"github.com/embedgate/embedgate/internal/strictjson"
	"github.com/embedgate/embedgate/internal/tenant"
	"github.com/embedgate/embedgate/internal/token"
)

// exchangeRequest is what a client sends to the exchange, in any encoding.
type exchangeRequest struct {
	Token, Tenant, ParentOrigin string
	ReturnTo                    string // a form's return_to
	form                        bool
}

// serveExchange is POST {prefix}/exchange: token in, session cookie out.
func (g *Gateway) serveExchange(w http.ResponseWriter, r *http.Request, rq *request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	req, err := readExchangeRequest(w, r)
	if err != nil {
		g.refuse(w, r, rq.hostTenant, nil, err)
		return
	}
	if req.form && req.ReturnTo != "" && !isLocalPath(req.ReturnTo) {
		g.refuse(w, r, rq.hostTenant, nil, reason.Errorf(reason.BadRequest, "return_to must be a same-origin path"))
		return
	}
	expected, err := g.lookupTenant(rq, req.Tenant)
	if err != nil {
		g.refuse(w, r, rq.hostTenant, nil, err)
		return
	}
	done, res, err := g.exchange(r, rq, req.Token, req.ParentOrigin, expected, false)
	if err != nil {
		t := expected
		if res != nil {
			t = res.Tenant
		}
		g.refuse(w, r, t, res, err)
		return
	}
	g.commit(w, r, done, res)
	if req.form && req.ReturnTo != "" {
		h.Set("Location", req.ReturnTo)
		w.WriteHeader(http.StatusSeeOther)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// serveTokenParam is a GET with ?embed_token=: exchange, then 303 to the same
// URL without the token, so it leaves the address bar, history and logs.
func (g *Gateway) serveTokenParam(w http.ResponseWriter, r *http.Request, rq *request) error {
	h := w.Header()
	setTokenURLHeaders(h)
	raw := policy.QueryParam(r.URL.RawQuery, g.cfg.TokenParam)
	done, res, err := g.exchange(r, rq, raw, "", rq.hostTenant, true)
	if err != nil {
		t := rq.hostTenant
		if res != nil {
			t = res.Tenant
		}
		g.denyToken(w, r, t, res, err)
		return nil
	}
	g.commit(w, r, done, res)
	if _, ok := policy.CookieValue(r.Header, LoginCookie); ok {
		h.Add("Set-Cookie", clearLoginCookie) // its nonce is spent
	}
	target := localTarget(r.URL.EscapedPath())
	if q := policy.RemoveQueryParam(r.URL.RawQuery, g.cfg.TokenParam); q != "" {
		target += "?" + q
	}
	h.Set("Location", target)
	w.WriteHeader(http.StatusSeeOther)
	return nil
}

// setTokenURLHeaders are on every answer to a URL holding the token: it is
// not cached, and no request it leads to names it in a Referer.
func setTokenURLHeaders(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
}

// exchange verifies the token, checks the origin, consumes the jti and seals
// a new session. It has no effect unless it succeeds: the cookie is sealed
// before the jti is consumed, and the jti is consumed last.
//
// navigation marks a GET ?embed_token= exchange. Loading an iframe or coming
// back from login_url is a cross-site navigation that carries
// Sec-Fetch-Site: cross-site and no Origin, so only an Origin header, when a
// browser sends one, can refuse it there.
func (g *Gateway) exchange(r *http.Request, rq *request, raw, parentOrigin string, expected *tenant.Tenant, navigation bool) (*exchanged, *token.Result, error) {
	self := policy.SelfOrigin(r)
	checkOrigin := exchangeOriginCheck(r, self, navigation)
	if expected != nil {
		if why := checkOrigin(tenantOrigins(expected)); why != "" {
			return nil, nil, reason.Errorf(reason.ForbiddenOrigin, "exchange from an origin outside frame_ancestors")
		}
	}
	if raw == "" {
		return nil, nil, reason.Errorf(reason.Malformed, "no token in the request")
	}
	res, err := g.verifier.Verify(r.Context(), raw, rq.reg, expected)
	if err != nil {
		return nil, nil, err
	}
	t := res.Tenant
	if expected == nil {
		if why := checkOrigin(tenantOrigins(t)); why != "" {
			return nil, res, reason.Errorf(reason.ForbiddenOrigin, "exchange from an origin outside frame_ancestors")
		}
	}
	if navigation { // only token links: the other entries are not login CSRF's way in
		if err := checkLoginState(r, t, res.Claims.Raw); err != nil {
			return nil, res, err
		}
	}
	// A token's allowed_origins narrows this session's allowlist (never
	// widens it): the exchange itself must come from inside it, and the
	// session keeps it for its framing CSP and Origin checks.
	allowed, err := narrowedByToken(tenantOrigins(t), res.Claims)
	if err != nil {
		return nil, res, err
	}
	if allowed.Narrowed() != nil {
		if why := checkOrigin(allowed); why != "" {
			return nil, res, reason.Errorf(reason.ForbiddenOrigin, "exchange from an origin outside the token's allowed_origins")
		}
	}
	origin, err := bindOrigin(r, allowed, parentOrigin, self)
	if err != nil {
		return nil, res, err
	}
	if err := token.CheckSubject(res.Claims.Subject); err != nil {
		return nil, res, err
	}
	claims, err := g.keepClaims(res.Claims)
	if err != nil {
		return nil, res, err
	}
	id := token.NewID()
	now := g.now().Truncate(time.Second)
	sess := &session.Session{
		ID: id, Tenant: t.ID, Subject: res.Claims.Subject, Origin: origin, Origins: allowed.Narrowed(), Claims: claims,
		IssuedAt: now, LastSeen: now, ExpiresAt: now.Add(g.cfg.SessionTTL),
	}
	// Sealed before the jti is consumed: a session too large for a cookie
	// must not burn the token.
	value, err := g.cfg.Sealer.Seal(sess, rq.host)
	if err != nil {
		return nil, res, err
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := g.cfg.Replay.Claim(ctx, t.ID, res.Claims.ID, g.verifier.ReplayTTL(res.Claims)); err != nil {
		if reason.Of(err) == "" {
			// Only reason errors promise a detail safe to log; a raw store
			// error might quote the key, which holds the jti.
			err = &reason.Error{Reason: reason.StoreUnavailable, Detail: "replay store error"}
		}
		return nil, res, err
	}
	return &exchanged{sess: sess, cookie: value}, res, nil
}

// exchangeOriginCheck is the origin rule of one exchange: the full check
// (Origin, Sec-Fetch-Site) for fetches and form posts, and for a token link
// (a navigation) only an Origin header, when the browser sends one.
func exchangeOriginCheck(r *http.Request, self string, navigation bool) func(Origins) reason.Reason {
	return func(allowed Origins) reason.Reason {
		if !navigation {
			return policy.CheckOrigin(r, self, allowed.Allows)
		}
		if o := r.Header.Get("Origin"); o != "" {
			if n := policy.NormalizeOrigin(o); n != self && !allowed.Allows(n) {
				return reason.CrossOrigin
			}
		}
		return ""
	}
}

// exchanged is a session made by an exchange and its sealed cookie value.
type exchanged struct {
	sess   *session.Session
	cookie string
}

// commit sets the cookie of a fresh session and logs the exchange.
func (g *Gateway) commit(w http.ResponseWriter, r *http.Request, done *exchanged, res *token.Result) {
	sess, t := done.sess, res.Tenant
	setSessionFraming(w.Header(), sessionOrigins(t, sess))
	w.Header().Add("Set-Cookie", g.cookie(done.cookie, sess.ExpiresAt.Sub(g.now())))
	g.cfg.Observer.Exchange(t.ID, "")
	g.record(r, Event{Kind: EventExchange, Tenant: t.ID, Subject: sess.Subject,
		JTI: Fingerprint(res.Claims.ID), Session: Fingerprint(sess.ID)})
}

// bindOrigin picks the parent origin bound into the session: the one the
// start page reports (checked again here), else the request's own Origin
// when it is an allowed framer; anything outside allowed (the tenant's
// frame_ancestors, narrowed by the token's allowed_origins) is refused.
func bindOrigin(r *http.Request, allowed Origins, parentOrigin, self string) (string, error) {
	if parentOrigin != "" {
		o := policy.NormalizeOrigin(parentOrigin)
		if !allowed.Allows(o) {
			return "", reason.Errorf(reason.ForbiddenOrigin, "parent_origin is not in frame_ancestors of tenant %q (or the token's allowed_origins)", allowed.t.ID)
		}
		return o, nil
	}
	if o := policy.NormalizeOrigin(r.Header.Get("Origin")); o != "" && o != self && allowed.Allows(o) {
		return o, nil
	}
	return "", nil
}

// keepClaims copies the claims the gateway needs later (forwarded and
// required ones) into the session as a compact JSON object.
func (g *Gateway) keepClaims(c token.Claims) ([]byte, error) {
	return keepClaims(g.claimSet, g.cfg.ForwardClaims, c)
}

// keepClaims is Gateway.keepClaims for a claim set and forward_claims (the
// Explainer runs it too).
func keepClaims(claimSet []string, fwd []ForwardClaim, c token.Claims) ([]byte, error) {
	if len(claimSet) == 0 {
		return nil, nil
	}
	kept := make(map[string]any, len(claimSet))
	for _, p := range claimSet {
		if v, ok := c.Lookup(p); ok {
			kept[p] = v
		}
	}
	if len(kept) == 0 {
		return nil, nil
	}
	for _, fc := range fwd {
		if v, ok := kept[fc.Claim]; ok {
			if err := checkHeaderSafe(fc.Claim, headerValue(v)); err != nil {
				return nil, err
			}
		}
	}
	return json.Marshal(kept)
}

// checkHeaderSafe refuses values that cannot travel in an HTTP header.
// (The subject has a stricter rule of its own: token.CheckSubject.)
func checkHeaderSafe(name, v string) error {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return reason.Errorf(reason.Malformed, "claim %q holds control characters", name)
		}
	}
	return nil
}

// exchangeJSON is the exchange's JSON body.
type exchangeJSON struct {
	Token        string `json:"token"`
	Tenant       string `json:"tenant"`
	ParentOrigin string `json:"parent_origin"`
}

// readExchangeJSON decodes the exchange's JSON body strictly: one object,
// its member names exact and each at most once, nothing after it
// (strictjson). With {"parent_origin": A, "parent_origin": B} a reader
// that takes the first (a WAF, a log) would see another origin bound
// into the session than the decoder, which takes the last. An empty body
// is no body: the token then comes in the Authorization header.
func readExchangeJSON(r io.Reader) (exchangeJSON, error) {
	var body exchangeJSON
	raw, err := io.ReadAll(r)
	if err != nil {
		return body, reason.Errorf(reason.BadRequest, "unreadable body (at most %d bytes)", maxExchangeBody)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return body, nil
	}
	const want = `body: want {"token": "...", "tenant": "...", "parent_origin": "..."}`
	switch err := strictjson.Decode(raw, &body, false); {
	case err == nil:
		return body, nil
	case errors.Is(err, strictjson.ErrTrailingData):
		return body, reason.Errorf(reason.BadRequest, "body: one JSON object expected, and nothing after it")
	case errors.As(err, new(*strictjson.NameError)):
		return body, reason.Errorf(reason.BadRequest, "%s: %v", want, err)
	default:
		return body, reason.Errorf(reason.BadRequest, "%s: not a JSON object of strings", want)
	}
}

// readExchangeRequest reads the token from a bearer header, a JSON body or a
// form, bounded in size.
func readExchangeRequest(w http.ResponseWriter, r *http.Request) (exchangeRequest, error) {
	var req exchangeRequest
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, tok, ok := strings.Cut(auth, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return req, reason.Errorf(reason.Malformed, "Authorization must be Bearer")
		}
		req.Token = strings.TrimSpace(tok)
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxExchangeBody)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		body, err := readExchangeJSON(r.Body)
		if err != nil {
			return req, err
		}
		if req.Token == "" {
			req.Token = body.Token
		}
		req.Tenant, req.ParentOrigin = body.Tenant, body.ParentOrigin
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			return req, reason.Errorf(reason.BadRequest, "unreadable form body")
		}
		req.form = true
		if req.Token == "" {
			req.Token = r.PostForm.Get("token")
		}
		req.Tenant = r.PostForm.Get("tenant")
		req.ParentOrigin = r.PostForm.Get("parent_origin")
		req.ReturnTo = r.PostForm.Get("return_to")
	}
	if req.Tenant == "" {
		req.Tenant = r.URL.Query().Get("tenant")
	}
	return req, nil
}

// localTarget keeps a redirect on this origin: a path that starts with "//"
// or "/\" would be read by the browser as another host.
func localTarget(p string) string {
	i := 0
	for i < len(p) && (p[i] == '/' || p[i] == '\\') {
		i++
	}
	if i > 1 {
		return "/" + p[i:]
	}
	return p
}

// isLocalPath accepts only a path on this origin: "/x", never "//host",
// "/\host", a scheme, or control characters.
func isLocalPath(p string) bool {
	if len(p) == 0 || p[0] != '/' || len(p) > 2048 {
		return false
	}
	if len(p) > 1 && (p[1] == '/' || p[1] == '\\') {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < 0x20 || p[i] == 0x7f || p[i] == '\\' {
			return false
		}
	}
	u, err := url.Parse(p)
	return err == nil && u.Scheme == "" && u.Host == "" && u.User == nil
}
