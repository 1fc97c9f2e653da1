package e2e

// login_state and RFC 8693 token exchange against the built binary: a
// gateway whose tenant acme sends top-level visits to a login page on the
// customer's site (login_state required) and trades access tokens from a
// mock identity provider on loopback (its JWKS served here, over http, as
// loopback allows). The same env drives the Chromium proofs in
// e2e/browser/login_state.test.mjs. Helpers are prefixed ls; the shared
// harness (startGateway, runNodeSuite, copySite, appPage) is used as is.

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/testsupport"
)

const (
	lsAcmeAPIKey   = "egk_acme-login-state-e2e-0123456789abcdefgh"
	lsGlobexAPIKey = "egk_globex-login-state-e2e-0123456789abcdef"
	lsAudience     = "api://acme-crm"
	lsKID          = "idp-2026"
)

// lsSite is the gateway (portal.gate.test; api.gate.test belongs to no
// tenant, for globex's key) and the customer's site, whose /api/* is the
// backend: the SDK's mint endpoint (a token exchange) and the login page.
const lsSite = `
portal.gate.test:{{.HTTPSPort}}, api.gate.test:{{.HTTPSPort}} {
	tls internal
	log
	embed_session {
		tenant acme {
			key {env.ACME_SECRET}
			frame_ancestors https://app.acme.test:{{.HTTPSPort}}
			hosts portal.gate.test
			login_url https://app.acme.test:{{.HTTPSPort}}/api/login
			login_state required
			api_key {{.AcmeKeyHash}}
			subject_issuer {{.IdP}} {
				jwks {{.IdP}}/jwks
				audience {{.Audience}}
				subject_claim email
				copy_claims email name
			}
		}
		tenant globex {
			key {env.GLOBEX_SECRET}
			api_key {{.GlobexKeyHash}}
		}
		inject_bridge
	}
	reverse_proxy {{.Upstream}}
}

` + acmeHostSite

// lsIdP is the identity provider: an RSA key whose JWKS it serves, and the
// access tokens it would issue, signed here.
type lsIdP struct {
	*httptest.Server
	key     *rsa.PrivateKey
	fetches int
	mu      sync.Mutex
}

func newLsIdP(t *testing.T) *lsIdP {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &lsIdP{key: k}
	jwk := map[string]any{"keys": []map[string]any{{
		"kty": "RSA", "alg": "RS256", "use": "sig", "kid": lsKID,
		"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
	}}}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jwks" {
			http.NotFound(w, r)
			return
		}
		p.mu.Lock()
		p.fetches++
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(jwk)
	}))
	t.Cleanup(p.Close)
	return p
}

// accessToken is the IdP's access token for email, valid for an hour,
// after edits: RS256 under lsKID, typ at+jwt (RFC 9068).
func (p *lsIdP) accessToken(t testing.TB, email string, edits ...func(jwt.MapClaims)) string {
	t.Helper()
	now := time.Now()
	c := jwt.MapClaims{
		"iss": p.URL, "aud": []any{lsAudience}, "sub": "00u" + hex.EncodeToString([]byte(email))[:8], "email": email,
		"name": strings.Split(email, "@")[0], "groups": []any{"staff"}, "scp": []any{"crm.read"},
		"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(), "jti": "idp-" + email,
	}
	for _, f := range edits {
		f(c)
	}
	return testsupport.MintHeader(t, testsupport.SignerFor(t, p.key, lsKID), map[string]any{"typ": "at+jwt"}, c)
}

// lsBackend is the customer's backend on app.acme.test/api/: the SDK's mint
// endpoint trades the user's access token at the token API (RFC 8693), and
// the login page mints a token link with the state the gateway passed.
type lsBackend struct {
	*httptest.Server
	t      *testing.T
	idp    *lsIdP
	g      *Gateway // set once the gateway runs
	mu     sync.Mutex
	tokens []string
}

func (b *lsBackend) record(tok string) {
	b.mu.Lock()
	b.tokens = append(b.tokens, tok)
	b.mu.Unlock()
}

func (b *lsBackend) take(reset bool) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := append([]string{}, b.tokens...)
	if reset {
		b.tokens = nil
	}
	return out
}

