package e2e

// Backend integration against the built binary: the token API, the embed-*
// subcommands, and public-key / JWKS tenants.

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/testsupport"
)

// backendSite is one tenant with the token API, narrowable framing, and
// room for more tenant lines (public_key, jwks) and handler lines.
const backendSite = `
portal.gate.test:{{.HTTPSPort}} {
	tls internal
	embed_session {
		tenant acme {
			key {env.ACME_SECRET} k1
			{{.APIKeys}}
			frame_ancestors https://app.acme.test https://partner.acme.test
			{{.TenantExtra}}
		}
		forward_claim email X-Embed-Email
		forward_claim metadata.plan X-Embed-Plan
		require scope deals:read
	}
	reverse_proxy {{.Upstream}}
}
`

// keygen runs embed-keygen and returns the value and the Caddyfile line.
func keygen(t *testing.T, args ...string) (value, line string) {
	t.Helper()
	out, code := runBinary(t, nil, append([]string{"embed-keygen"}, args...)...)
	if code != 0 {
		t.Fatalf("embed-keygen %v: exit %d\n%s", args, code, out)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("embed-keygen %v printed:\n%s", args, out)
	}
	return lines[0], lines[1]
}

func startBackend(t *testing.T, apiKeyLines, tenantExtra string) (*Gateway, *Upstream, map[string]any) {
	up := newUpstream(t, nil)
	data := map[string]any{"Upstream": up.Listener.Addr().String(), "APIKeys": apiKeyLines, "TenantExtra": tenantExtra}
	g := startGateway(t, backendSite, data, GatewayOptions{Env: coreEnv})
	return g, up, data
}

// callTokenAPI posts body to /.embed/token as a backend would (no Origin).
func callTokenAPI(t *testing.T, g *Gateway, key, body string, hdr map[string]string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", g.URL("portal.gate.test", "/.embed/token"), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := g.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("token API %d: not JSON: %s", resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

// The round trip: a key from embed-keygen in the config, the API mints a
// token, the exchange accepts it, the app receives the identity.
func TestBackendTokenAPIRoundTrip(t *testing.T) {
	key, line := keygen(t, "--api-key")
	if !strings.HasPrefix(key, "egk_") || !strings.HasPrefix(line, "api_key ") || len(line) != len("api_key ")+64 {
		t.Fatalf("keygen: %q / %q", key, line)
	}
	g, up, _ := startBackend(t, line, "")
	code, body := callTokenAPI(t, g, key, `{"sub":"jane@acme.test","email":"jane@acme.test","metadata":{"plan":"gold"},
		"scopes":["deals:read"],"expires_in":30,"allowed_origins":["https://partner.acme.test"]}`, nil)
	if code != http.StatusCreated {
		t.Fatalf("token API: %d %v", code, body)
	}
	if body["token_type"] != "Bearer" || body["expires_in"] != float64(30) || body["tenant"] != "acme" || body["expires_at"] == "" || fmt.Sprint(body["scopes"]) != "[deals:read]" {
		t.Fatalf("response %v", body)
	}
	tok := body["token"].(string)

	resp := exchangeJSON(t, g, "portal.gate.test", tok)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("exchange: %d", resp.StatusCode)
	}
	c := sessionCookie(t, resp)
	r, _ := get(t, g, "portal.gate.test", "/deals", map[string]string{"X-Embed-Plan": "spoofed"}, c)
	if r.StatusCode != 200 {
		t.Fatalf("session: %d", r.StatusCode)
	}
	seen := up.Last()
	for k, want := range map[string]string{"X-Embed-Tenant": "acme", "X-Embed-Subject": "jane@acme.test", "X-Embed-Email": "jane@acme.test", "X-Embed-Plan": "gold"} {
		if got := seen.Header.Values(k); len(got) != 1 || got[0] != want {
			t.Fatalf("upstream %s = %q, want %q", k, got, want)
		}
	}
	// allowed_origins narrowed this session's framing.
	if csp := r.Header.Get("Content-Security-Policy"); csp != "frame-ancestors https://partner.acme.test" {
		t.Fatalf("CSP = %q", csp)
	}
	if resp := exchangeJSON(t, g, "portal.gate.test", tok); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("replayed API token: %d", resp.StatusCode)
	}
	logs := g.WaitLog(t, `"msg":"token_issued"`)
	if strings.Contains(logs, key) || strings.Contains(logs, tok) {
		t.Fatal("the API key or the token appears in the logs")
	}
}

