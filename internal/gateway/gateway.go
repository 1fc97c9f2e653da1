// Package gateway is embedgate's request flow in plain net/http: the token
// exchange endpoints, the per-request session check, the identity headers
// sent upstream, and the framing and origin policy applied to every
// response. It imports no Caddy code; the caddymodule package adapts it.
package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/embedgate/embedgate/internal/bridge"
	"github.com/embedgate/embedgate/internal/policy"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/session"
	"github.com/embedgate/embedgate/internal/tenant"
	"github.com/embedgate/embedgate/internal/token"
)

// Identity headers set upstream. Inbound copies are always stripped.
const (
	HeaderTenant  = "X-Embed-Tenant"
	HeaderSubject = "X-Embed-Subject"
)

// Limits on request bodies read by the gateway itself.
const maxExchangeBody = 16 << 10

// Next continues the handler chain (the upstream app).
type Next func(w http.ResponseWriter, r *http.Request) error

// ForwardClaim sends one token claim upstream as a header.
type ForwardClaim struct {
	Claim  string // dotted path into the token's claims
	Header string // canonical header name
}

// Requirement is one require rule: a Scope alone, or a Claim and its Value
// (CheckRequire).
type Requirement struct {
	Scope string
	Claim string
	Value string // may hold placeholders, expanded per request
}

// Sealer seals and opens session cookies: *session.Sealer, or a wrapper
// that loads its key ring on first use.
type Sealer interface {
	Seal(sess *session.Session, host string) (string, error)
	// OpenClaims opens a cookie and returns the session and its claims
	// decoded, which are shared between requests and read-only.
	OpenClaims(value, host string) (*session.Session, map[string]any, error)
}

// Config is everything the gateway needs; zero durations are not defaults
// here: the adapter sets them.
type Config struct {
	Tenants     func() *tenant.Registry // the current registry (swapped on reload)
	Sealer      Sealer
	Replay      replay.Store
	Revocations replay.Revocations

	SessionTTL  time.Duration
	IdleTimeout time.Duration
	MaxTokenAge time.Duration
	Leeway      time.Duration

	CookieName string
	Prefix     string
	TokenParam string

	ForwardClaims []ForwardClaim
	Require       []Requirement

	// Assertions, when set, signs every request that goes upstream with a
	// session (its header is protected like X-Embed-*) and serves
	// {prefix}/jwks.json.
	Assertions Assertions

	// InjectBridge adds <script src="{prefix}/bridge.js" defer> to the
	// upstream's HTML responses, keeping a strict upstream CSP working.
	InjectBridge bool

	// ReturnRefusals makes ServeHTTP return a *RefusalError, instead of writing
	// the JSON answer, for refusals of requests into the app: 401 without a
	// session (not the gate page or the login redirect) and 403. Headers
	// (framing, cookie clearing) are set on w first.
	ReturnRefusals bool

	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Audit receives one event per exchange, rejection and sign-out.
	Audit func(r *http.Request, e Event)
	// Expand resolves placeholders in require values; nil leaves them as is.
	Expand func(r *http.Request, s string) string
	// OnSession is called for a request with a live session before it goes
	// upstream (the adapter sets placeholders there).
	OnSession func(r *http.Request, s *session.Session, claims map[string]any)
	// Observer receives counts for metrics; nil means none.
	Observer Observer
	// OnTokenInURL is called for a request that carries the token parameter
	// in its URL, before anything else: the adapter keeps that URL out of
	// the access log, since the token may still be valid.
	OnTokenInURL func(r *http.Request)
}

// RefusalError is a refused request into the app, returned by ServeHTTP
// when Config.ReturnRefusals is set.
type RefusalError struct {
	Status int
	Reason reason.Reason
}

func (r *RefusalError) Error() string { return string(r.Reason) }

// refuseRequest answers a refused request into the app: JSON, or, for a
// 401 or 403 when ReturnRefusals is set, a *Refusal for the caller to render.
func (g *Gateway) refuseRequest(w http.ResponseWriter, a answer, why reason.Reason) error {
	if g.cfg.ReturnRefusals && (a.status == http.StatusUnauthorized || a.status == http.StatusForbidden) {
		return &RefusalError{Status: a.status, Reason: why}
	}
	writeAnswer(w, a, why)
	return nil
}

// Request results reported to the Observer.
const (
	RequestSessionOK = "session_ok" // went upstream with a live session
	RequestNoSession = "no_session" // 401, login redirect or gate page
	RequestRefused   = "refused"    // 403 (origin check, require rule), 400 (identity boundary, non-canonical path)
)

