package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/embedgate/embedgate/internal/policy"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/session"
	"github.com/embedgate/embedgate/internal/tenant"
)

// scopeClaims are the claims a require scope rule reads.
var scopeClaims = policy.ScopeClaims()

// openResult is the outcome of reading the session cookie.
type openResult struct {
	sess    *session.Session
	claims  map[string]any // sess's claims, shared with other requests: read-only
	tenant  *tenant.Tenant // the session's tenant, when the cookie opened
	present bool           // a cookie was sent (so a refusal clears it)
	now     time.Time      // when sess was checked
	err     error
	// idle is the session of an authentic cookie of this tenant past its
	// idle timeout (and nothing else wrong with it but that): its id may
	// live on in another copy of the cookie. See endIdle.
	idle *session.Session
	// opened is the session of an authentic cookie of this host's tenant
	// (or of a tenant this instance no longer has), whatever else is wrong
	// with it here (expired or revoked by this instance's clock and store,
	// idle): a sign-out ends its id anyway, since another instance may
	// still take it.
	opened *session.Session
}

// openSession reads, opens and checks the session cookie without any I/O.
func (g *Gateway) openSession(r *http.Request, rq *request) openResult {
	value, ok := policy.CookieValue(r.Header, g.cfg.CookieName)
	if !ok {
		return openResult{err: reason.SessionMissing.Err()}
	}
	res := openResult{present: true}
	s, claims, err := g.cfg.Sealer.OpenClaims(value, rq.host)
	if err != nil {
		res.err = err
		return res
	}
	// On a tenant's own host (the common case) the host's tenant is the
	// session's, from the same registry: no second lookup.
	t := rq.hostTenant
	if t == nil || t.ID != s.Tenant {
		found, ok := rq.reg.ByID(s.Tenant)
		if !ok {
			// Still signed out: during a rolling config change another
			// instance may still know the tenant and take the cookie.
			res.opened = s
			res.err = reason.Errorf(reason.UnknownTenant, "session tenant %q is no longer configured", s.Tenant)
			return res
		}
		res.tenant = found
		if t != nil {
			res.err = reason.Errorf(reason.WrongTenant, "session of tenant %q on a host of tenant %q", found.ID, t.ID)
			return res
		}
		t = found
	}
	res.tenant, res.opened = t, s
	// One clock read for the whole check: this runs on every request.
	now := g.now()
	if err := g.sessionHolds(s, now, g.cfg.IdleTimeout); err != nil {
		res.err = err
		// Idle is checked before the revocations, and the rest again here,
		// so that copies still in flight after endIdle ended the id say
		// session_idle ("expired" on the gate page), not session_revoked
		// ("signed out"): the user did not sign out.
		if reason.Of(err) == reason.SessionIdle && g.sessionHolds(s, now, 0) == nil {
			res.idle = s
		}
		return res
	}
	res.sess, res.claims = s, claims
	res.now = now
	return res
}

// sessionHolds is why an opened session no longer holds at now, nil while
// it does: its expiry, its idle time (for idle > 0), session_ttl, and the
// revocations. Every request with a session runs it, and an open tunnel
// (idle 0) every tunnelCheck.
func (g *Gateway) sessionHolds(s *session.Session, now time.Time, idle time.Duration) error {
	if err := s.Check(now, idle); err != nil {
		return err
	}
	// An absolute lifetime shortened by a config change applies at once.
	if !now.Before(s.IssuedAt.Add(g.cfg.SessionTTL)) {
		return reason.Errorf(reason.SessionExpired, "older than session_ttl")
	}
	if g.cfg.Revocations.Revoked(replay.SessionRef{ID: s.ID, Tenant: s.Tenant, Subject: s.Subject, IssuedAt: s.IssuedAt}) {
		return reason.SessionRevoked.Err()
	}
	return nil
}

// openLive is openSession for a request that needs a live session: an
// idle cookie's id is ended on the way (endIdle).
func (g *Gateway) openLive(r *http.Request, rq *request) openResult {
	o := g.openSession(r, rq)
	if o.idle != nil {
		g.endIdle(r, o)
	}
	return o
}

