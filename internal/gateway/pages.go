package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/embedgate/embedgate/internal/bridge"
	"github.com/embedgate/embedgate/internal/policy"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/session"
	"github.com/embedgate/embedgate/internal/tenant"
)

// servePage serves the browser kit under the prefix (start page, SDK,
// bridge). It reports whether it handled the request.
func (g *Gateway) servePage(w http.ResponseWriter, r *http.Request, rq *request) bool {
	switch p := r.URL.Path; p {
	case g.paths.prefixSlash + "start", g.paths.prefixSlash + "sdk.js", g.paths.prefixSlash + "sdk.d.ts", g.paths.bridge:
	default:
		return false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		_ = g.methodNotAllowed(w, rq.hostTenant, "GET, HEAD")
		return true
	}
	// Direct calls, not a func value: rq then stays on the caller's stack.
	switch r.URL.Path {
	case g.paths.prefixSlash + "start":
		g.serveStart(w, r, rq)
	case g.paths.prefixSlash + "sdk.js":
		g.serveSDK(w, r, rq)
	case g.paths.prefixSlash + "sdk.d.ts":
		g.serveSDKTypes(w, r, rq)
	default:
		g.serveBridge(w, r, rq)
	}
	return true
}

// serveStart is GET {prefix}/start?tenant=<id>&next=<path>: the page the
// SDK's iframe opens first. It takes the token from the parent by
// postMessage, exchanges it same-origin and navigates to next.
func (g *Gateway) serveStart(w http.ResponseWriter, r *http.Request, rq *request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	q := r.URL.Query()
	t, err := g.lookupTenant(rq, q.Get("tenant"))
	if err == nil && t == nil {
		err = reason.Errorf(reason.BadRequest, "the start page needs ?tenant=")
	}
	if err != nil {
		g.writeStartError(w, r, rq, err)
		return
	}
	g.storageAccessHeaders(h, r, t)
	body := bridge.StartPage(bridge.PageConfig{
		Tenant: t.ID, Next: g.localNext(q.Get("next")), Origins: t.FrameAncestors, Prefix: g.cfg.Prefix,
	})
	writeHTML(w, http.StatusOK, bridge.PageCSP()+"; "+t.FrameAncestorsCSP(), body)
}

// writeStartError answers a start page whose tenant is unknown, missing or
// not the host's with an HTML 400 that shows a final state and posts
// embed:error {reason: "wrong_tenant"}. It is framed under the tenant the
// request does identify, the host's or else the session cookie's, so that
// the error reaches that tenant's page; with no tenant known, by nobody.
func (g *Gateway) writeStartError(w http.ResponseWriter, r *http.Request, rq *request, err error) {
	t := rq.hostTenant
	if t == nil {
		_, t = g.cookieSession(r, rq)
	}
	framing := policy.FrameAncestors(nil)
	cfg := bridge.PageConfig{Next: "/", Prefix: g.cfg.Prefix, Error: bridge.ReasonWrongTenant, Reason: string(reason.Of(err))}
	if t != nil {
		framing = t.FrameAncestorsCSP()
		cfg.Tenant = t.ID
		cfg.Origins = t.FrameAncestors
	}
	writeHTML(w, http.StatusBadRequest, bridge.PageCSP()+"; "+framing, bridge.StartPage(cfg))
}

// serveSignoutPage is GET {prefix}/signout?tenant=<id>: the page the SDK's
// signOut() sends the frame to, whatever document the frame shows. The GET
// changes nothing: the page's script POSTs {prefix}/signout same-origin
// (the cookie is the frame's), then shows the signed-out state and posts
// embed:authRequired {reason: "signed_out"} to the host. Framed like the
// gate page: by the tenant named, else the host's, else the cookie's.
func (g *Gateway) serveSignoutPage(w http.ResponseWriter, r *http.Request, rq *request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	s, st := g.cookieSession(r, rq)
	t, err := g.lookupTenant(rq, r.URL.Query().Get("tenant"))
	if err != nil || t == nil {
		t = rq.hostTenant
	}
	if t == nil {
		t = st
	}
	if st != t {
		s = nil // a session of another tenant says nothing about this one
	}
	framing := policy.FrameAncestors(nil)
	cfg := bridge.PageConfig{Next: "/", Prefix: g.cfg.Prefix}
	if t != nil {
		framing = t.FrameAncestorsCSP()
		cfg.Tenant = t.ID
		cfg.Origins, cfg.Bound = pageOrigins(t, s)
		g.storageAccessHeaders(h, r, t)
	}
	writeHTML(w, http.StatusOK, bridge.PageCSP()+"; "+framing, bridge.SignoutPage(cfg))
}