// Observer receives the gateway's outcomes for metrics. Its methods run on
// the request path: they must be cheap and must not block.
type Observer interface {
	// Exchange reports one exchange: why is "" on success, else the reason.
	Exchange(tenant string, why reason.Reason)
	// ExchangeDuration reports the wall time of one exchange request.
	ExchangeDuration(d time.Duration)
	// Request reports one request on the session path.
	Request(tenant, result string)
	// Token reports one token API call: why is "" when a token was
	// issued, else the refusal's reason. tenant is "" when none is known.
	Token(tenant string, why reason.Reason)
	// StoreError reports one request refused because the replay or
	// revocation store failed (reason store_unavailable).
	StoreError()
}

// NopObserver counts nothing. Embed it in an Observer that counts only
// some outcomes.
type NopObserver struct{}

func (NopObserver) Exchange(string, reason.Reason) {}
func (NopObserver) ExchangeDuration(time.Duration) {}
func (NopObserver) Request(string, string)         {}
func (NopObserver) Token(string, reason.Reason)    {}
func (NopObserver) StoreError()                    {}

// Gateway serves the embed endpoints and guards every other request.
type Gateway struct {
	cfg      Config
	verifier *token.Verifier
	boundary *policy.Boundary // what of a request may reach the app
	claimSet []string         // claim paths kept in the session
	// pathRules is set when a require value reads the request (placeholders):
	// then only canonical paths are served, so the rule and the upstream
	// read the same path.
	pathRules bool
	// queryRules is set when a require value reads the query: then only
	// unambiguous queries are served (policy.CanonicalQuery).
	queryRules bool
	// cookieRules is set when a require value reads a cookie: then only
	// requests whose cookies are unambiguous are served
	// (policy.CanonicalCookies).
	cookieRules bool
	paths       endpoints
	sdk         []byte // sdk.js with the prefix filled in
	// ownCookies are the cookies the gateway sets (the session, the
	// login-state nonce): none of them ever reaches the app.
	ownCookies []string
	// tunnelCheck is how often an open tunnel's session is checked again
	// (the tunnelCheck constant; tests shorten it).
	tunnelCheck time.Duration
}

type endpoints struct {
	exchange, signout, session, token, prefixSlash string
	bridge, jwks                                   string
}

// CheckPrefix is the rule for the endpoints' prefix: one or more segments,
// each "/" and RFC 3986 unreserved characters, none "." or "..". The pages
// and bridge.js resolve prefix+"/exchange" and the like as URLs, so a
// prefix a URL parser reads otherwise ("//evil.test" or "/\evil.test", an
// authority; a tab, which it drops; "/./x", which it folds) would send the
// token, or the sign-out, somewhere else.
func CheckPrefix(prefix string) error {
	if prefix == "" || prefix[0] != '/' {
		return fmt.Errorf("prefix %q: must start with /", prefix)
	}
	for seg := range strings.SplitSeq(prefix[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("prefix %q: an empty, \".\" or \"..\" segment (a prefix is like /.embed)", prefix)
		}
		for i := 0; i < len(seg); i++ {
			if !unreserved(seg[i]) {
				return fmt.Errorf("prefix %q: only letters, digits and - . _ ~ between slashes (a prefix is like /.embed)", prefix)
			}
		}
	}
	return nil
}

// unreserved reports whether c is an RFC 3986 unreserved character.
func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0
}

