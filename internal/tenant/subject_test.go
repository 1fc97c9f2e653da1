package tenant

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

func lsPEM(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// lsConfig is a tenant with the token API, edited.
func lsConfig(edit func(*Config)) Config {
	c := Config{ID: "acme", Keys: []SecretConfig{{Secret: strings.Repeat("s", 32)}}, APIKeys: []string{strings.Repeat("ab", 32)}}
	if edit != nil {
		edit(&c)
	}
	return c
}

func TestLoginStateValues(t *testing.T) {
	for in, want := range map[string]LoginState{"": LoginStateOptional, "optional": LoginStateOptional, "required": LoginStateRequired, "off": LoginStateOff} {
		tn, err := New(lsConfig(func(c *Config) { c.LoginState = in }))
		if err != nil || tn.LoginState != want {
			t.Errorf("login_state %q: %v, %v", in, tn, err)
		}
	}
	for _, bad := range []string{"Required", "on", "true", " off"} {
		_, err := New(lsConfig(func(c *Config) { c.LoginState = bad }))
		if err == nil || !strings.Contains(err.Error(), `tenant "acme": login_state `) || !strings.Contains(err.Error(), "want required, optional or off") {
			t.Errorf("login_state %q: %v", bad, err)
		}
	}
}

func TestSubjectIssuerConfig(t *testing.T) {
	key := lsPEM(t)
	good := SubjectIssuerConfig{Issuer: "https://idp.test/oauth2", PublicKeys: []PublicKeyConfig{{PEM: key, KID: "k1"}}, Audiences: []string{"api", "api", "crm"}, CopyClaims: []string{"email", "https://acme.test/roles"}}
	tn, err := New(lsConfig(func(c *Config) { c.SubjectIssuers = []SubjectIssuerConfig{good} }))
	if err != nil {
		t.Fatal(err)
	}
	si, ok := tn.SubjectIssuer("https://idp.test/oauth2")
	if !ok || si.SubjectClaim != "sub" || len(si.Keys) != 1 || si.Keys[0].Alg != ES256 || si.Keys[0].KID != "k1" ||
		strings.Join(si.Audiences, ",") != "api,crm" || strings.Join(si.CopyClaims, ",") != "email,https://acme.test/roles" {
		t.Fatalf("issuer %+v", si)
	}
	if _, ok := tn.SubjectIssuer("https://idp.test/oauth2/"); ok {
		t.Fatal("issuers match exactly, not up to a trailing slash")
	}
	edit := func(f func(*SubjectIssuerConfig)) func(*Config) {
		return func(c *Config) {
			s := good
			s.PublicKeys = append([]PublicKeyConfig(nil), good.PublicKeys...)
			f(&s)
			c.SubjectIssuers = []SubjectIssuerConfig{s}
		}
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no api_key", func(c *Config) { c.APIKeys = nil; c.SubjectIssuers = []SubjectIssuerConfig{good} }, `tenant "acme": subject_issuer: the token exchange is a token API call; add api_key`},
		{"no issuer", edit(func(s *SubjectIssuerConfig) { s.Issuer = "" }), `subject_issuer #1: the issuer is required`},
		{"issuer over http", edit(func(s *SubjectIssuerConfig) { s.Issuer = "http://idp.test" }), `subject_issuer "http://idp.test": must be an absolute https URL`},
		{"issuer with a query", edit(func(s *SubjectIssuerConfig) { s.Issuer = "https://idp.test/?x=1" }), "without query or fragment"},
		{"issuer not a URL", edit(func(s *SubjectIssuerConfig) { s.Issuer = "acme-idp" }), "must be an absolute https URL"},
		{"issuer with user info is not quoted", edit(func(s *SubjectIssuerConfig) { s.Issuer = "https://user:pw@idp.test" }), `subject_issuer "https://…@idp.test": must be`},
		{"no key", edit(func(s *SubjectIssuerConfig) { s.PublicKeys = nil }), "no key: add jwks or public_key"},
		{"bad jwks", edit(func(s *SubjectIssuerConfig) { s.JWKS = "http://idp.test/keys" }), `jwks: "http://idp.test/keys": must be an absolute https URL`},
		{"bad key", edit(func(s *SubjectIssuerConfig) { s.PublicKeys[0].PEM = "nope" }), "public_key #1: no PEM block found"},
		{"duplicate kid", edit(func(s *SubjectIssuerConfig) {
			s.PublicKeys = append(s.PublicKeys, PublicKeyConfig{PEM: key, KID: "k1"})
		}), `public_key #2: duplicate kid "k1"`},
		{"no audience", edit(func(s *SubjectIssuerConfig) { s.Audiences = nil }), "audience is required"},
		{"empty audience", edit(func(s *SubjectIssuerConfig) { s.Audiences = []string{""} }), "an empty audience"},
		{"copy a registered claim", edit(func(s *SubjectIssuerConfig) { s.CopyClaims = []string{"jti"} }), "copy_claims: jti is set by the gateway, not copied"},
		{"copy nonce", edit(func(s *SubjectIssuerConfig) { s.CopyClaims = []string{"nonce"} }), "copy_claims: nonce is set by the gateway"},
		{"copy twice", edit(func(s *SubjectIssuerConfig) { s.CopyClaims = []string{"email", "email"} }), "copy_claims: email listed twice"},
		{"copy an empty name", edit(func(s *SubjectIssuerConfig) { s.CopyClaims = []string{""} }), "copy_claims: an empty claim name"},
		{"issuer twice", func(c *Config) { c.SubjectIssuers = []SubjectIssuerConfig{good, good} }, `subject_issuer "https://idp.test/oauth2": listed twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(lsConfig(tc.edit))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "pw@") {
				t.Fatalf("error quotes user info: %v", err)
			}
		})
	}
}

type lsSource struct{ url string }

func (lsSource) Keys() []Key                                { return nil }
func (lsSource) Lookup(context.Context, string) (Key, bool) { return Key{}, false }

// A subject issuer's jwks gets its KeySource from the registry's
// constructor, under the tenant's id and its own URL.
func TestSubjectIssuerJWKSSource(t *testing.T) {
	cfg := lsConfig(func(c *Config) {
		c.JWKS = "https://acme.test/keys"
		c.SubjectIssuers = []SubjectIssuerConfig{{Issuer: "https://idp.test", JWKS: "https://idp.test/keys", Audiences: []string{"api"}}}
	})
	var asked []string
	reg, err := NewRegistry([]Config{cfg}, WithKeySources(func(id, url string) (KeySource, error) {
		asked = append(asked, id+" "+url)
		return lsSource{url}, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	tn, _ := reg.ByID("acme")
	if strings.Join(asked, ",") != "acme https://acme.test/keys,acme https://idp.test/keys" {
		t.Fatalf("sources asked for %v", asked)
	}
	if src, ok := tn.SubjectIssuers[0].Source.(lsSource); !ok || src.url != "https://idp.test/keys" {
		t.Fatalf("issuer source %#v", tn.SubjectIssuers[0].Source)
	}
	if _, err := NewRegistry([]Config{cfg}); err == nil || !strings.Contains(err.Error(), "jwks: no JWKS fetcher") {
		t.Fatalf("without a fetcher: %v", err)
	}
}

// The JSON names, as a tenants file writes them.
func TestSubjectIssuerJSON(t *testing.T) {
	cfgs, err := ParseFile([]byte(`{"tenants": [{"id": "acme", "login_state": "required",
		"subject_issuers": [{"issuer": "https://idp.test", "jwks": "https://idp.test/keys", "public_keys": [{"pem": "x", "kid": "k"}],
		"audiences": ["api"], "subject_claim": "email", "copy_claims": ["email", "name"]}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	c := cfgs[0]
	s := c.SubjectIssuers[0]
	if c.LoginState != "required" || s.Issuer != "https://idp.test" || s.JWKS != "https://idp.test/keys" || s.PublicKeys[0].KID != "k" ||
		s.Audiences[0] != "api" || s.SubjectClaim != "email" || strings.Join(s.CopyClaims, ",") != "email,name" {
		t.Fatalf("decoded %+v", c)
	}
	if _, err := ParseFile([]byte(`{"tenants": [{"id": "acme", "subject_issuers": [{"issuer": "https://idp.test", "audience": ["api"]}]}]}`)); err == nil {
		t.Fatal("an unknown subject_issuers field is accepted")
	}
}