// Two api_key lines both work; after a reload without one, it is refused.
func TestBackendAPIKeyRotation(t *testing.T) {
	oldKey, oldLine := keygen(t, "--api-key")
	newKey, newLine := keygen(t, "--api-key")
	g, _, data := startBackend(t, oldLine+"\n"+newLine, "")
	for _, k := range []string{oldKey, newKey} {
		if code, body := callTokenAPI(t, g, k, `{"sub":"jane"}`, nil); code != http.StatusCreated {
			t.Fatalf("before rotation: %d %v", code, body)
		}
	}
	data["APIKeys"] = newLine
	g.Reload(backendSite, data)
	if code, body := callTokenAPI(t, g, oldKey, `{"sub":"jane"}`, nil); code != http.StatusUnauthorized || body["error_description"] != "api_key_invalid" {
		t.Fatalf("removed key: %d %v", code, body)
	}
	if code, _ := callTokenAPI(t, g, newKey, `{"sub":"jane"}`, nil); code != http.StatusCreated {
		t.Fatalf("kept key: %d", code)
	}
}

// Refused bodies and browser requests, through the real binary.
func TestBackendTokenAPIRefusals(t *testing.T) {
	key, line := keygen(t, "--api-key")
	g, up, _ := startBackend(t, line, "")
	for _, tc := range []struct {
		name, key, body string
		hdr             map[string]string
		status          int
		field, desc     string
	}{
		{"no key", "", `{"sub":"jane"}`, nil, 401, "", "api_key_invalid"},
		{"wrong key", "egk_wrong", `{"sub":"jane"}`, nil, 401, "", "api_key_invalid"},
		{"from a browser (Origin)", key, `{"sub":"jane"}`, map[string]string{"Origin": "https://app.acme.test"}, 403, "", "browser_request"},
		{"from a browser (Sec-Fetch-Site)", key, `{"sub":"jane"}`, map[string]string{"Sec-Fetch-Site": "same-origin"}, 403, "", "browser_request"},
		{"over 16 KiB", key, `{"sub":"jane","metadata":{"p":"` + strings.Repeat("x", 17<<10) + `"}}`, nil, 413, "", "bad_request"},
		{"unknown field", key, `{"sub":"jane","admin":true}`, nil, 400, "admin", "bad_request"},
		{"claims override iss", key, `{"sub":"jane","claims":{"iss":"globex"}}`, nil, 400, "claims.iss", "bad_request"},
		{"claims override aud", key, `{"sub":"jane","claims":{"aud":"globex"}}`, nil, 400, "claims.aud", "bad_request"},
		{"claims override exp", key, `{"sub":"jane","claims":{"exp":9999999999}}`, nil, 400, "claims.exp", "bad_request"},
		{"claims override iat", key, `{"sub":"jane","claims":{"iat":0}}`, nil, 400, "claims.iat", "bad_request"},
		{"claims override nbf", key, `{"sub":"jane","claims":{"nbf":0}}`, nil, 400, "claims.nbf", "bad_request"},
		{"claims override jti", key, `{"sub":"jane","claims":{"jti":"fixed"}}`, nil, 400, "claims.jti", "bad_request"},
		{"metadata override sub", key, `{"sub":"jane","metadata":{"sub":"admin"}}`, nil, 400, "metadata.sub", "bad_request"},
		{"bad expires_in", key, `{"sub":"jane","expires_in":-1}`, nil, 400, "expires_in", "bad_request"},
		{"allowed_origins widening", key, `{"sub":"jane","allowed_origins":["https://evil.test"]}`, nil, 400, "allowed_origins", "bad_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := callTokenAPI(t, g, tc.key, tc.body, tc.hdr)
			if code != tc.status || body["error_description"] != tc.desc || fmt.Sprint(body["field"]) != fmt.Sprint(orNil(tc.field)) || body["token"] != nil {
				t.Fatalf("%d %v; want %d %s field %q", code, body, tc.status, tc.desc, tc.field)
			}
		})
	}
	// expires_in over max_token_age is capped, not refused.
	if code, body := callTokenAPI(t, g, key, `{"sub":"jane","expires_in":86400}`, nil); code != 201 || body["expires_in"] != float64(120) {
		t.Fatalf("expires_in 86400: %d %v", code, body)
	}
	if len(up.Requests()) != 0 {
		t.Fatal("a token API request reached the upstream")
	}
}

func orNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// The subcommands: keygen's secret works as a key, embed-mint's tokens are
// accepted, embed-inspect gives the verdict with exit 0 / 1 / 2.
func TestBackendSubcommands(t *testing.T) {
	secret, keyLine := keygen(t)
	raw, err := base64.RawURLEncoding.Strict().DecodeString(secret)
	if err != nil || len(raw) != 32 || keyLine != "key "+secret {
		t.Fatalf("keygen secret %q (%d bytes, %v), line %q", secret, len(raw), err, keyLine)
	}
	g, up, _ := startBackend(t, "", "")
	env := append([]string{"ACME_KEY_FROM_KEYGEN=" + secret}, coreEnv...)

	// embed-mint with the config's secret: the gateway accepts the token.
	out, code := runBinary(t, env, "embed-mint", "--tenant", "acme", "--sub", "jane@acme.test", "--key-env", "ACME_SECRET", "--kid", "k1",
		"--ttl", "90s", "--claim", "scope=deals:read", "--claim", `metadata={"plan":"silver"}`)
	if code != 0 {
		t.Fatalf("embed-mint: exit %d\n%s", code, out)
	}
	tok := strings.TrimSpace(out)
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("embed-mint printed %q", out)
	}
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, claims); err != nil || claims["exp"].(float64)-claims["iat"].(float64) != 90 || claims["iss"] != "acme" || claims["aud"] != "acme" {
		t.Fatalf("minted claims %v (%v)", claims, err)
	}
	// embed-inspect says valid, with the decoded header and claims.
	cfg := g.Config
	out, code = runBinary(t, coreEnv, "embed-inspect", "--config", cfg, "--adapter", "caddyfile", tok)
	if code != 0 {
		t.Fatalf("inspect valid token: exit %d\n%s", code, out)
	}
	for _, want := range []string{`"alg": "HS256"`, `"kid": "k1"`, `"sub": "jane@acme.test"`, `"plan": "silver"`, "\nvalid for tenant acme\n"} {
		mustContain(t, out, want)
	}
	// Inspect does not consume the jti: the same token still exchanges.
	resp := exchangeJSON(t, g, "portal.gate.test", tok)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("exchange of a minted token: %d", resp.StatusCode)
	}
	if r, _ := get(t, g, "portal.gate.test", "/", nil, sessionCookie(t, resp)); r.StatusCode != 200 || up.Last().Header.Get("X-Embed-Plan") != "silver" {
		t.Fatalf("session of a minted token: %d", r.StatusCode)
	}

	// Rejections: exit 1, the reason and a one-line fix.
	past := time.Now().Add(-10 * time.Minute)
	noJTI := testsupport.Claims("acme", "jane", time.Now())
	delete(noJTI, "jti")
	for _, tc := range []struct {
		name, tok, want string
	}{
		{"wrong audience", mint(t, "acme", acmeSecret, "jane", map[string]any{"aud": "acme-prod"}), `wrong_audience: aud is "acme-prod", this tenant expects "acme"`},
		{"unknown tenant", mint(t, "acme-prod", acmeSecret, "jane", nil), `unknown_tenant: iss is "acme-prod", this config has tenants "acme"`},
		{"bad signature", mint(t, "acme", globexSecret, "jane", nil), `bad_signature: the signature does not verify under any of tenant "acme"'s keys`},
		{"expired", mint(t, "acme", acmeSecret, "jane", map[string]any{"iat": past.Unix(), "exp": past.Add(time.Minute).Unix()}), "expired: exp was 9m"},
		{"lifetime too long", mint(t, "acme", acmeSecret, "jane", map[string]any{"exp": time.Now().Add(time.Hour).Unix()}), "lifetime_too_long: exp - iat is 1h0m0s, limit 2m0s; set exp = iat + 120 or less"},
		{"unknown kid", testsupport.Mint(t, testsupport.HS256(acmeSecret, "k9"), testsupport.Claims("acme", "jane", time.Now())), `unknown_key: kid is "k9", tenant "acme" has kids "k1"`},
		{"missing jti", testsupport.Mint(t, testsupport.HS256(acmeSecret, ""), noJTI), "missing_claim: jti is required; set jti to a new unique id"},
		{"not a token", "hello", "malformed: token has 1 segments, want 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runBinary(t, coreEnv, "embed-inspect", "--config", cfg, tc.tok)
			if code != 1 {
				t.Fatalf("exit %d, want 1\n%s", code, out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, tc.want) {
				t.Fatalf("verdict %q, want prefix %q\n%s", last, tc.want, out)
			}
		})
	}

	// Usage errors: exit 2, with the usage line.
	for _, args := range [][]string{
		{"embed-inspect", "--config", cfg},
		{"embed-inspect", tok},
		{"embed-inspect", "--config", cfg, tok, tok},
		{"embed-inspect", "--bogus", "--config", cfg, tok},
		{"embed-mint", "--sub", "jane", "--key-env", "ACME_SECRET"},
		{"embed-mint", "--tenant", "acme", "--sub", "jane"},
		{"embed-mint", "--tenant", "acme", "--sub", "jane", "--key-env", "ACME_SECRET", "--key-file", "/x"},
		{"embed-mint", "--tenant", "acme", "--sub", "jane", "--key-env", "ACME_SECRET", "--claim", "jti=fixed"},
		{"embed-mint", "--tenant", "acme", "--sub", "jane", "--key-env", "ACME_SECRET", "--ttl", "forever"},
		{"embed-keygen", "--api-key", "extra"},
	} {
		out, code := runBinary(t, coreEnv, args...)
		if code != 2 || !strings.Contains(out, "usage:") {
			t.Fatalf("%v: exit %d, want 2 with usage\n%s", args, code, out)
		}
	}
	// A config that cannot be loaded is exit 2 too: no verdict was reached.
	if out, code := runBinary(t, coreEnv, "embed-inspect", "--config", filepath.Join(t.TempDir(), "missing"), tok); code != 2 || !strings.Contains(out, "reading config") {
		t.Fatalf("missing config: exit %d\n%s", code, out)
	}
	if out, code := runBinary(t, nil, "embed-inspect", "--config", cfg, tok); code != 2 || !strings.Contains(out, `tenant "acme": key #1: resolving placeholder`) || strings.Contains(out, acmeSecret) {
		t.Fatalf("config with an unset secret: exit %d\n%s", code, out)
	}
	// embed-mint with an unusable key: exit 1, and the key is not echoed.
	out, code = runBinary(t, []string{"SHORT_KEY=too-short-secret"}, "embed-mint", "--tenant", "acme", "--sub", "jane", "--key-env", "SHORT_KEY")
	if code != 1 || !strings.Contains(out, "secret is 16 bytes, at least 32 required") || strings.Contains(out, "too-short-secret") {
		t.Fatalf("short key: exit %d\n%s", code, out)
	}
	// A keygen secret works as a tenant key: mint with it, inspect against a
	// config that lists it.
	dir := t.TempDir()
	kcfg := filepath.Join(dir, "Caddyfile")
	_ = os.WriteFile(kcfg, []byte("localhost {\n\tembed_session {\n\t\ttenant acme {\n\t\t\tkey {env.ACME_KEY_FROM_KEYGEN}\n\t\t}\n\t}\n\trespond ok\n}\n"), 0o600)
	out, code = runBinary(t, env, "embed-mint", "--tenant", "acme", "--sub", "jane", "--key-env", "ACME_KEY_FROM_KEYGEN")
	if code != 0 {
		t.Fatalf("mint with keygen secret: %d %s", code, out)
	}
	if out, code := runBinary(t, env, "embed-inspect", "--config", kcfg, strings.TrimSpace(out)); code != 0 || !strings.HasSuffix(strings.TrimSpace(out), "valid for tenant acme") {
		t.Fatalf("inspect keygen-secret token: %d\n%s", code, out)
	}
	// Tenants from a tenants_file are the gateway's tenants too: inspect
	// loads the file (path placeholders resolved) beside the inline ones.
	tfile := filepath.Join(dir, "tenants.json")
	writeTenantsFile(t, tfile, `{"tenants":[`+tenantJSON("globex", globexSecret)+`]}`)
	fcfg := filepath.Join(dir, "Caddyfile.tenants")
	_ = os.WriteFile(fcfg, []byte("localhost {\n\tembed_session {\n\t\ttenant acme {\n\t\t\tkey {env.ACME_KEY_FROM_KEYGEN}\n\t\t}\n\t\ttenants_file {env.EG_TENANTS_FILE}\n\t}\n\trespond ok\n}\n"), 0o600)
	fenv := append([]string{"EG_TENANTS_FILE=" + tfile}, env...)
	if out, code := runBinary(t, fenv, "embed-inspect", "--config", fcfg, "--adapter", "caddyfile", mint(t, "globex", globexSecret, "ann", nil)); code != 0 || !strings.HasSuffix(strings.TrimSpace(out), "valid for tenant globex") {
		t.Fatalf("inspect tenants_file token: %d\n%s", code, out)
	}
	if out, code := runBinary(t, fenv, "embed-inspect", "--config", fcfg, "--adapter", "caddyfile", mint(t, "initech", globexSecret, "ann", nil)); code != 1 || !strings.Contains(out, `this config has tenants "acme", "globex"`) {
		t.Fatalf("inspect unknown tenant with tenants_file: %d\n%s", code, out)
	}
}

