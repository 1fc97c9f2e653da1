package gateway_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/assertion"
	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/reason"
)

// wantBoundaryRefusal is the identity boundary's answer: 400 bad_request,
// not framable, nothing upstream, one audit event with the reason.
func wantBoundaryRefusal(t *testing.T, e *env, res result) {
	t.Helper()
	wantJSONError(t, res, http.StatusBadRequest, "invalid_request", "bad_request")
	wantNotCalled(t, res)
	wantCSP(t, res, "frame-ancestors 'none'")
	ev := e.onlyEvent()
	if ev.Kind != gateway.EventReject || ev.Reason != reason.BadRequest || ev.Detail == "" {
		t.Fatalf("audit event %+v", ev)
	}
}

// Upgrade smuggling: a session request with Upgrade: h2c would, after 101,
// tunnel requests the gateway never sees (forged X-Embed-* included).
func TestSessionUpgradeOtherThanWebSocketRefused(t *testing.T) {
	e := newEnv(t)
	v := e.login()
	for _, up := range []string{"h2c", "foo", "websocket, h2c"} {
		e.resetEvents()
		res := e.do(newReq("GET", "/app", nil, withCookie(v), hdr("Connection", "Upgrade"), hdr("Upgrade", up), hdr("HTTP2-Settings", "AAMAAABkAAQAoAAAAAIAAAAA")))
		wantBoundaryRefusal(t, e, res)
	}
	res := e.do(newReq("GET", "/app", nil, withCookie(v), hdr("HTTP2-Settings", "AAMAAABkAAQAoAAAAAIAAAAA")))
	wantCalled(t, res)
	if _, ok := res.up.headers["Http2-Settings"]; ok {
		t.Fatal("HTTP2-Settings reached the app")
	}
}

// Hop-by-hop deletion of the gateway's own headers: Connection: X-Embed-Tenant
// would make the proxy remove the tenant the gateway set, after it set it.
func TestConnectionNamingIdentityHeaderRefused(t *testing.T) {
	e := newEnv(t, withForward(gateway.ForwardClaim{Claim: "org.id", Header: "X-Org-Id"}))
	v := e.login()
	for _, c := range []string{"X-Embed-Tenant", "keep-alive, x-embed-subject", "X_Embed_Subject", "x-org-id"} {
		e.resetEvents()
		wantBoundaryRefusal(t, e, e.do(newReq("GET", "/app", nil, withCookie(v), hdr("Connection", c))))
	}
	res := e.do(newReq("GET", "/app", nil, withCookie(v), hdr("Connection", "keep-alive")))
	wantCalled(t, res)
	if res.up.headers.Get(gateway.HeaderTenant) != "acme" {
		t.Fatalf("identity missing upstream: %v", res.up.headers)
	}
}

// Forged identity in request trailers: a declared X-Embed-Subject trailer
// would reach the app in r.Trailer after the headers were checked.
func TestProtectedTrailerRefused(t *testing.T) {
	e := newEnv(t)
	v := e.login()
	r := newReq("POST", "/app", strings.NewReader("x"), withCookie(v))
	r.Trailer = http.Header{"X-Embed-Subject": nil, "X-Embed-Tenant": nil}
	e.resetEvents()
	wantBoundaryRefusal(t, e, e.do(r))
}

// Host spellings that match no configured host (acme:80:80, a trailing "..")
// would escape the host to tenant binding: they are refused before any
// tenant logic, so another tenant's token is not even looked at, let alone
// consumed.
func TestOddHostRefusedBeforeTenantLogic(t *testing.T) {
	e := newEnv(t)
	tok := e.mint("globex")
	for _, h := range []string{"portal.gate.test:80:80", "portal.gate.test..", "portal.gate.test:443:1", ""} {
		e.resetEvents()
		wantBoundaryRefusal(t, e, e.do(exchangeReq(tok, onHost(h))))
	}
	// The token was not consumed: it still exchanges on its own host.
	wantStatus(t, e.do(exchangeReq(tok, onHost(globexHost))), http.StatusNoContent)
}

// Method override: a cross-site GET with X-HTTP-Method-Override: DELETE
// passes the CSRF check as a safe method, and many frameworks then run it
// as a DELETE. The header never reaches the app.
func TestMethodOverrideHeadersRemoved(t *testing.T) {
	e := newEnv(t)
	v := e.login()
	res := e.do(newReq("GET", "/items/1", nil, withCookie(v), fetchSite("cross-site"),
		hdr("X-HTTP-Method-Override", "DELETE"), hdr("X-HTTP-Method", "DELETE"), hdr("X-Method-Override", "DELETE"), rawHdr("X_HTTP_Method_Override", "DELETE")))
	wantCalled(t, res)
	for k := range res.up.headers {
		if strings.Contains(strings.ToLower(strings.ReplaceAll(k, "_", "-")), "method") {
			t.Fatalf("%s reached the app", k)
		}
	}
}