// tokenAPI posts body to the gateway's token API with acme's key.
func (b *lsBackend) tokenAPI(contentType, body string) (int, []byte, error) {
	req, _ := http.NewRequest(http.MethodPost, b.g.URL(gateHost, "/.embed/token"), strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+lsAcmeAPIKey)
	req.Header.Set("Content-Type", contentType)
	resp, err := b.g.Client().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// loginPage is what the README's login-page snippet does: sign the user in
// (here: whoever the form names), mint a token with nonce = state, and
// send the browser back to redirect with it, or show the link.
const lsLoginForm = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Acme sign-in</title></head><body>
<h1>Sign in to Acme</h1>
<form method="post" action="/api/login">
<input type="hidden" name="redirect" value="%s"><input type="hidden" name="state" value="%s">
<label>User <input id="user" name="user" value="jane@acme.test"></label>
<button id="signin" name="go" value="redirect">Sign in</button>
<button id="link" name="go" value="link">Email me a sign-in link</button>
</form></body></html>`

func newLsBackend(t *testing.T, idp *lsIdP) *lsBackend {
	b := &lsBackend{t: t, idp: idp}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/embed-token", b.serveEmbedToken)
	mux.HandleFunc("GET /api/login", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, lsLoginForm, html.EscapeString(r.URL.Query().Get("redirect")), html.EscapeString(r.URL.Query().Get("state")))
	})
	mux.HandleFunc("POST /api/login", b.serveLogin)
	b.Server = httptest.NewServer(mux)
	t.Cleanup(b.Close)
	return b
}

// serveEmbedToken is the SDK's getToken endpoint: the backend holds the
// user's access token (minted here by the IdP) and trades it.
func (b *lsBackend) serveEmbedToken(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Sec-Fetch-Site") != "same-origin" {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	var body struct{ Sub string }
	_ = json.NewDecoder(r.Body).Decode(&body)
	form := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {b.idp.accessToken(b.t, body.Sub)},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
		"scope":              {"deals:read"},
	}
	status, out, err := b.tokenAPI("application/x-www-form-urlencoded", form.Encode())
	var ans struct {
		AccessToken string `json:"access_token"`
	}
	if err != nil || status != http.StatusOK || json.Unmarshal(out, &ans) != nil {
		http.Error(w, fmt.Sprintf("token exchange: %d %v %s", status, err, out), http.StatusBadGateway)
		return
	}
	b.record(ans.AccessToken)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]string{"token": ans.AccessToken})
}

func (b *lsBackend) serveLogin(w http.ResponseWriter, r *http.Request) {
	redirect, state, user := r.PostFormValue("redirect"), r.PostFormValue("state"), r.PostFormValue("user")
	// Only back to the gateway: a login page must not be an open redirect.
	if !strings.HasPrefix(redirect, b.g.URL(gateHost, "/")) || state == "" || user == "" {
		http.Error(w, "bad sign-in request", http.StatusBadRequest)
		return
	}
	body, _ := json.Marshal(map[string]string{"sub": user, "nonce": state})
	status, out, err := b.tokenAPI("application/json", string(body))
	var ans struct{ Token string }
	if err != nil || status != http.StatusCreated || json.Unmarshal(out, &ans) != nil {
		http.Error(w, fmt.Sprintf("token API: %d %v %s", status, err, out), http.StatusBadGateway)
		return
	}
	b.record(ans.Token)
	u, _ := url.Parse(redirect)
	q := u.Query()
	q.Set("embed_token", ans.Token)
	u.RawQuery = q.Encode()
	if r.PostFormValue("go") == "link" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><p>Your sign-in link: <a id="magic" href="%s">open Acme CRM</a></p>`, html.EscapeString(u.String()))
		return
	}
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// lsEnv is the gateway with its IdP, backend, app and a control server for
// the node tests.
type lsEnv struct {
	g       *Gateway
	idp     *lsIdP
	backend *lsBackend
	up      *Upstream
	control *httptest.Server
	recordMarks
}

func lsHash(key string) string {
	s := sha256.Sum256([]byte(key))
	return hex.EncodeToString(s[:])
}

func startLsEnv(t *testing.T) *lsEnv {
	t.Helper()
	e := &lsEnv{idp: newLsIdP(t), up: newUpstream(t, appPage)}
	e.backend = newLsBackend(t, e.idp)
	port := freePort(t)
	root := t.TempDir()
	origin := func(host string) string { return fmt.Sprintf("https://%s:%d", host, port) }
	fill := strings.NewReplacer("{{GATEWAY}}", origin(gateHost), "{{ACME}}", origin(acmeHost), "{{EVIL}}", origin(evilHost))
	if err := copySite(filepath.Join(browserDir(), "sites", "acme"), root, fill); err != nil {
		t.Fatal(err)
	}
	e.g = startGateway(t, lsSite, map[string]any{
		"Upstream": e.up.Listener.Addr().String(), "Backend": e.backend.Listener.Addr().String(), "HostRoot": root,
		"IdP": e.idp.URL, "Audience": lsAudience, "AcmeKeyHash": lsHash(lsAcmeAPIKey), "GlobexKeyHash": lsHash(lsGlobexAPIKey),
	}, GatewayOptions{Env: coreEnv, HTTPSPort: port})
	e.backend.g = e.g
	e.control = httptest.NewServer(e.controlHandler())
	t.Cleanup(e.control.Close)
	return e
}

// controlHandler is the part of the browser suite's control API that
// e2e/browser/lib uses: /reset, /tokens, /upstream, /logs.
func (e *lsEnv) controlHandler() http.Handler {
	mux := http.NewServeMux()
	recordRoutes(mux, &e.recordMarks, e.g, e.up, e.backend)
	return mux
}

// exchange posts a token-exchange form to the token API on host with key.
func (e *lsEnv) exchange(t *testing.T, host, key string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.g.URL(host, "/.embed/token"), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := e.g.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("status %d: undecodable body: %v", resp.StatusCode, err)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d: Cache-Control %q, Content-Type %q", resp.StatusCode, cc, resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, body
}

func lsForm(subjectToken string) url.Values {
	return url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {subjectToken},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
	}
}

// lsPayload decodes a JWT's claims without verifying them.
func lsPayload(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestLoginStateBrowser runs e2e/browser/login_state.test.mjs in Chromium
// against this env: the login round trip with state, an attacker's link in
// a victim's fresh browser, and the token exchange's token exchanged once.
func TestLoginStateBrowser(t *testing.T) {
	node := requireNodeSuite(t)
	exe := requireBrowser(t, "chromium")
	e := startLsEnv(t)
	origin := func(host string) string { return e.g.URL(host, "") }
	runNodeSuite(t, node, e.g, nodeRun{
		Regime: "chromium", Browser: exe, Files: []string{"login_state.test.mjs"}, Artifacts: "chromium-login-state",
		Env: []string{
			"EMBEDGATE_GATEWAY=" + origin(gateHost), "EMBEDGATE_ACME=" + origin(acmeHost), "EMBEDGATE_EVIL=" + origin(evilHost),
			fmt.Sprintf("EMBEDGATE_PORT=%d", e.g.HTTPSPort), "EMBEDGATE_CONTROL=" + e.control.URL,
		},
		Timeout: 4 * time.Minute,
	})
}