// endIdle revokes the id of a cookie found past its idle timeout. Idle time
// is kept in each copy of the cookie (its LastSeen), revocation by id: a
// copy taken from the user and used often enough would otherwise outlive
// the user's own idle copy, and a later sign-out, until session_ttl. So the
// first copy seen idle ends the session, every copy of it, as a server-side
// idle timeout must (OWASP). In a browser the cookie is one (a refresh
// replaces it), so a live user loses nothing. Best effort: the request is
// refused either way, and a store failure is audited.
func (g *Gateway) endIdle(r *http.Request, o openResult) {
	if err := g.revoke(r, o.idle); err != nil {
		g.audit(r, o.tenant, o.idle, &reason.Error{Reason: reason.StoreUnavailable, Detail: "ending an idle session: " + err.Error()}, false)
	}
}

// revoke ends session s's id, every copy of its cookie. It is kept twice
// the largest leeway past the expiry, as an admin revocation is: an
// instance whose clock runs up to its own leeway behind (which may be
// larger than this one's) still takes the session until then.
func (g *Gateway) revoke(r *http.Request, s *session.Session) error {
	return g.cfg.Revocations.Revoke(r.Context(), s.ID, s.ExpiresAt.Add(2*MaxLeeway))
}

// serveSession guards every request that is not a gateway endpoint.
func (g *Gateway) serveSession(w http.ResponseWriter, r *http.Request, rq *request, next Next) error {
	o := g.openLive(r, rq)
	t := rq.hostTenant
	if o.sess != nil {
		t = o.tenant
	}
	allowed := sessionOrigins(t, o.sess)
	// A WebSocket handshake is a GET, but it carries the session into a
	// long-lived channel: check its Origin like an unsafe method's.
	if policy.IsUnsafeMethod(r.Method) || policy.OpensTunnel(r) {
		if why := policy.CheckOrigin(r, policy.SelfOrigin(r), allowed.Allows); why != "" {
			setSessionFraming(w.Header(), allowed)
			g.cfg.Observer.Request(tenantID(t), RequestRefused)
			g.audit(r, t, o.sess, reason.Errorf(why, "%s from a foreign origin", r.Method), false)
			return g.refuseRequest(w, answerFor(why, pathSession), why)
		}
	}
	if o.sess == nil {
		if o.present {
			w.Header().Add("Set-Cookie", g.clearCookie())
		}
		if o.tenant != nil && t == nil {
			t = o.tenant // frame the gate page for the tenant the cookie named
		}
		g.cfg.Observer.Request(tenantID(t), RequestNoSession)
		return g.deny(w, r, t, o.err)
	}
	s := o.sess
	if g.pathRules && !policy.CanonicalPath(r) || g.queryRules && !policy.CanonicalQuery(r.URL.RawQuery) ||
		g.cookieRules && !policy.CanonicalCookies(r.Header, g.ownCookies) {
		g.refuseBadRequest(w, r, t, s, allowed, reason.Errorf(reason.BadRequest, "non-canonical path, query or cookies under a require rule with placeholders"))
		return nil
	}
	claims := o.claims
	if err := g.checkRequire(r, claims); err != nil {
		setSessionFraming(w.Header(), allowed)
		g.cfg.Observer.Request(t.ID, RequestRefused)
		g.audit(r, t, s, err, false)
		return g.refuseRequest(w, answerFor(reason.Of(err), pathSession), reason.Of(err))
	}
	// Declared trailers are read ahead only now, for a request with a
	// session about to go upstream (see policy.Boundary.Admit).
	hold, err := g.boundary.ReadTrailersAhead(r)
	if err != nil {
		g.refuseBadRequest(w, r, t, s, allowed, err)
		return nil
	}
	if hold != nil {
		// Given back once the request is done: after an error, Caddy's
		// error routes run with it and may still send the buffer on. A
		// request whose context never ends (built by hand, not served by
		// net/http) gives it back here.
		if r.Context().Done() != nil {
			context.AfterFunc(r.Context(), hold.Release)
		} else {
			defer hold.Release()
		}
	}
	return g.forward(w, r, rq, o, claims, allowed, next)
}