// The token after ';' (Rack and others split on it) is the token parameter:
// exchanged on a GET, refused on others, never forwarded or logged.
func TestTokenParamAfterSemicolon(t *testing.T) {
	var inURL int
	e := newEnv(t, func(_ *env, c *gateway.Config) { c.OnTokenInURL = func(*http.Request) { inURL++ } })
	res := e.do(newReq("GET", "/deals?a=1;embed_token="+e.mint("acme"), nil))
	wantStatus(t, res, http.StatusSeeOther)
	if loc := res.hdrs().Get("Location"); loc != "/deals?a=1" {
		t.Fatalf("Location %q", loc)
	}
	v, _ := sessionCookie(t, res)
	res = e.do(newReq("POST", "/deals?a=1;embed_token=SECRET;b=2", nil, withCookie(v)))
	wantStatus(t, res, http.StatusBadRequest)
	wantNotCalled(t, res)
	if inURL != 2 {
		t.Fatalf("OnTokenInURL called %d times, want 2", inURL)
	}
}

// The core refuses a forward_claim header it owns itself (Cookie carries the
// session; the identity headers are the gateway's), whoever builds Config.
// Names compare as an app reads them: X_Embed_Tenant is X-Embed-Tenant to a
// PHP or CGI app, so a token's claim set under it sat beside the gateway's
// tenant, and which one the app read depended on map order. For the same
// reason two forward_claims may not set one header in two spellings.
func TestNewRefusesReservedForwardHeader(t *testing.T) {
	for _, h := range []string{"Cookie", "cookie", "X-Embed-Tenant", "Host", "Authorization", "Connection", "Te", "Upgrade", "Trailer", "Keep-Alive", "Transfer-Encoding", "X-HTTP-Method-Override",
		"X_Embed_Tenant", "x.embed.subject", "X-Embed_Subject", "Transfer_Encoding", "X_HTTP_Method_Override"} {
		cfg := newEnv(t).cfg
		cfg.ForwardClaims = []gateway.ForwardClaim{{Claim: "org", Header: h}}
		if _, err := gateway.New(cfg); err == nil {
			t.Errorf("forward_claim header %s accepted", h)
		}
	}
	for _, pair := range [][2]string{{"X-Dept", "X_Dept"}, {"X-Dept", "x.dept"}, {"X-Dept", "X-Dept"}} {
		cfg := newEnv(t).cfg
		cfg.ForwardClaims = []gateway.ForwardClaim{{Claim: "a", Header: pair[0]}, {Claim: "b", Header: pair[1]}}
		if _, err := gateway.New(cfg); err == nil || !strings.Contains(err.Error(), "forward_claim #2") {
			t.Errorf("forward_claim headers %s and %s: %v, want refused as #2", pair[0], pair[1], err)
		}
	}
}