// pageOrigins is where a page of tenant t posts: the origins of t that
// session s (nil: none) allows, and the one bound into s when it is allowed.
func pageOrigins(t *tenant.Tenant, s *session.Session) (origins []string, bound string) {
	allowed := t.AllowsOrigin
	if s != nil {
		allowed = sessionOrigins(t, s).Allows
		if allowed(s.Origin) {
			bound = s.Origin
		}
	}
	for _, o := range t.FrameAncestors {
		if allowed(o) {
			origins = append(origins, o)
		}
	}
	return origins, bound
}

// localNext keeps next when it is a same-origin path outside the prefix.
func (g *Gateway) localNext(next string) string {
	if !isLocalPath(next) || next == g.cfg.Prefix || strings.HasPrefix(next, g.paths.prefixSlash) {
		return "/"
	}
	return next
}

// serveSDK is GET {prefix}/sdk.js, loaded by customers' pages from another
// site: public, cacheable for a few minutes, readable cross-origin (for
// subresource integrity).
func (g *Gateway) serveSDK(w http.ResponseWriter, r *http.Request, rq *request) {
	setFraming(w.Header(), rq.hostTenant)
	servePublicAsset(w, r, "text/javascript; charset=utf-8", g.sdk)
}

// serveSDKTypes is GET {prefix}/sdk.d.ts.
func (g *Gateway) serveSDKTypes(w http.ResponseWriter, r *http.Request, rq *request) {
	setFraming(w.Header(), rq.hostTenant)
	servePublicAsset(w, r, "application/typescript; charset=utf-8", bridge.SDKTypes())
}

// serveBridge is GET {prefix}/bridge.js, loaded by the app's own pages. It
// is rendered per session: it posts only to the parent origin bound into the
// session, or, for a session without one, to the tenant's allowlist.
func (g *Gateway) serveBridge(w http.ResponseWriter, r *http.Request, rq *request) {
	if g.refuseOtherSite(w, r, rq) {
		return
	}
	o := g.openLive(r, rq)
	t := rq.hostTenant
	if o.sess != nil || t == nil {
		t = o.tenant
	}
	var origins []string
	if t != nil {
		allowed := sessionOrigins(t, o.sess).Allows
		if o.sess != nil && allowed(o.sess.Origin) {
			origins = []string{o.sess.Origin}
		} else {
			for _, a := range t.FrameAncestors {
				if allowed(a) {
					origins = append(origins, a)
				}
			}
		}
	}
	cfg := bridge.BridgeConfig{Origins: origins, Prefix: g.cfg.Prefix}
	if t != nil {
		cfg.Tenant = t.ID
	}
	if o.sess != nil {
		cfg.Sub, cfg.ExpiresAt = o.sess.Subject, o.sess.ExpiresAt.UTC().Format(time.RFC3339)
	}
	h := w.Header()
	setFraming(h, t)
	h.Set("Cache-Control", "private, no-cache")
	h.Set("Vary", "Cookie, Sec-Fetch-Site")
	setSessionDataHeaders(h)
	serveAsset(w, r, "text/javascript; charset=utf-8", bridge.Bridge(cfg))
}

// refuseOtherSite answers, with 403 cross_origin, a read of the session's
// data (bridge.js, {prefix}/session) that a page of another site made. A
// script is readable across origins: a stranger's frame on the customer's
// page shares the partitioned session cookie, and a <script src> of
// bridge.js, with window.parent replaced, would hand it the signed-in
// user's sub. The app's own pages load both from the gateway's origin.
func (g *Gateway) refuseOtherSite(w http.ResponseWriter, r *http.Request, rq *request) bool {
	if !policy.FromOtherSite(r) {
		return false
	}
	h := w.Header()
	setFraming(h, rq.hostTenant)
	h.Set("Cache-Control", "no-store")
	setSessionDataHeaders(h)
	g.audit(r, rq.hostTenant, nil, reason.Errorf(reason.CrossOrigin, "%s read by a page of another site", r.URL.Path), false)
	writeRefusal(w, reason.CrossOrigin, pathSession)
	return true
}

