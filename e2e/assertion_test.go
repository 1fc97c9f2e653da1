package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/testsupport"
)

// assertionSite serves the gateway on portal.gate.test and on 127.0.0.1
// (the address the app's verifiers fetch the JWKS from: a certificate for
// an IP needs no name resolution in Node or Python).
const assertionSite = `
portal.gate.test:{{.HTTPSPort}}, 127.0.0.1:{{.HTTPSPort}} {
	tls internal
	embed_session {
		tenant acme {
			key {env.ACME_SECRET}
			frame_ancestors https://app.acme.test
		}
		forward_claim org.id X-Embed-Org
		{{.Assertion}}
	}
	reverse_proxy {{.Upstream}}
}
`

// verifier runs one examples/verify snippet: argv before
// <jwks-url> <issuer> <audience> <token>, and its environment.
type verifier struct {
	name string
	argv []string
	env  []string
}

var (
	goVerifierOnce sync.Once
	goVerifierPath string
	goVerifierErr  error
)

// verifiers are the three snippets the suite runs. Node and Python may be
// missing only outside CI (scripts/test installs them, with python3-jwt).
func verifiers(t *testing.T, caFile string) []verifier {
	t.Helper()
	goVerifierOnce.Do(func() {
		dir, err := os.MkdirTemp("", "embedgate-verify-")
		if err != nil {
			goVerifierErr = err
			return
		}
		goVerifierPath = filepath.Join(dir, "verify")
		cmd := exec.Command("go", "build", "-o", goVerifierPath, "./examples/verify")
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			goVerifierErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if goVerifierErr != nil {
		t.Fatalf("building examples/verify: %v", goVerifierErr)
	}
	noProxy := []string{"NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost", "HTTPS_PROXY=", "https_proxy="}
	vs := []verifier{{name: "go", argv: []string{goVerifierPath}, env: append([]string{"SSL_CERT_FILE=" + caFile}, noProxy...)}}
	if _, err := exec.LookPath("node"); err == nil {
		vs = append(vs, verifier{name: "node", argv: []string{"node", filepath.Join(repoRoot(), "examples/verify/verify.mjs")},
			env: append([]string{"NODE_EXTRA_CA_CERTS=" + caFile}, noProxy...)})
	} else if os.Getenv("CI") == "true" {
		t.Fatal("node is not installed")
	}
	// Debian's python3-jwt lives in the system python; a python3 earlier
	// on PATH (pyenv) may not see it.
	py := ""
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", "import jwt, cryptography").Run() == nil {
			py = p
			break
		}
	}
	if py != "" {
		vs = append(vs, verifier{name: "python", argv: []string{py, filepath.Join(repoRoot(), "examples/verify/verify.py")},
			env: append([]string{"SSL_CERT_FILE=" + caFile}, noProxy...)})
	} else if os.Getenv("CI") == "true" {
		t.Fatal("python3 with PyJWT (python3-jwt, python3-cryptography) is not installed")
	}
	return vs
}

// verifyingApp is the app behind the gateway: GET /verify/<name> verifies
// the request's X-Embed-Assertion with that snippet and answers 200 with
// the claims, or 401 with the snippet's reason.
func verifyingApp(t *testing.T, vs func() []verifier, jwks, issuer, audience func() string) *Upstream {
	return newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get("X-Embed-Assertion")
		name := strings.TrimPrefix(r.URL.Path, "/verify/")
		for _, v := range vs() {
			if v.name != name {
				continue
			}
			if tok == "" {
				http.Error(w, "no assertion", http.StatusUnauthorized)
				return
			}
			cmd := exec.Command(v.argv[0], append(v.argv[1:], jwks(), issuer(), audience(), tok)...)
			cmd.Env = append(os.Environ(), v.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				http.Error(w, fmt.Sprintf("%v: %s", err, stderr.String()), http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(stdout.Bytes())
			return
		}
		http.NotFound(w, r)
	})
}

func writeECKey(t *testing.T, path string) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

