package gateway_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/assertion"
	"github.com/embedgate/embedgate/internal/gateway"
)

// withAssertions signs with one fresh P-256 key (kid "k1") on the env's
// clock; the returned key verifies.
func withAssertions(tb testing.TB, header string, key **ecdsa.PrivateKey) option {
	return func(e *env, c *gateway.Config) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		*key = k
		ring, err := assertion.NewRing([]assertion.Key{{Signer: k, KID: "k1"}})
		if err != nil {
			tb.Fatal(err)
		}
		var paths []string
		for _, fc := range c.ForwardClaims {
			paths = append(paths, fc.Claim)
		}
		c.Assertions, err = assertion.New(assertion.Config{Header: header, Keys: ring, Claims: paths,
			SessionTTL: c.SessionTTL, Now: e.clock.Now})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// verifyAssertion checks tok against key at the env's time.
func (e *env) verifyAssertion(t *testing.T, tok string, key *ecdsa.PrivateKey) jwt.MapClaims {
	t.Helper()
	c := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, c, func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(e.clock.Now),
		jwt.WithIssuer(selfOrigin), jwt.WithAudience(selfOrigin))
	if err != nil {
		t.Fatalf("assertion %q does not verify: %v", tok, err)
	}
	return c
}

// A request with a session carries exactly one X-Embed-Assertion, the
// gateway's: every client-sent copy (any spelling) is stripped first. It
// holds the session's identity and the forwarded claim, nested.
func TestAssertionSentUpstreamForgedStripped(t *testing.T) {
	var key *ecdsa.PrivateKey
	e := newEnv(t, withForward(gateway.ForwardClaim{Claim: "org.id", Header: "X-Embed-Org"}), withAssertions(t, "", &key))
	v := e.login(set("org", map[string]any{"id": "org-7", "secret_plan": "gold"}))
	forged := "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9."
	res := e.do(newReq(http.MethodGet, "/deals", nil, withCookie(v),
		hdr("X-Embed-Assertion", forged), rawHdr("X_Embed_Assertion", forged), rawHdr("x-embed-assertion", forged)))
	wantCalled(t, res)
	got := res.up.headers.Values(assertion.DefaultHeader)
	if len(got) != 1 || got[0] == forged {
		t.Fatalf("upstream %s = %q, want exactly the gateway's", assertion.DefaultHeader, got)
	}
	for k := range res.up.headers {
		if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), assertion.DefaultHeader) && k != assertion.DefaultHeader {
			t.Fatalf("forged spelling %q reached the app", k)
		}
	}
	c := e.verifyAssertion(t, got[0], key)
	if c["sub"] != subject || c["tenant"] != "acme" {
		t.Fatalf("claims %v", c)
	}
	org, _ := c["org"].(map[string]any)
	if len(org) != 1 || org["id"] != "org-7" {
		t.Fatalf("org = %v, want only the forwarded id", c["org"])
	}
	if exp, iat := c["exp"].(float64), c["iat"].(float64); exp-iat != assertion.DefaultTTL.Seconds() || iat != float64(e.clock.Now().Unix()) {
		t.Fatalf("iat %v exp %v", iat, exp)
	}
	// The cache: the next request reuses it; past TTL/2 a new one is signed.
	if again := e.do(newReq(http.MethodGet, "/x", nil, withCookie(v))); again.up.headers.Get(assertion.DefaultHeader) != got[0] {
		t.Fatal("the second request was signed again")
	}
	e.clock.Advance(assertion.DefaultTTL / 2)
	later := e.do(newReq(http.MethodGet, "/x", nil, withCookie(v))).up.headers.Get(assertion.DefaultHeader)
	if later == got[0] || e.verifyAssertion(t, later, key)["iat"] != float64(e.clock.Now().Unix()) {
		t.Fatal("not re-signed after TTL/2")
	}
}

// A forged assertion header never reaches the app without a session either.
func TestAssertionForgedWithoutSession(t *testing.T) {
	var key *ecdsa.PrivateKey
	e := newEnv(t, withAssertions(t, "", &key))
	res := e.do(newReq(http.MethodGet, "/deals", nil, xhr(), hdr("X-Embed-Assertion", "forged")))
	wantStatus(t, res, http.StatusUnauthorized)
	wantNotCalled(t, res)
}