// setSessionDataHeaders marks a response that holds the session's data as
// readable by the gateway's own origin only (Cross-Origin-Resource-Policy),
// for browsers that send no Sec-Fetch-Site.
func setSessionDataHeaders(h http.Header) {
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

func servePublicAsset(w http.ResponseWriter, r *http.Request, contentType string, body []byte) {
	h := w.Header()
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	serveAsset(w, r, contentType, body)
}

// serveAsset writes body with a strong ETag, answering If-None-Match with
// 304 (http.ServeContent also handles HEAD and ranges).
func serveAsset(w http.ResponseWriter, r *http.Request, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("ETag", etag(body))
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func etag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
}

// writeHTML writes one of the gateway's own pages. They send no Referer:
// a gate page may answer a token link that failed, at a URL that still
// holds a token good elsewhere, and the exchange and the app it calls
// next must not receive (and log) that URL.
func writeHTML(w http.ResponseWriter, status int, csp string, body []byte) {
	h := w.Header()
	h.Del("X-Frame-Options")
	h.Set("Content-Security-Policy", csp)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// storageAccessHeaders implements Storage Access Headers for a request of
// tenant t (nil: nothing), with Vary whenever the browser sent the header:
//   - inactive: the browser holds a storage-access grant for this site that
//     is not active here; with an Origin in t's allowlist and no session
//     cookie, ask it to activate the grant and retry, so that the cookie
//     comes along (retry; allowed-origin).
//   - active: on a document load, let the new document keep the active
//     grant (load), so that a user who granted access once is signed in on
//     every later load without a click. Unless the request names another
//     Origin than the gateway itself or one of t's allowlist; the page is
//     framed only by t's allowlist either way (frame-ancestors).
func (g *Gateway) storageAccessHeaders(h http.Header, r *http.Request, t *tenant.Tenant) {
	status := firstValue(r.Header, "Sec-Fetch-Storage-Access")
	if status == "" || t == nil {
		return
	}
	h.Add("Vary", "Sec-Fetch-Storage-Access")
	status = strings.TrimSpace(status)
	switch {
	case strings.EqualFold(status, "inactive"):
		if _, ok := policy.CookieValue(r.Header, g.cfg.CookieName); ok {
			return
		}
		o := policy.NormalizeOrigin(r.Header.Get("Origin"))
		if o == "" || !t.AllowsOrigin(o) {
			return
		}
		// An allowlisted origin is a plain serialized origin: nothing in it
		// needs escaping inside a structured-field string.
		h.Set("Activate-Storage-Access", `retry; allowed-origin="`+o+`"`)
	case strings.EqualFold(status, "active"):
		if !policy.IsNavigation(r) {
			return
		}
		if raw := r.Header.Get("Origin"); raw != "" {
			o := policy.NormalizeOrigin(raw)
			if o == "" || (o != policy.SelfOrigin(r) && !t.AllowsOrigin(o)) {
				return
			}
		}
		h.Set("Activate-Storage-Access", "load")
	}
}

// writeGate writes the small HTML page shown inside the frame when there is
// no session (401). It tells the host page {type:"embed:authRequired",
// reason}, posted to the parent origin bound into the refused session when
// its cookie still opens, else to each of the tenant's allowlisted origins,
// and takes a new token from the parent as the start page does. Its CSP
// allows only its own hashed script and style.
func (g *Gateway) writeGate(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, why reason.Reason) {
	framing := policy.FrameAncestors(nil)
	cfg := bridge.PageConfig{Reason: string(why), Prefix: g.cfg.Prefix, Next: originalURI(r, g.cfg.TokenParam)}
	if !isLocalPath(cfg.Next) {
		cfg.Next = "/"
	}
	if t != nil {
		framing = t.FrameAncestorsCSP()
		cfg.Tenant = t.ID
		cfg.Origins, cfg.Bound = pageOrigins(t, g.refusedSession(r, t))
	}
	writeHTML(w, http.StatusUnauthorized, bridge.PageCSP()+"; "+framing, bridge.GatePage(cfg))
}

// cookieSession opens the request's session cookie whatever made it
// unusable (expired, idle, revoked), with its tenant; nil, nil without one.
func (g *Gateway) cookieSession(r *http.Request, rq *request) (*session.Session, *tenant.Tenant) {
	value, ok := policy.CookieValue(r.Header, g.cfg.CookieName)
	if !ok {
		return nil, nil
	}
	s, _, err := g.cfg.Sealer.OpenClaims(value, rq.host)
	if err != nil {
		return nil, nil
	}
	t, ok := rq.reg.ByID(s.Tenant)
	if !ok {
		return nil, nil
	}
	return s, t
}

// refusedSession opens the request's session cookie again, whatever made it
// unusable (expired, idle, revoked), to learn where it was framed. Only a
// session of tenant t counts.
func (g *Gateway) refusedSession(r *http.Request, t *tenant.Tenant) *session.Session {
	value, ok := policy.CookieValue(r.Header, g.cfg.CookieName)
	if !ok {
		return nil
	}
	s, _, err := g.cfg.Sealer.OpenClaims(value, tenant.HostOf(r.Host))
	if err != nil || s.Tenant != t.ID {
		return nil
	}
	return s
}