// New validates cfg and builds a Gateway.
func New(cfg Config) (*Gateway, error) {
	if cfg.Tenants == nil || cfg.Sealer == nil || cfg.Replay == nil || cfg.Revocations == nil {
		return nil, fmt.Errorf("gateway: tenants, sealer, replay store and revocations are required")
	}
	if err := checkUpstreamHeaders(cfg); err != nil {
		return nil, err
	}
	if err := CheckRequire(cfg.Require); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if err := CheckPrefix(cfg.Prefix); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if cfg.SessionTTL > MaxSessionTTL {
		return nil, fmt.Errorf("gateway: session TTL %s over %s", cfg.SessionTTL, MaxSessionTTL)
	}
	if cfg.Leeway < 0 || cfg.Leeway > MaxLeeway {
		return nil, fmt.Errorf("gateway: leeway %s: want 0 to %s", cfg.Leeway, MaxLeeway)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Audit == nil {
		cfg.Audit = func(*http.Request, Event) {}
	}
	if cfg.Observer == nil {
		cfg.Observer = NopObserver{}
	}
	g := &Gateway{
		cfg:        cfg,
		verifier:   &token.Verifier{MaxTokenAge: cfg.MaxTokenAge, Leeway: cfg.Leeway, Now: cfg.Now},
		ownCookies: []string{cfg.CookieName, LoginCookie},
		paths: endpoints{
			exchange:    cfg.Prefix + "/exchange",
			signout:     cfg.Prefix + "/signout",
			session:     cfg.Prefix + "/session",
			token:       cfg.Prefix + "/token",
			prefixSlash: cfg.Prefix + "/",
			bridge:      cfg.Prefix + "/bridge.js",
			jwks:        cfg.Prefix + "/jwks.json",
		},
		sdk:         bridge.SDK(cfg.Prefix),
		tunnelCheck: tunnelCheck,
	}
	protected := []string{HeaderTenant, HeaderSubject}
	if cfg.Assertions != nil {
		protected = append(protected, cfg.Assertions.Header())
	}
	for _, fc := range cfg.ForwardClaims {
		protected = append(protected, fc.Header)
	}
	for _, rq := range cfg.Require {
		if strings.Contains(rq.Value, "{") {
			g.pathRules = true
		}
		if strings.Contains(rq.Value, "uri.query") || strings.Contains(rq.Value, "{query.") {
			g.queryRules = true
		}
		if strings.Contains(rq.Value, "request.cookie.") || strings.Contains(rq.Value, "{cookie.") {
			g.cookieRules = true
		}
	}
	g.claimSet = claimSetOf(cfg.ForwardClaims, cfg.Require)
	g.boundary = policy.NewBoundary(protected)
	return g, nil
}

// request is what ServeHTTP works out once about a request and hands down:
// one registry snapshot (so a reload mid-request cannot mix two), the host
// and the tenant that owns it.
type request struct {
	reg        *tenant.Registry
	host       string
	hostTenant *tenant.Tenant
}

// newRequest is returned by value: it lives on ServeHTTP's stack, so the
// per-request path gains no allocation.
func (g *Gateway) newRequest(r *http.Request) request {
	rq := request{reg: g.cfg.Tenants(), host: tenant.HostOf(r.Host)}
	rq.hostTenant, _ = rq.reg.ByHost(rq.host)
	return rq
}

// ServeHTTP handles r. The identity boundary runs first, whatever follows:
// a request it refuses gets 400 before any tenant logic, and every other
// request loses the headers only the gateway may set.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request, next Next) error {
	// A URL with the token (under any spelling of its name) stays out of
	// the access log whatever happens next, the boundary's refusals
	// included: the token may still be valid.
	tokenInURL := g.cfg.TokenParam != "" && r.URL.RawQuery != "" && policy.HasQueryParam(r.URL.RawQuery, g.cfg.TokenParam)
	endpoint := strings.HasPrefix(r.URL.Path, g.paths.prefixSlash)
	// So does a token exchange's credential sent in the URL by mistake
	// (an IdP's access token as ?subject_token=): it is refused, and must
	// not be logged on the way.
	if g.cfg.OnTokenInURL != nil && (tokenInURL || endpoint && credentialInURL(r.URL.RawQuery)) {
		g.cfg.OnTokenInURL(r)
	}
	// An endpoint's request is answered here, never passed on: its body
	// (whose trailers reach no one) is left to the endpoint's own limit.
	var refused error
	if endpoint {
		refused = g.boundary.AdmitHeaders(r)
	} else {
		refused = g.boundary.Admit(r)
	}
	if refused != nil {
		g.refuseAtBoundary(w, r, refused)
		return nil
	}
	req := g.newRequest(r)
	rq := &req

	if tokenInURL && (r.Method != http.MethodGet || endpoint) {
		g.refuseTokenURL(w, r, rq)
		return nil
	}
	if endpoint {
		return g.serveEndpoint(w, r, rq)
	}
	if tokenInURL {
		start := time.Now()
		err := g.serveTokenParam(w, r, rq)
		g.cfg.Observer.ExchangeDuration(time.Since(start))
		return err
	}
	err := g.serveSession(w, r, rq, next)
	if err != nil {
		// An error goes back to Caddy, whose handle_errors routes run with
		// this request and may proxy it anywhere: without the gateway's
		// credentials, its cookies (a refusal under caddy_errors has not
		// stripped them yet) and the assertion, a bearer token for the app
		// (set when the app itself failed).
		policy.StripCookies(r.Header, g.ownCookies)
		if g.cfg.Assertions != nil {
			delete(r.Header, g.cfg.Assertions.Header())
		}
	}
	return err
}

