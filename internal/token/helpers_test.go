package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/tenant"
)

// now is the injected clock of every test: nothing here sleeps or reads the
// real time.
var now = time.Unix(1_700_000_000, 0).UTC()

func clock() time.Time { return now }

// testVerifier is the verifier most tests use: the caller's defaults.
func testVerifier() *Verifier {
	return &Verifier{Leeway: 30 * time.Second, Now: clock}
}

// testKeys is key material generated once per test binary (RSA is slow).
type testKeys struct {
	secretA, secretB, secretG, secretG2, secretG3, secretI []byte
	rsa                                                    *rsa.PrivateKey
	ec                                                     *ecdsa.PrivateKey
	ed                                                     ed25519.PrivateKey
	rsaPEM, ecPEM, edPEM                                   []byte
}

var keys = sync.OnceValue(func() *testKeys {
	k := &testKeys{
		secretA: secret(), secretB: secret(), secretG: secret(),
		secretG2: secret(), secretG3: secret(), secretI: secret(),
	}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	k.rsaPEM = pemOf(&k.rsa.PublicKey)
	k.ecPEM = pemOf(&k.ec.PublicKey)
	k.edPEM = pemOf(k.ed.Public())
	return k
})

// secret is a random 32-byte HS256 secret, hex-encoded so that it is also
// printable (the error-detail tests search for it).
func secret() []byte {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return []byte(hex.EncodeToString(b))
}

func pemOf(pub any) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// Test tenants:
//
//	acme:    HS a1, HS a2, RS256 r1, ES256 e1, EdDSA d1
//	globex:  HS (no kid), HS (no kid), HS g1
//	rsaonly: RS256 (no kid), the same RSA key as acme
//	initech: HS i1, RS256 ir (the same RSA key)
func registry(t testing.TB) *tenant.Registry {
	t.Helper()
	k := keys()
	reg, err := tenant.NewRegistry(configs(k))
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func configs(k *testKeys) []tenant.Config {
	return []tenant.Config{
		{
			ID: "acme",
			Keys: []tenant.SecretConfig{
				{Secret: string(k.secretA), KID: "a1"},
				{Secret: string(k.secretB), KID: "a2"},
			},
			PublicKeys: []tenant.PublicKeyConfig{
				{PEM: string(k.rsaPEM), KID: "r1"},
				{PEM: string(k.ecPEM), KID: "e1"},
				{PEM: string(k.edPEM), KID: "d1"},
			},
		},
		{
			ID: "globex",
			Keys: []tenant.SecretConfig{
				{Secret: string(k.secretG)},
				{Secret: string(k.secretG2)},
				{Secret: string(k.secretG3), KID: "g1"},
			},
		},
		{ID: "rsaonly", PublicKeys: []tenant.PublicKeyConfig{{PEM: string(k.rsaPEM)}}},
		{
			ID:         "initech",
			Keys:       []tenant.SecretConfig{{Secret: string(k.secretI), KID: "i1"}},
			PublicKeys: []tenant.PublicKeyConfig{{PEM: string(k.rsaPEM), KID: "ir"}},
		},
	}
}

func mustTenant(t testing.TB, reg *tenant.Registry, id string) *tenant.Tenant {
	t.Helper()
	tn, ok := reg.ByID(id)
	if !ok {
		t.Fatalf("no tenant %q", id)
	}
	return tn
}

// validClaims is a token that every rule accepts, for tenant iss.
func validClaims(iss string) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": iss,
		"aud": iss,
		"sub": "jane@acme.example",
		"jti": "jti-7c1e5b",
		"iat": now.Unix(),
		"exp": now.Add(60 * time.Second).Unix(),
	}
}

// drop, as a header value, removes that header.
const drop = "\x00drop"

// sign signs claims with golang-jwt, then applies header overrides (a
// member given as drop or nil is removed).
func sign(t testing.TB, m jwt.SigningMethod, key any, hdr map[string]any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	for name, v := range hdr {
		if v == drop || v == nil {
			delete(tok.Header, name)
		} else {
			tok.Header[name] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signAlg signs with the test key for alg, naming kid when non-empty,
// through Sign: the one signing implementation (sign above is for headers
// Sign would never write).
func signAlg(t testing.TB, alg, kid string, c jwt.MapClaims) string {
	t.Helper()
	k := keys()
	key := map[string]any{tenant.HS256: k.secretA, tenant.RS256: k.rsa, tenant.ES256: k.ec, tenant.EdDSA: k.ed}[alg]
	if key == nil {
		t.Fatalf("no test key for %s", alg)
	}
	s, err := Sign(Signer{Alg: alg, KID: kid, Key: key}, c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func enc(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// rawHS builds a token from literal header and payload JSON and MACs it with
// secret, so that a rejection can only come from the bytes, not the MAC.
func rawHS(header, payload string, secret []byte) string {
	in := enc(header) + "." + enc(payload)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// wantReason fails unless err is a *reason.Error with reason want ("" means
// no error).
func wantReason(t testing.TB, err error, want reason.Reason) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("want success, got %v", err)
		}
		return
	}
	var re *reason.Error
	if !errors.As(err, &re) {
		t.Fatalf("want %s, got %T %v", want, err, err)
	}
	if re.Reason != want {
		t.Fatalf("want %s, got %v", want, err)
	}
}

// countingTenants records every lookup, to prove which were (not) made.
type countingTenants struct {
	Tenants
	mu    sync.Mutex
	calls []string
}

func (c *countingTenants) ByID(id string) (*tenant.Tenant, bool) {
	c.mu.Lock()
	c.calls = append(c.calls, id)
	c.mu.Unlock()
	return c.Tenants.ByID(id)
}

// tenantMap is a Tenants built by hand, for key sets tenant.New would refuse.
type tenantMap map[string]*tenant.Tenant

func (m tenantMap) ByID(id string) (*tenant.Tenant, bool) { t, ok := m[id]; return t, ok }

// containsAny reports whether s contains any of subs (ignoring empty ones).
func containsAny(s string, subs ...string) (string, bool) {
	for _, sub := range subs {
		if sub != "" && strings.Contains(s, sub) {
			return sub, true
		}
	}
	return "", false
}
