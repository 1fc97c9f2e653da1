package assertion_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"slices"
	"strings"
	"testing"

	"github.com/embedgate/embedgate/internal/assertion"
	"github.com/embedgate/embedgate/internal/tenant"
)

func newEC(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ring(t *testing.T, keys ...assertion.Key) *assertion.Ring {
	t.Helper()
	r, err := assertion.NewRing(keys)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type publishedKey map[string]string

func published(t *testing.T, r *assertion.Ring) []publishedKey {
	t.Helper()
	var set struct {
		Keys []publishedKey `json:"keys"`
	}
	if err := json.Unmarshal(r.JWKS(), &set); err != nil {
		t.Fatalf("JWKS %s: %v", r.JWKS(), err)
	}
	return set.Keys
}

func kids(keys []publishedKey) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k["kid"])
	}
	return out
}

// The kid of a key without one is its RFC 7638 thumbprint: the Ed25519
// example of RFC 8037 §A.3 gives exactly the published value.
func TestThumbprintRFC8037Vector(t *testing.T) {
	x, err := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if err != nil {
		t.Fatal(err)
	}
	if got := assertion.Thumbprint(ed25519.PublicKey(x)); got != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Fatalf("thumbprint = %s", got)
	}
}

// The JWKS publishes every key with only public members (kty, crv, x, y
// for EC, kid, alg, use), kids defaulting to the thumbprint.
func TestJWKSPublicMembersOnly(t *testing.T) {
	ec := newEC(t)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	r := ring(t, assertion.Key{Signer: ec}, assertion.Key{Signer: ed, KID: "ed-1"})
	keys := published(t, r)
	if len(keys) != 2 {
		t.Fatalf("JWKS %s: want 2 keys", r.JWKS())
	}
	wantEC := map[string]string{"kty": "EC", "crv": "P-256", "kid": assertion.Thumbprint(&ec.PublicKey), "alg": "ES256", "use": "sig"}
	for k, v := range wantEC {
		if keys[0][k] != v {
			t.Errorf("EC key %s = %q, want %q", k, keys[0][k], v)
		}
	}
	if len(keys[0]["x"]) != 43 || len(keys[0]["y"]) != 43 {
		t.Errorf("EC x/y not 32-byte base64url: %v", keys[0])
	}
	wantEd := map[string]string{"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "alg": "EdDSA", "use": "sig"}
	for k, v := range wantEd {
		if keys[1][k] != v {
			t.Errorf("Ed25519 key %s = %q, want %q", k, keys[1][k], v)
		}
	}
	if _, ok := keys[1]["y"]; ok {
		t.Errorf("OKP key has y: %v", keys[1])
	}
	allowed := []string{"kty", "crv", "x", "y", "kid", "alg", "use"}
	for _, k := range keys {
		for name := range k {
			if !slices.Contains(allowed, name) {
				t.Errorf("JWKS member %q published (private members are never)", name)
			}
		}
	}
}

// Rotation: a second key added in front is published beside the old one
// and signs; removing the old one removes it from the JWKS.
func TestRingRotation(t *testing.T) {
	oldKey, newKey := assertion.Key{Signer: newEC(t), KID: "old"}, assertion.Key{Signer: newEC(t), KID: "new"}
	before := ring(t, oldKey)
	during := ring(t, newKey, oldKey)
	after := ring(t, newKey)
	if got := kids(published(t, before)); !slices.Equal(got, []string{"old"}) {
		t.Fatalf("before: %v", got)
	}
	if got := kids(published(t, during)); !slices.Equal(got, []string{"new", "old"}) {
		t.Fatalf("during: published %v, want both", got)
	}
	if got := kids(published(t, after)); !slices.Equal(got, []string{"new"}) {
		t.Fatalf("after: published %v, want the old key gone", got)
	}
	// Which key signs: the first (checked on real tokens in TestIssuer*).
	for _, c := range []struct {
		r    *assertion.Ring
		want string
	}{{before, "old"}, {during, "new"}, {after, "new"}} {
		tok := issue(t, c.r)
		if kid := headerOf(t, tok)["kid"]; kid != c.want {
			t.Errorf("signed with kid %v, want %s", kid, c.want)
		}
	}
}

func TestRingRefusals(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ec := newEC(t)
	for name, keys := range map[string][]assertion.Key{
		"none":      nil,
		"rsa":       {{Signer: rsaKey}},
		"p384":      {{Signer: p384}},
		"same kid":  {{Signer: ec, KID: "a"}, {Signer: newEC(t), KID: "a"}},
		"same key":  {{Signer: ec}, {Signer: ec}},
		"wrong alg": {{Signer: ec, Alg: tenant.EdDSA}},
	} {
		if _, err := assertion.NewRing(keys); err == nil {
			t.Errorf("%s: NewRing accepted it", name)
		}
	}
}

// Key files: PKCS#8 (EC and Ed25519) and SEC1 are read; RSA, P-384 and
// public keys are refused with a reason.
func TestParseKeyPEM(t *testing.T) {
	ec := newEC(t)
	p8, _ := x509.MarshalPKCS8PrivateKey(ec)
	sec1, _ := x509.MarshalECPrivateKey(ec)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	edp8, _ := x509.MarshalPKCS8PrivateKey(ed)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsap8, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	pub, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384p8, _ := x509.MarshalPKCS8PrivateKey(p384)
	enc := func(typ string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}) }

	for _, c := range []struct {
		name, typ string
		der       []byte
		alg       string // "" = refused
	}{
		{"pkcs8 ec", "PRIVATE KEY", p8, tenant.ES256},
		{"sec1", "EC PRIVATE KEY", sec1, tenant.ES256},
		{"pkcs8 ed25519", "PRIVATE KEY", edp8, tenant.EdDSA},
		{"rsa", "PRIVATE KEY", rsap8, ""},
		{"p384", "PRIVATE KEY", p384p8, ""},
		{"public", "PUBLIC KEY", pub, ""},
	} {
		k, err := assertion.ParseKeyPEM(enc(c.typ, c.der))
		switch {
		case c.alg == "" && err == nil:
			t.Errorf("%s: accepted", c.name)
		case c.alg != "" && (err != nil || k.Alg != c.alg):
			t.Errorf("%s: %v %v, want %s", c.name, k.Alg, err, c.alg)
		}
	}
	if _, err := assertion.ParseKeyPEM([]byte("not pem")); err == nil || !strings.Contains(err.Error(), "PEM") {
		t.Errorf("not PEM: %v", err)
	}
}

// A generated key is P-256 and round-trips through its PEM.
func TestGenerateKey(t *testing.T) {
	k, pemBytes, err := assertion.GenerateKey()
	if err != nil || k.Alg != tenant.ES256 {
		t.Fatal(k.Alg, err)
	}
	back, err := assertion.ParseKeyPEM(pemBytes)
	if err != nil || assertion.Thumbprint(back.Signer.Public()) != assertion.Thumbprint(k.Signer.Public()) {
		t.Fatalf("PEM round trip: %v", err)
	}
}

func mustEd(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}