// The app behind the gateway verifies X-Embed-Assertion against
// /.embed/jwks.json in Go (golang-jwt), Node (built-in crypto) and Python
// (PyJWT): the gateway's own assertion passes, with the session's identity
// and the forwarded claim nested; reached directly (not through the
// gateway), each refuses a forged (another key under the published kid),
// an expired and a wrong-audience assertion, even though the last two are
// signed with the real key.
func TestBinaryAssertionVerifiedInThreeLanguages(t *testing.T) {
	keyDir := t.TempDir()
	realKey := writeECKey(t, filepath.Join(keyDir, "assertion.pem"))
	var (
		g  *Gateway
		vs []verifier
		mu sync.Mutex
	)
	issuer := func() string { return fmt.Sprintf("https://portal.gate.test:%d", g.HTTPSPort) }
	jwksURL := func() string { return fmt.Sprintf("https://127.0.0.1:%d/.embed/jwks.json", g.HTTPSPort) }
	up := verifyingApp(t, func() []verifier { mu.Lock(); defer mu.Unlock(); return vs }, jwksURL, issuer, issuer)
	g = startGateway(t, assertionSite, map[string]any{
		"Upstream":  up.Listener.Addr().String(),
		"Assertion": "assertion {\n\t\t\tkey " + filepath.Join(keyDir, "assertion.pem") + " kid-2026\n\t\t}",
	}, GatewayOptions{Env: coreEnv})
	mu.Lock()
	vs = verifiers(t, g.rootCertPath())
	mu.Unlock()

	// The key set: one key, public members only, cacheable, any origin.
	resp, body := get(t, g, "127.0.0.1", "/.embed/jwks.json", nil, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		resp.Header.Get("Cache-Control") != "public, max-age=300" || resp.Header.Get("Content-Security-Policy") != "frame-ancestors 'none'" {
		t.Fatalf("jwks: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if strings.Contains(body, `"d"`) || !strings.Contains(body, `"kid":"kid-2026"`) {
		t.Fatalf("jwks body %s", body)
	}

	tok := mint(t, "acme", acmeSecret, "jane@acme.com", map[string]any{"org": map[string]any{"id": "org-7", "plan": "gold"}})
	c := sessionCookie(t, exchangeJSON(t, g, "portal.gate.test", tok))

	attacker, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	sign := func(key *ecdsa.PrivateKey, edit func(jwt.MapClaims)) string {
		claims := jwt.MapClaims{"iss": issuer(), "aud": issuer(), "sub": "admin@acme.com", "tenant": "acme",
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
		edit(claims)
		return testsupport.Mint(t, testsupport.SignerFor(t, key, "kid-2026"), claims)
	}
	bad := map[string]string{
		"forged": sign(attacker, func(jwt.MapClaims) {}),
		"expired": sign(realKey, func(c jwt.MapClaims) {
			c["iat"], c["exp"] = now.Add(-10*time.Minute).Unix(), now.Add(-5*time.Minute).Unix()
		}),
		"wrong audience": sign(realKey, func(c jwt.MapClaims) { c["aud"] = "https://other-app.test" }),
	}
	// The control: the same signing, with nothing wrong, passes.
	good := sign(realKey, func(jwt.MapClaims) {})

	for _, v := range vs {
		t.Run(v.name, func(t *testing.T) { checkVerifier(t, g, up, c, v.name, issuer(), good, bad) })
	}
}

// checkVerifier asserts that the app, verifying with snippet name, accepts
// the gateway's assertion (a client's forged copy is stripped on the way)
// and the control token, and, reached directly, refuses every bad one.
func checkVerifier(t *testing.T, g *Gateway, up *Upstream, c *http.Cookie, name, issuer, good string, bad map[string]string) {
	r, body := get(t, g, "portal.gate.test", "/verify/"+name, map[string]string{"X-Embed-Assertion": bad["forged"]}, c)
	if r.StatusCode != 200 {
		t.Fatalf("through the gateway: %d %s", r.StatusCode, body)
	}
	var claims map[string]any
	if err := json.Unmarshal([]byte(body), &claims); err != nil {
		t.Fatalf("claims %q: %v", body, err)
	}
	if claims["sub"] != "jane@acme.com" || claims["tenant"] != "acme" || claims["iss"] != issuer || claims["aud"] != issuer {
		t.Fatalf("claims %v", claims)
	}
	if org, _ := claims["org"].(map[string]any); len(org) != 1 || org["id"] != "org-7" {
		t.Fatalf("org = %v, want only the forwarded id", claims["org"])
	}
	direct := func(tok string) (int, string) {
		req, _ := http.NewRequest("GET", up.URL+"/verify/"+name, nil)
		if tok != "" {
			req.Header.Set("X-Embed-Assertion", tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := direct(good); code != 200 {
		t.Fatalf("control token refused: %d %s", code, body)
	}
	for what, tok := range bad {
		if code, body := direct(tok); code != http.StatusUnauthorized {
			t.Errorf("%s assertion accepted: %d %s", what, code, body)
		}
	}
	if code, _ := direct(""); code != http.StatusUnauthorized {
		t.Error("no assertion accepted")
	}
}

// With no key configured, one P-256 key is generated at
// embedgate/assertion_key on first use (`embedgate validate` writes
// nothing), and two instances on one storage publish the same single key:
// an assertion from one verifies against the other's JWKS.
func TestBinaryAssertionGeneratedKeySharedByTwoInstances(t *testing.T) {
	up := newUpstream(t, nil)
	dir := t.TempDir()
	data := map[string]any{"Upstream": up.Listener.Addr().String(), "Assertion": "assertion"}

	// validate first, on the storage both instances will use.
	cf := filepath.Join(t.TempDir(), "Caddyfile")
	var cfg bytes.Buffer
	cfg.WriteString(strings.NewReplacer("{{.AdminPort}}", "0", "{{.Dir}}", dir, "{{.HTTPPort}}", "0", "{{.HTTPSPort}}", "8443").Replace(globalOptions))
	cfg.WriteString(strings.NewReplacer("{{.HTTPSPort}}", "8443", "{{.Upstream}}", up.Listener.Addr().String(), "{{.Assertion}}", "assertion").Replace(assertionSite))
	if err := os.WriteFile(cf, cfg.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := runBinary(t, append(coreEnv, "HOME="+dir), "validate", "--config", cf, "--adapter", "caddyfile"); code != 0 {
		t.Fatalf("validate: %s", out)
	}
	keyFile := filepath.Join(dir, "embedgate", "assertion_key")
	if _, err := os.Stat(keyFile); !os.IsNotExist(err) {
		t.Fatalf("validate wrote the assertion key: %v", err)
	}

	a := startGateway(t, assertionSite, data, GatewayOptions{Env: coreEnv, Dir: dir})
	b := startGateway(t, assertionSite, data, GatewayOptions{Env: coreEnv, Dir: dir})
	if _, err := os.Stat(keyFile); !os.IsNotExist(err) {
		t.Fatalf("starting wrote the assertion key before any use: %v", err)
	}
	var wg sync.WaitGroup
	bodies := make([]string, 2)
	for i, g := range []*Gateway{a, b} {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", g.URL("127.0.0.1", "/.embed/jwks.json"), nil)
			resp, err := g.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			bodies[i] = string(body)
		})
	}
	wg.Wait()
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal([]byte(bodies[0]), &set); err != nil || len(set.Keys) != 1 || set.Keys[0]["alg"] != "ES256" {
		t.Fatalf("JWKS %s: %v, want one ES256 key", bodies[0], err)
	}
	if bodies[0] != bodies[1] {
		t.Fatalf("two instances on one storage publish different keys:\n%s\n%s", bodies[0], bodies[1])
	}
	if _, err := os.Stat(keyFile); err != nil {
		t.Fatalf("the generated key is not in storage: %v", err)
	}

	// A session on b: its assertion carries the kid a publishes.
	c := sessionCookie(t, exchangeJSON(t, b, "portal.gate.test", mint(t, "acme", acmeSecret, "jane@acme.com", nil)))
	if r, body := get(t, b, "portal.gate.test", "/x", nil, c); r.StatusCode != 200 {
		t.Fatalf("b: %d %s", r.StatusCode, body)
	}
	tok := up.Last().Header.Get("X-Embed-Assertion")
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatalf("b's assertion %q: %v", tok, err)
	}
	if parsed.Header["kid"] != set.Keys[0]["kid"] {
		t.Fatalf("b's assertion has kid %v, want %s (the key a publishes)", parsed.Header["kid"], set.Keys[0]["kid"])
	}
}