// A forward_claim needs a claim path and a header HTTP can carry. Only the
// adapter checked either, so a Config built elsewhere with "X Org" proxied
// no request at all (the transport refuses the name, 502 on every one),
// and one with no claim path never set its header: the core refuses both,
// naming the forward_claim, as it does the assertion's header.
func TestNewRefusesUnsendableForwardClaim(t *testing.T) {
	for _, c := range []struct {
		fc   gateway.ForwardClaim
		want string
	}{
		{gateway.ForwardClaim{Header: "X-Org"}, "forward_claim #2: needs a claim path"},
		{gateway.ForwardClaim{Claim: "org", Header: "X Org"}, "forward_claim #2: header \"X Org\" is not a valid header name"},
		{gateway.ForwardClaim{Claim: "org", Header: ""}, "forward_claim #2: header \"\" is not a valid header name"},
		{gateway.ForwardClaim{Claim: "org", Header: "X-Org\r\nX-Embed-Subject"}, "is not a valid header name"},
		{gateway.ForwardClaim{Claim: "org", Header: "X-Dépt"}, "is not a valid header name"},
	} {
		cfg := newEnv(t).cfg
		cfg.ForwardClaims = []gateway.ForwardClaim{{Claim: "email", Header: "X-Email"}, c.fc}
		if _, err := gateway.New(cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("forward_claim %+v: %v, want %q", c.fc, err, c.want)
		}
	}
	ring, err := assertion.NewRing([]assertion.Key{{Signer: mustEC(t), KID: "k1"}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := assertion.New(assertion.Config{Header: "X Identity", Keys: ring})
	if err != nil {
		t.Fatal(err)
	}
	cfg := newEnv(t).cfg
	cfg.Assertions = a
	if _, err := gateway.New(cfg); err == nil || !strings.Contains(err.Error(), `assertion: header "X Identity" is not a valid header name`) {
		t.Errorf("assertion header X Identity: %v, want refused", err)
	}
}

// The core refuses a leeway that would outlast max_token_age many times
// over, or a negative one (it would end a sign-out's revocation before the
// session), whoever builds Config.
func TestNewRefusesLeewayOverMax(t *testing.T) {
	cfg := newEnv(t).cfg
	for _, bad := range []time.Duration{gateway.MaxLeeway + time.Second, -7 * time.Hour} {
		cfg.Leeway = bad
		if _, err := gateway.New(cfg); err == nil {
			t.Fatalf("leeway %s accepted", cfg.Leeway)
		}
	}
	cfg.Leeway = gateway.MaxLeeway
	if _, err := gateway.New(cfg); err != nil {
		t.Fatalf("leeway %s refused: %v", cfg.Leeway, err)
	}
}

// A request the boundary refuses may still carry a live token in its URL:
// it is kept out of the access log all the same (the token is not consumed,
// so whoever reads the log could use it).
func TestBoundaryRefusalKeepsTokenURLOutOfLog(t *testing.T) {
	var inURL int
	e := newEnv(t, func(_ *env, c *gateway.Config) { c.OnTokenInURL = func(*http.Request) { inURL++ } })
	tok := e.mint("acme")
	res := e.do(newReq("GET", "/deals?embed_token="+tok, nil, hdr("Connection", "X-Embed-Tenant")))
	wantJSONError(t, res, http.StatusBadRequest, "invalid_request", "bad_request")
	if inURL != 1 {
		t.Fatalf("OnTokenInURL called %d times for a refused request with a token", inURL)
	}
}

// A require rule that reads the query sees one value; an app whose parser
// splits on ';', takes the last of repeated names or builds org[] arrays
// would see another. Under such a rule, only unambiguous queries pass.
func TestQueryRuleRefusesAmbiguousQueries(t *testing.T) {
	orgParam := func(_ *env, c *gateway.Config) {
		c.Expand = func(r *http.Request, s string) string {
			return strings.ReplaceAll(s, "{http.request.uri.query.org}", r.URL.Query().Get("org"))
		}
	}
	e := newEnv(t, withRequire(gateway.Requirement{Claim: "org", Value: "{http.request.uri.query.org}"}), orgParam)
	v := e.login(set("org", "W1"))
	wantCalled(t, e.do(newReq("GET", "/deals?org=W1", nil, withCookie(v))))
	for _, q := range []string{"x=;org=W2&org=W1", "org=W1&org=W2", "org=W1&org[]=W2"} {
		res := e.do(newReq("GET", "/deals?"+q, nil, withCookie(v), xhr()))
		wantJSONError(t, res, http.StatusBadRequest, "invalid_request", "bad_request")
		wantNotCalled(t, res)
	}
}

// A require rule is a scope alone or a claim with its value. A JSON config
// with both a scope and a value was accepted with the value silently
// dropped, so a rule its author read as "scope deals:read for org acme"
// admitted every session with the scope: the core refuses it, whoever
// builds Config.
func TestNewRefusesMalformedRequire(t *testing.T) {
	for _, tc := range []struct {
		rule gateway.Requirement
		want string
	}{
		{gateway.Requirement{Scope: "deals:read", Value: "acme"}, "takes no value"},
		{gateway.Requirement{Scope: "deals:read", Claim: "org"}, "either scope or claim"},
		// Scopes split on spaces: one with a space could match none.
		{gateway.Requirement{Scope: "deals read"}, "not an RFC 6749 scope-token"},
		{gateway.Requirement{Scope: "deals\u00a0read"}, "not an RFC 6749 scope-token"},
		{gateway.Requirement{}, "either scope or claim"},
		{gateway.Requirement{Claim: "org"}, "needs a value"},
	} {
		cfg := newEnv(t).cfg
		cfg.Require = []gateway.Requirement{{Scope: "ok"}, tc.rule}
		if _, err := gateway.New(cfg); err == nil || !strings.Contains(err.Error(), "require #2") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("require %+v: %v, want refused as #2 (%s)", tc.rule, err, tc.want)
		}
	}
	cfg := newEnv(t).cfg
	cfg.Require = []gateway.Requirement{{Scope: "deals:read"}, {Claim: "org", Value: "acme"}}
	if _, err := gateway.New(cfg); err != nil {
		t.Errorf("well-formed rules refused: %v", err)
	}
}