// The Go snippet of docs/minting.md (examples/mint/mint.go), beside the
// Node and Python ones that example_test.go runs: its token exchanges.
func TestBackendGoMintSnippet(t *testing.T) {
	g, up, _ := startBackend(t, "", "")
	cmd := exec.Command("go", "run", "./examples/mint", "acme", "jane@acme.test")
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "EMBEDGATE_SECRET="+acmeSecret)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go run ./examples/mint: %v", err)
	}
	resp := exchangeJSON(t, g, "portal.gate.test", strings.TrimSpace(string(out)))
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("exchange: %d", resp.StatusCode)
	}
	// require scope deals:read: the snippet's token has no scope.
	if r, _ := get(t, g, "portal.gate.test", "/", nil, sessionCookie(t, resp)); r.StatusCode != http.StatusForbidden {
		t.Fatalf("session without the required scope: %d", r.StatusCode)
	}
	if len(up.Requests()) != 0 {
		t.Fatal("reached the upstream without the required scope")
	}
}

// A migrating tenant lists key, public_key and jwks at once: tokens signed
// by any of them exchange; embed-mint signs with a PEM private key;
// embed-inspect fetches the JWKS as the gateway does.
func TestBackendPublicKeyAndJWKSTenant(t *testing.T) {
	dir := t.TempDir()
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	pubDER, _ := x509.MarshalPKIXPublicKey(edPub)
	pubPEM := filepath.Join(dir, "ed.pub.pem")
	_ = os.WriteFile(pubPEM, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600)
	privDER, _ := x509.MarshalPKCS8PrivateKey(edPriv)
	privPEM := filepath.Join(dir, "ed.pem")
	_ = os.WriteFile(privPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600)

	idpKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	idpPrivDER, _ := x509.MarshalPKCS8PrivateKey(idpKey)
	idpPrivPEM := filepath.Join(dir, "idp.pem")
	_ = os.WriteFile(idpPrivPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: idpPrivDER}), 0o600)
	point, _ := idpKey.PublicKey.Bytes()
	e := base64.RawURLEncoding.EncodeToString
	jwksDoc, _ := json.Marshal(map[string]any{"keys": []any{
		map[string]any{"kty": "EC", "crv": "P-256", "kid": "idp-1", "use": "sig", "x": e(point[1:33]), "y": e(point[33:])},
		map[string]any{"kty": "oct", "kid": "sym", "k": e([]byte("an-hs256-secret-that-must-be-refused"))},
	}})
	var fetches atomic.Int32
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = w.Write(jwksDoc)
	}))
	t.Cleanup(idp.Close)

	extra := fmt.Sprintf("public_key %s ed1\n\t\t\tjwks %s/.well-known/jwks.json", pubPEM, idp.URL)
	g, _, _ := startBackend(t, "", extra)
	if fetches.Load() < 1 {
		t.Fatal("the JWKS was not fetched at start")
	}
	mintWith := func(keyFile, kid string) string {
		args := []string{"embed-mint", "--tenant", "acme", "--sub", "jane", "--claim", "scope=deals:read", "--kid", kid}
		if keyFile == "" {
			args = append(args, "--key-env", "ACME_SECRET")
		} else {
			args = append(args, "--key-file", keyFile)
		}
		out, code := runBinary(t, coreEnv, args...)
		if code != 0 {
			t.Fatalf("mint %s: %d %s", kid, code, out)
		}
		return strings.TrimSpace(out)
	}
	for _, tc := range []struct{ keyFile, kid, alg string }{{"", "k1", "HS256"}, {privPEM, "ed1", "EdDSA"}, {idpPrivPEM, "idp-1", "ES256"}} {
		tok := mintWith(tc.keyFile, tc.kid)
		hdr := jwt.MapClaims{}
		if p, _, err := jwt.NewParser().ParseUnverified(tok, hdr); err != nil || p.Header["alg"] != tc.alg {
			t.Fatalf("%s: minted alg %v (%v)", tc.kid, p.Header["alg"], err)
		}
		if out, code := runBinary(t, coreEnv, "embed-inspect", "--config", g.Config, tok); code != 0 {
			t.Fatalf("inspect %s: %d\n%s", tc.kid, code, out)
		}
		if resp := exchangeJSON(t, g, "portal.gate.test", tok); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("exchange %s (%s): %d", tc.kid, tc.alg, resp.StatusCode)
		}
	}
	// The oct key of the set was refused, and said so in the log; an HS256
	// token "signed" with it is unknown to the gateway.
	g.WaitLog(t, "symmetric key (kty oct) refused")
	forged := testsupport.Mint(t, testsupport.HS256("an-hs256-secret-that-must-be-refused", "sym"), testsupport.Claims("acme", "jane", time.Now()))
	if resp := exchangeJSON(t, g, "portal.gate.test", forged); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("token under a refused oct key: %d", resp.StatusCode)
	}
}
