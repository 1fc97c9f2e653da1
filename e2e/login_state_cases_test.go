package e2e

// The login_state and token exchange cases against the binary, over plain
// HTTPS (the Chromium proofs are in login_state_test.go). The env is
// login_state_test.go's.

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/testsupport"
)

// lsNav are a browser's headers on a top-level navigation from another site.
var lsNav = map[string]string{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document", "Sec-Fetch-Site": "cross-site", "Accept": "text/html"}

func lsWithCookie(nonce string) map[string]string {
	h := maps.Clone(lsNav)
	h["Cookie"] = "__Host-embed_login=" + nonce
	return h
}

// The redirect to login_url carries state and sets the nonce cookie; a
// token minted with that nonce (here by embed-mint --nonce) signs in the
// browser that holds it, and clears the cookie; another browser's link,
// or a token without nonce, is 401 state_mismatch with no session, in the
// audit log, and the cookie value never in a log.
func TestLoginStateBinary(t *testing.T) {
	e := startLsEnv(t)
	resp, _ := get(t, e.g, gateHost, "/deals?tab=2", lsNav, nil)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d", resp.StatusCode)
	}
	cookies := resp.Header.Values("Set-Cookie")
	m := regexp.MustCompile(`^__Host-embed_login=([A-Za-z0-9_-]{43}); Path=/; Max-Age=600; HttpOnly; Secure; SameSite=Lax$`).FindStringSubmatch(strings.Join(cookies, "\n"))
	if len(cookies) != 1 || m == nil {
		t.Fatalf("Set-Cookie %q", cookies)
	}
	nonce := m[1]
	wantLoc := e.g.URL(acmeHost, "/api/login") + "?redirect=" + url.QueryEscape(e.g.URL(gateHost, "/deals?tab=2")) + "&state=" + nonce
	if loc := resp.Header.Get("Location"); loc != wantLoc {
		t.Fatalf("Location\n %s\nwant\n %s", loc, wantLoc)
	}

	// The token link of this browser, minted by the CLI with --nonce.
	out, code := runBinary(t, coreEnv, "embed-mint", "--tenant", "acme", "--sub", "jane@acme.test", "--key-env", "ACME_SECRET", "--nonce", nonce)
	if code != 0 {
		t.Fatalf("embed-mint: %d %s", code, out)
	}
	link := strings.TrimSpace(out)
	// Another browser (no cookie, or its own) is refused, and burns nothing.
	for name, hdr := range map[string]map[string]string{"no cookie": lsNav, "another browser's cookie": lsWithCookie("victim-" + nonce[:20])} {
		resp, body := get(t, e.g, gateHost, "/deals?tab=2&embed_token="+link, hdr, nil)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Location") != "" || len(resp.Header.Values("Set-Cookie")) != 0 ||
			!strings.Contains(body, `content="state_mismatch"`) {
			t.Fatalf("%s: %d Location %q Set-Cookie %q\n%s", name, resp.StatusCode, resp.Header.Get("Location"), resp.Header.Values("Set-Cookie"), body)
		}
	}
	resp, _ = get(t, e.g, gateHost, "/deals?tab=2&embed_token="+link, lsWithCookie(nonce), nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/deals?tab=2" {
		t.Fatalf("own browser: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var session *http.Cookie
	cleared := false
	for _, c := range resp.Cookies() {
		switch {
		case c.Name == "__Host-embed_session" && c.Value != "":
			session = c
		case c.Name == "__Host-embed_login" && c.Value == "" && c.MaxAge < 0:
			cleared = true
		}
	}
	if session == nil || !cleared {
		t.Fatalf("Set-Cookie %q: want the session and the login cookie cleared", resp.Header.Values("Set-Cookie"))
	}
	if r, body := get(t, e.g, gateHost, "/deals", nil, session); r.StatusCode != http.StatusOK || !strings.Contains(body, "jane@acme.test") {
		t.Fatalf("signed in: %d", r.StatusCode)
	}

	// required: a token without nonce is no token link, even with a cookie;
	// to a fetch the refusal is JSON.
	plain := mint(t, "acme", acmeSecret, "mallory@acme.test", nil)
	if r, _ := get(t, e.g, gateHost, "/deals?embed_token="+plain, lsWithCookie(nonce), nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no nonce: %d", r.StatusCode)
	}
	if r, body := get(t, e.g, gateHost, "/deals?embed_token="+plain, map[string]string{"Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}, nil); r.StatusCode != http.StatusUnauthorized ||
		strings.TrimSpace(body) != `{"error":"invalid_token","error_description":"state_mismatch"}` {
		t.Fatalf("fetch: %d %s", r.StatusCode, body)
	}
	// The start page's entry is not bound: the same token exchanges there.
	if r := exchangeJSON(t, e.g, gateHost, plain); r.StatusCode != http.StatusNoContent {
		t.Fatalf("JSON exchange of a token without nonce: %d", r.StatusCode)
	}

	// Every refusal is audited.
	logs := e.g.WaitLogCount(t, `"reason":"state_mismatch"`, 4)
	if strings.Contains(logs, link) || strings.Contains(logs, session.Value) || strings.Contains(logs, "__Host-embed_login="+nonce) {
		t.Fatal("a token or a cookie value appears in the logs")
	}
}

// RFC 8693 token exchange against the mock identity provider: an access
// token is traded for a one-time token (exactly §2.2.1's answer) that the
// exchange takes once; each bad subject token, and a tenant without
// subject_issuer, gets §2.2.2's invalid_request with the typed reason.
func TestTokenExchangeBinary(t *testing.T) {
	e := startLsEnv(t)
	access := e.idp.accessToken(t, "jane@acme.test")
	status, body := e.exchange(t, gateHost, lsAcmeAPIKey, lsForm(access))
	if status != http.StatusOK {
		t.Fatalf("status %d: %v", status, body)
	}
	if keys := slices.Sorted(maps.Keys(body)); !reflect.DeepEqual(keys, []string{"access_token", "expires_in", "issued_token_type", "token_type"}) ||
		body["issued_token_type"] != "urn:ietf:params:oauth:token-type:jwt" || body["token_type"] != "N_A" || body["expires_in"] != float64(60) {
		t.Fatalf("answer %v", body)
	}
	tok := body["access_token"].(string)
	c := lsPayload(t, tok)
	if c["iss"] != "acme" || c["aud"] != "acme" || c["sub"] != "jane@acme.test" || c["email"] != "jane@acme.test" || c["name"] != "jane" ||
		c["groups"] != nil || c["scp"] != nil || c["jti"] == "idp-jane@acme.test" || c["exp"].(float64)-c["iat"].(float64) != 60 || len(c) != 8 {
		t.Fatalf("claims %v", c)
	}
	e.idp.mu.Lock()
	fetched := e.idp.fetches
	e.idp.mu.Unlock()
	if fetched < 1 {
		t.Fatal("the gateway never fetched the IdP's JWKS over loopback http")
	}
	if r := exchangeJSON(t, e.g, gateHost, tok); r.StatusCode != http.StatusNoContent {
		t.Fatalf("first exchange: %d", r.StatusCode)
	}
	if r := exchangeJSON(t, e.g, gateHost, tok); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("second exchange: %d", r.StatusCode)
	}

	// Bad subject tokens: the IdP's claims under a kid it never published,
	// and MACed (HS256) with its public key as the secret.
	unpublished := testsupport.Mint(t, testsupport.SignerFor(t, e.idp.key, "not-published"), lsPayload(t, e.idp.accessToken(t, "jane@acme.test")))
	der, _ := x509.MarshalPKIXPublicKey(&e.idp.key.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	maced := testsupport.Mint(t, testsupport.HS256(string(pubPEM), lsKID), lsPayload(t, access))
	payload := strings.Split(access, ".")[1]
	now := time.Now()
	for _, tc := range []struct {
		name, host, key, subject string
		status                   int
		code, why                string
	}{
		{"expired", gateHost, lsAcmeAPIKey, e.idp.accessToken(t, "jane@acme.test", func(c jwt.MapClaims) {
			c["iat"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
		}), 400, "invalid_request", "expired"},
		{"wrong issuer", gateHost, lsAcmeAPIKey, e.idp.accessToken(t, "jane@acme.test", func(c jwt.MapClaims) { c["iss"] = "https://idp.evil.test" }), 400, "invalid_request", "wrong_issuer"},
		{"wrong audience", gateHost, lsAcmeAPIKey, e.idp.accessToken(t, "jane@acme.test", func(c jwt.MapClaims) { c["aud"] = "api://another-app" }), 400, "invalid_request", "wrong_audience"},
		{"unknown kid", gateHost, lsAcmeAPIKey, unpublished, 400, "invalid_request", "unknown_key"},
		{"HS256 MACed with the public key", gateHost, lsAcmeAPIKey, maced, 400, "invalid_request", "bad_algorithm"},
		{"alg none", gateHost, lsAcmeAPIKey, base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + payload + ".", 400, "invalid_request", "bad_algorithm"},
		{"tenant without subject_issuer", "api.gate.test", lsGlobexAPIKey, access, 400, "invalid_request", "bad_request"},
		{"no API key", gateHost, "", access, 401, "invalid_client", "api_key_invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.exchange(t, tc.host, tc.key, lsForm(tc.subject))
			if want := map[string]any{"error": tc.code, "error_description": tc.why}; status != tc.status || !reflect.DeepEqual(body, want) {
				t.Fatalf("%d %v, want %d %v", status, body, tc.status, want)
			}
			e.g.WaitLog(t, `"reason":"`+tc.why+`"`)
			if strings.Contains(e.g.Logs(), strings.Split(tc.subject, ".")[1]) {
				t.Fatal("the subject token appears in the logs")
			}
		})
	}
	if strings.Contains(e.g.Logs(), access) || strings.Contains(e.g.Logs(), tok) {
		t.Fatal("a token appears in the logs")
	}
}