// refuseAtBoundary answers a request the identity boundary refused. No
// tenant is trusted yet (the Host itself may be what was refused), so the
// answer may not be framed.
func (g *Gateway) refuseAtBoundary(w http.ResponseWriter, r *http.Request, err error) {
	setFraming(w.Header(), nil)
	w.Header().Set("Cache-Control", "no-store")
	g.cfg.Observer.Request("", RequestRefused)
	g.audit(r, nil, nil, err, false)
	writeRefusal(w, reason.BadRequest, pathSession)
}

// refuseTokenURL answers a request whose URL holds the token parameter
// but is not a GET into the app, the one request that exchanges a token
// from a URL (and is always answered by the gateway). It is answered here
// too, never passed on: Caddy logs a failed request's original URL and runs
// its error routes with it, so a request that went on to the app, or came
// back as an error, would take the token into those logs and routes.
func (g *Gateway) refuseTokenURL(w http.ResponseWriter, r *http.Request, rq *request) {
	h := w.Header()
	setFraming(h, rq.hostTenant)
	setTokenURLHeaders(h)
	g.cfg.Observer.Request(tenantID(rq.hostTenant), RequestRefused)
	g.audit(r, rq.hostTenant, nil, reason.Errorf(reason.BadRequest,
		"the %s parameter on a %s to %s: a token in a URL is exchanged by a GET into the app only", g.cfg.TokenParam, r.Method, r.URL.Path), false)
	writeRefusal(w, reason.BadRequest, pathSession)
}

func (g *Gateway) serveEndpoint(w http.ResponseWriter, r *http.Request, rq *request) error {
	switch r.URL.Path {
	case g.paths.exchange:
		if r.Method != http.MethodPost {
			return g.methodNotAllowed(w, rq.hostTenant, "POST")
		}
		start := time.Now()
		g.serveExchange(w, r, rq)
		g.cfg.Observer.ExchangeDuration(time.Since(start))
	case g.paths.signout:
		switch r.Method {
		case http.MethodPost:
			g.serveSignout(w, r, rq)
		case http.MethodGet, http.MethodHead:
			g.serveSignoutPage(w, r, rq)
		default:
			return g.methodNotAllowed(w, rq.hostTenant, "GET, HEAD, POST")
		}
	case g.paths.session:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return g.methodNotAllowed(w, rq.hostTenant, "GET, HEAD")
		}
		g.serveSessionInfo(w, r, rq)
	case g.paths.token:
		g.serveTokenAPI(w, r, rq)
	case g.paths.jwks:
		g.serveJWKS(w, r)
	default:
		if g.servePage(w, r, rq) {
			return nil
		}
		setFraming(w.Header(), rq.hostTenant)
		writeJSON(w, http.StatusNotFound, errorBody{Error: codeNotFound})
	}
	return nil
}

func (g *Gateway) methodNotAllowed(w http.ResponseWriter, t *tenant.Tenant, allow string) error {
	setFraming(w.Header(), t)
	w.Header().Set("Allow", allow)
	writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: codeMethodNotAllowed})
	return nil
}

// lookupTenant resolves the tenant named by a request parameter, checked
// against the host's tenant when the host names one.
func (g *Gateway) lookupTenant(rq *request, param string) (*tenant.Tenant, error) {
	if param == "" {
		return rq.hostTenant, nil
	}
	if rq.hostTenant != nil {
		if param != rq.hostTenant.ID {
			return nil, reason.Errorf(reason.WrongTenant, "tenant parameter %q on a host of tenant %q", param, rq.hostTenant.ID)
		}
		return rq.hostTenant, nil
	}
	t, ok := rq.reg.ByID(param)
	if !ok {
		return nil, reason.Errorf(reason.UnknownTenant, "tenant parameter %q is not configured", param)
	}
	return t, nil
}

func (g *Gateway) now() time.Time { return g.cfg.Now() }

// claimSetOf is the claim paths a session keeps: the forward_claims', then
// those the require rules read, each once.
func claimSetOf(fwd []ForwardClaim, req []Requirement) []string {
	var set []string
	seen := map[string]bool{}
	for _, fc := range fwd {
		if !seen[fc.Claim] {
			seen[fc.Claim] = true
			set = append(set, fc.Claim)
		}
	}
	for _, rq := range req {
		paths := []string{rq.Claim}
		if rq.Scope != "" {
			paths = scopeClaims
		}
		for _, p := range paths {
			if !seen[p] {
				seen[p] = true
				set = append(set, p)
			}
		}
	}
	return set
}