// With `header X-App-Identity`, that header replaces X-Embed-Assertion, and
// it is protected as X-Embed-* is: stripped in every spelling, refused when
// Connection or Trailer names it.
func TestAssertionCustomHeaderProtected(t *testing.T) {
	var key *ecdsa.PrivateKey
	e := newEnv(t, withAssertions(t, "x-app-identity", &key))
	v := e.login()
	res := e.do(newReq(http.MethodGet, "/deals", nil, withCookie(v), hdr("X-App-Identity", "forged"), rawHdr("X_App_Identity", "forged2")))
	wantCalled(t, res)
	if got := res.up.headers.Values("X-App-Identity"); len(got) != 1 || got[0] == "forged" {
		t.Fatalf("upstream X-App-Identity = %q", got)
	}
	if _, ok := res.up.headers["X_App_Identity"]; ok {
		t.Fatal("X_App_Identity reached the app")
	}
	e.verifyAssertion(t, res.up.headers.Get("X-App-Identity"), key)
	if got := res.up.headers.Values(assertion.DefaultHeader); len(got) != 0 {
		t.Fatalf("the default header was sent too: %q", got)
	}
	for _, h := range []string{"Connection", "Trailer"} {
		res := e.do(newReq(http.MethodGet, "/deals", nil, withCookie(v), hdr(h, "x-app-identity")))
		wantStatus(t, res, http.StatusBadRequest)
		wantNotCalled(t, res)
	}
}

// GET {prefix}/jwks.json: the key set, without a session, publicly
// cacheable, readable from any origin, never framed.
func TestAssertionJWKSEndpoint(t *testing.T) {
	var key *ecdsa.PrivateKey
	e := newEnv(t, withAssertions(t, "", &key))
	res := e.do(newReq(http.MethodGet, "/.embed/jwks.json", nil))
	wantStatus(t, res, http.StatusOK)
	h := res.hdrs()
	for k, want := range map[string]string{
		"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*",
		"Content-Type": "application/json", "Content-Security-Policy": noneCSP,
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(res.Body.Bytes(), &set); err != nil || len(set.Keys) != 1 || set.Keys[0]["kid"] != "k1" || set.Keys[0]["d"] != "" {
		t.Fatalf("JWKS %s: %v", res.Body, err)
	}
	head := e.do(newReq(http.MethodHead, "/.embed/jwks.json", nil))
	if head.Code != http.StatusOK || head.Body.Len() != 0 {
		t.Fatalf("HEAD: %d %q", head.Code, head.Body)
	}
	wantStatus(t, e.do(newReq(http.MethodPost, "/.embed/jwks.json", nil)), http.StatusMethodNotAllowed)

	// Without assertion configured there is no key set.
	off := newEnv(t)
	wantStatus(t, off.do(newReq(http.MethodGet, "/.embed/jwks.json", nil)), http.StatusNotFound)
}

// brokenKeys is a generated key that storage cannot give.
type brokenKeys struct{}

func (brokenKeys) Ring() (*assertion.Ring, error) { return nil, errors.New("storage down") }

// No assertion can be had: the request is refused with 503
// store_unavailable, never sent to the app without it; the JWKS too.
func TestAssertionUnavailableFailsClosed(t *testing.T) {
	e := newEnv(t, func(e *env, c *gateway.Config) {
		var err error
		if c.Assertions, err = assertion.New(assertion.Config{Keys: brokenKeys{}, Now: e.clock.Now}); err != nil {
			t.Fatal(err)
		}
	})
	v := e.login()
	res := e.do(newReq(http.MethodGet, "/deals", nil, withCookie(v), xhr()))
	wantJSONError(t, res, http.StatusServiceUnavailable, "temporarily_unavailable", "store_unavailable")
	wantNotCalled(t, res)
	wantCSP(t, res, acmeCSP)
	wantStatus(t, e.do(newReq(http.MethodGet, "/.embed/jwks.json", nil)), http.StatusServiceUnavailable)
}

// The assertion header may not be a header the gateway or HTTP owns, nor a
// forward_claim's.
func TestAssertionHeaderChecked(t *testing.T) {
	ring, err := assertion.NewRing([]assertion.Key{{Signer: mustEC(t)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		header string
		fwd    []gateway.ForwardClaim
	}{
		{header: "X-Embed-Subject"},
		{header: "Cookie"},
		{header: "Connection"},
		{header: "X-Org", fwd: []gateway.ForwardClaim{{Claim: "org", Header: "X-Org"}}},
		{header: "X_Embed_Subject"},
		{header: "X.Org", fwd: []gateway.ForwardClaim{{Claim: "org", Header: "X-Org"}}},
	} {
		a, err := assertion.New(assertion.Config{Header: c.header, Keys: ring})
		if err != nil {
			t.Fatal(err)
		}
		cfg := newEnv(t).cfg
		cfg.Assertions, cfg.ForwardClaims = a, c.fwd
		if _, err := gateway.New(cfg); err == nil {
			t.Errorf("header %s accepted", c.header)
		}
	}
}

func mustEC(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