// refuseBadRequest answers 400 bad_request to a request with a session.
func (g *Gateway) refuseBadRequest(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, s *session.Session, allowed Origins, err error) {
	setSessionFraming(w.Header(), allowed)
	g.cfg.Observer.Request(t.ID, RequestRefused)
	g.audit(r, t, s, err, false)
	writeRefusal(w, reason.BadRequest, pathSession)
}

// forward sends a request whose session passed every check to the app:
// the refreshed cookie, the identity headers, the assertion, and the
// request stripped of the session cookie. (A request with the token
// parameter never comes here: ServeHTTP answers it.)
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, rq *request, o openResult, claims map[string]any, allowed Origins, next Next) error {
	s, t, now := o.sess, o.tenant, o.now
	refresh := "" // the refreshed cookie's Set-Cookie line
	if s.NeedsRefresh(now, g.cfg.IdleTimeout) {
		// A copy: the opened session is shared with every request that
		// sends the same cookie, whose idle time must not move.
		fresh := *s
		fresh.LastSeen = now.Truncate(time.Second)
		s = &fresh
		if value, err := g.cfg.Sealer.Seal(s, rq.host); err == nil {
			refresh = g.cookie(value, s.ExpiresAt.Sub(now))
			w.Header().Add("Set-Cookie", refresh)
		}
	}
	// One allocation holds the response writer and the identity and CSP
	// header values: this runs on every proxied request.
	st := &upstreamState{vals: [3]string{t.ID, s.Subject}}
	r.Header[HeaderTenant] = st.vals[0:1:1]
	r.Header[HeaderSubject] = st.vals[1:2:2]
	for _, fc := range g.cfg.ForwardClaims {
		if v, ok := claims[fc.Claim]; ok {
			r.Header.Set(fc.Header, headerValue(v))
		}
	}
	if g.cfg.Assertions != nil && !g.setAssertion(w, r, t, s, claims, allowed) {
		return nil
	}
	policy.StripCookies(r.Header, g.ownCookies)
	if g.cfg.OnSession != nil {
		g.cfg.OnSession(r, s, claims)
	}
	g.storageAccessHeaders(w.Header(), r, t)
	// Computed once: a narrowed session's directive is built per request.
	st.vals[2] = allowed.CSP()
	setFramingCSP(w.Header(), st.vals[2:3:3])
	g.cfg.Observer.Request(t.ID, RequestSessionOK)
	st.fw = framingWriter{ResponseWriter: w, csp: st.vals[2], private: refresh != "",
		refresh: refresh, ownCookies: g.ownCookies}
	if policy.OpensTunnel(r) {
		return g.serveTunnel(&st.fw, r, next, t, s)
	}
	err := g.serveUpstream(&st.fw, r, next)
	st.fw.finish()
	return err
}

// upstreamState is what a request with a session carries to the upstream.
// The header values are full slices of vals (len = cap = 1), so an append
// by a later handler copies instead of writing into the next value.
type upstreamState struct {
	fw   framingWriter
	vals [3]string // X-Embed-Tenant, X-Embed-Subject, Content-Security-Policy
}

func tenantID(t *tenant.Tenant) string {
	if t == nil {
		return ""
	}
	return t.ID
}

// checkRequire applies the require rules to the session's claims.
func (g *Gateway) checkRequire(r *http.Request, claims map[string]any) error {
	for _, rq := range g.cfg.Require {
		if rq.Scope != "" {
			if !hasScope(claims, rq.Scope) {
				return reason.Errorf(reason.RequirementFailed, "scope %q missing", rq.Scope)
			}
			continue
		}
		want := rq.Value
		if g.cfg.Expand != nil {
			want = g.cfg.Expand(r, want)
		}
		if !claimMatches(claims[rq.Claim], want) {
			return reason.Errorf(reason.RequirementFailed, "claim %q does not match", rq.Claim)
		}
	}
	return nil
}

func hasScope(claims map[string]any, scope string) bool {
	for _, name := range scopeClaims {
		switch v := claims[name].(type) {
		case string:
			for s := range policy.Scopes(v) {
				if s == scope {
					return true
				}
			}
		case []any:
			for _, s := range v {
				if s == scope {
					return true
				}
			}
		}
	}
	return false
}

// claimMatches compares a claim with a required value: strings by equality,
// arrays by membership, other values by their compact JSON text.
func claimMatches(v any, want string) bool {
	switch c := v.(type) {
	case nil:
		return false
	case string:
		return c == want
	case []any:
		for _, e := range c {
			if claimMatches(e, want) {
				return true
			}
		}
		return false
	default:
		return headerValue(c) == want
	}
}

// headerValue renders a claim for a header: strings as is, else compact JSON.
func headerValue(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// serveSessionInfo is GET {prefix}/session.
func (g *Gateway) serveSessionInfo(w http.ResponseWriter, r *http.Request, rq *request) {
	if g.refuseOtherSite(w, r, rq) {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	setSessionDataHeaders(w.Header())
	o := g.openLive(r, rq)
	if o.sess == nil {
		t := rq.hostTenant
		if t == nil {
			t = o.tenant
		}
		setFraming(w.Header(), t)
		if o.present {
			w.Header().Add("Set-Cookie", g.clearCookie())
		}
		writeRefusal(w, reason.Ensure(o.err, reason.SessionInvalid).Reason, pathSession)
		return
	}
	setSessionFraming(w.Header(), sessionOrigins(o.tenant, o.sess))
	writeJSON(w, http.StatusOK, sessionInfo{
		Tenant: o.sess.Tenant, Subject: o.sess.Subject, Origin: o.sess.Origin,
		ExpiresAt: o.sess.ExpiresAt.UTC().Format(time.RFC3339),
	})
}

type sessionInfo struct {
	Tenant    string `json:"tenant"`
	Subject   string `json:"sub"`
	ExpiresAt string `json:"expires_at"`
	Origin    string `json:"origin,omitempty"`
}

// serveSignout is POST {prefix}/signout: revoke the session id until its
// expiry and clear the cookie. Without a live session it still clears.
// With ?tenant= (the sign-out page names the tenant it is framed for), a
// live session of another tenant is neither revoked nor cleared: on a
// shared host where one unpartitioned cookie serves every tenant (Storage
// Access without CHIPS), tenant X's page would otherwise end the user's
// session with tenant Y.
func (g *Gateway) serveSignout(w http.ResponseWriter, r *http.Request, rq *request) {
	w.Header().Set("Cache-Control", "no-store")
	o := g.openSession(r, rq)
	// Any authentic cookie's id is ended, and the answer says so only once
	// it is stored: a copy may live on where this instance's view does not
	// reach. An idle cookie's id in another copy (endIdle); a session this
	// instance holds revoked when the store did not take the revocation (a
	// retried sign-out after a 503); one past its expiry or session_ttl by
	// this instance's clock or config but not by another's.
	s := o.opened
	named := r.URL.Query().Get("tenant")
	foreign := named != "" && s != nil && s.Tenant != named
	if foreign {
		o, s = openResult{}, nil // not this tenant's session to end
	}
	t := rq.hostTenant
	if s != nil {
		t = o.tenant
	}
	allowed := sessionOrigins(t, s)
	setSessionFraming(w.Header(), allowed)
	if why := policy.CheckOrigin(r, policy.SelfOrigin(r), allowed.Allows); why != "" {
		writeRefusal(w, why, pathSession)
		return
	}
	if s != nil {
		if err := g.revoke(r, s); err != nil {
			// A revocation that did not stick must not look like a sign-out.
			writeRefusal(w, reason.StoreUnavailable, pathSession)
			g.audit(r, t, s, &reason.Error{Reason: reason.StoreUnavailable, Detail: "revoking session: " + err.Error()}, true)
			return
		}
		g.record(r, Event{Kind: EventSignout, Tenant: s.Tenant, Subject: s.Subject, Session: Fingerprint(s.ID)})
	}
	if !foreign {
		w.Header().Add("Set-Cookie", g.clearCookie())
	}
	w.WriteHeader(http.StatusNoContent)
}
