package tenant

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const secret32 = "0123456789abcdef0123456789abcdef"

func pemFile(t *testing.T, key any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func publicPEM(t *testing.T, key any) string {
	t.Helper()
	b, err := os.ReadFile(pemFile(t, key))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestKeyCheckRefusesPublicKeyAsSecret: a Key built without New (the
// tenants file, a caller of the package) is held to the same rule.
func TestKeyCheckRefusesPublicKeyAsSecret(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pemText := publicPEM(t, &p256.PublicKey)
	lines := strings.Split(strings.TrimSpace(pemText), "\n")
	body := strings.Join(lines[1:len(lines)-1], "\n") // the armour dropped
	for _, secret := range []string{pemText, body, strings.Join(lines[1:len(lines)-1], ""),
		`{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}`,
		"\uFEFF{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\"}", "short"} {
		if err := (Key{Alg: HS256, Secret: []byte(secret)}).Check(); err == nil {
			t.Errorf("Check accepted %.20q… as an HS256 secret", secret)
		}
	}
	// Secrets that merely look like base64 or braces are secrets.
	for _, secret := range []string{strings.Repeat("k", MinSecretLen), "dGhpcyBpcyBhIGJhc2U2NCBzZWNyZXQgb2YgNDAgYnl0ZXMhIQ==", `{"a":"b","c":"0123456789abcdef0123456789"}`} {
		if err := (Key{Alg: HS256, Secret: []byte(secret)}).Check(); err != nil {
			t.Errorf("Check refused the secret %q: %v", secret, err)
		}
	}
}

func TestNewTenantKeys(t *testing.T) {
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)

	tests := []struct {
		name    string
		cfg     Config
		wantAlg []string
		wantErr string
	}{
		{name: "hs256", cfg: Config{ID: "acme", Keys: []SecretConfig{{Secret: secret32, KID: "a"}}}, wantAlg: []string{HS256}},
		{name: "short secret names tenant and field, not the value", cfg: Config{ID: "acme", Keys: []SecretConfig{{Secret: "tooshort-secret"}}}, wantErr: `tenant "acme": key #1: secret is 15 bytes, at least 32 required`},
		// RFC 8725 section 2.1: a public key pasted under key would be an
		// HS256 secret anyone holding the public key can MAC tokens with.
		{name: "PEM public key as a secret", cfg: Config{ID: "acme", Keys: []SecretConfig{{Secret: publicPEM(t, &rsa2048.PublicKey)}}}, wantErr: `tenant "acme": key #1: a PEM block is not an HS256 secret`},
		{name: "JWK as a secret", cfg: Config{ID: "acme", Keys: []SecretConfig{{Secret: ` {"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`}}}, wantErr: `tenant "acme": key #1: a JWK is not an HS256 secret`},
		{name: "rsa 2048", cfg: Config{ID: "acme", PublicKeys: []PublicKeyConfig{{File: pemFile(t, &rsa2048.PublicKey)}}}, wantAlg: []string{RS256}},
		{name: "rsa 1024 refused", cfg: Config{ID: "acme", PublicKeys: []PublicKeyConfig{{File: pemFile(t, &rsa1024.PublicKey)}}}, wantErr: "RSA key is 1024 bits, at least 2048 required"},
		{name: "p256", cfg: Config{ID: "acme", PublicKeys: []PublicKeyConfig{{File: pemFile(t, &p256.PublicKey)}}}, wantAlg: []string{ES256}},
		{name: "p384 refused", cfg: Config{ID: "acme", PublicKeys: []PublicKeyConfig{{File: pemFile(t, &p384.PublicKey)}}}, wantErr: "P-384 is not supported"},
		{name: "ed25519", cfg: Config{ID: "acme", PublicKeys: []PublicKeyConfig{{File: pemFile(t, edPub)}}}, wantAlg: []string{EdDSA}},
		{name: "unreadable key file", cfg: Config{ID: "acme", PublicKeys: []PublicKeyConfig{{File: "/nonexistent/key.pem"}}}, wantErr: `tenant "acme": public_key #1: reading key file`},
		{name: "private key refused", cfg: Config{ID: "acme", PublicKeys: []PublicKeyConfig{{PEM: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}}}, wantErr: "this is a private key"},
		{name: "no key", cfg: Config{ID: "acme"}, wantErr: `tenant "acme": no key`},
		{name: "no id", cfg: Config{Keys: []SecretConfig{{Secret: secret32}}}, wantErr: "id is required"},
		{name: "duplicate kid", cfg: Config{ID: "acme", Keys: []SecretConfig{{Secret: secret32, KID: "a"}, {Secret: secret32 + "x", KID: "a"}}}, wantErr: `duplicate kid "a"`},
		{name: "mixed keys", cfg: Config{ID: "acme", Keys: []SecretConfig{{Secret: secret32}}, PublicKeys: []PublicKeyConfig{{File: pemFile(t, &p256.PublicKey)}}}, wantAlg: []string{HS256, ES256}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn, err := New(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "tooshort-secret") {
					t.Fatalf("error leaks the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var algs []string
			for _, k := range tn.Keys {
				algs = append(algs, k.Alg)
			}
			if strings.Join(algs, ",") != strings.Join(tt.wantAlg, ",") {
				t.Fatalf("algs = %v, want %v", algs, tt.wantAlg)
			}
		})
	}
}

func TestNewTenantOriginsHostsLogin(t *testing.T) {
	base := func(mod func(*Config)) Config {
		c := Config{ID: "acme", Keys: []SecretConfig{{Secret: secret32}}}
		mod(&c)
		return c
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "origins ok", cfg: base(func(c *Config) { c.FrameAncestors = []string{"https://App.Acme.com:443", "http://localhost:8080"} })},
		{name: "origin with path", cfg: base(func(c *Config) { c.FrameAncestors = []string{"https://acme.com/app"} }), wantErr: `tenant "acme": frame_ancestors: origin "https://acme.com/app"`},
		{name: "wildcard", cfg: base(func(c *Config) { c.FrameAncestors = []string{"https://*.acme.com"} }), wantErr: "frame_ancestors"},
		{name: "semicolon", cfg: base(func(c *Config) { c.FrameAncestors = []string{"https://a.com;script-src"} }), wantErr: "frame_ancestors"},
		{name: "comma", cfg: base(func(c *Config) { c.FrameAncestors = []string{"https://a.com,https://b.com"} }), wantErr: "frame_ancestors"},
		{name: "plain http", cfg: base(func(c *Config) { c.FrameAncestors = []string{"http://acme.com"} }), wantErr: "scheme must be https"},
		{name: "host with scheme", cfg: base(func(c *Config) { c.Hosts = []string{"https://acme.example"} }), wantErr: "hosts"},
		{name: "login_url relative", cfg: base(func(c *Config) { c.LoginURL = "/login" }), wantErr: "login_url"},
		{name: "login_url http remote", cfg: base(func(c *Config) { c.LoginURL = "http://acme.com/login" }), wantErr: "login_url"},
		{name: "login_url ok", cfg: base(func(c *Config) { c.LoginURL = "https://acme.com/login?x=1" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	tn, err := New(base(func(c *Config) { c.FrameAncestors = []string{"https://App.Acme.com:443", "https://app.acme.com"} }))
	if err != nil {
		t.Fatal(err)
	}
	if got := tn.FrameAncestorsCSP(); got != "frame-ancestors https://app.acme.com" {
		t.Fatalf("csp = %q (normalized, deduplicated)", got)
	}
	if !tn.AllowsOrigin("https://app.acme.com") || tn.AllowsOrigin("https://evil.com") || tn.AllowsOrigin("") {
		t.Fatal("AllowsOrigin wrong")
	}
}

func TestRegistry(t *testing.T) {
	k := []SecretConfig{{Secret: secret32}}
	reg, err := NewRegistry([]Config{
		{ID: "acme", Keys: k, Hosts: []string{"Acme.Portal.Test:8443"}},
		{ID: "globex", Keys: k},
	})
	if err != nil {
		t.Fatal(err)
	}
	if tn, ok := reg.ByHost(HostOf("acme.portal.test:443")); !ok || tn.ID != "acme" {
		t.Fatal("host lookup failed")
	}
	if _, ok := reg.ByHost("globex.portal.test"); ok {
		t.Fatal("unexpected host match")
	}
	if tn, ok := reg.ByID("globex"); !ok || tn.ID != "globex" || reg.Len() != 2 {
		t.Fatal("id lookup failed")
	}
	if _, err := NewRegistry([]Config{{ID: "a", Keys: k}, {ID: "a", Keys: k}}); err == nil || !strings.Contains(err.Error(), `tenant "a": duplicate tenant id`) {
		t.Fatalf("duplicate id: %v", err)
	}
	if _, err := NewRegistry([]Config{{ID: "a", Keys: k, Hosts: []string{"x.test"}}, {ID: "b", Keys: k, Hosts: []string{"X.test"}}}); err == nil || !strings.Contains(err.Error(), `host "x.test" already belongs to tenant "a"`) {
		t.Fatalf("duplicate host: %v", err)
	}
}

// TestHostOf pins the Host header normalisation, and that the common case,
// a host without a port, allocates nothing (it runs on every request).
func TestHostOf(t *testing.T) {
	for in, want := range map[string]string{
		"acme.portal.test":       "acme.portal.test",
		"Acme.Portal.Test.":      "acme.portal.test",
		"acme.portal.test:443":   "acme.portal.test",
		"ACME.portal.test.:8443": "acme.portal.test",
		"[::1]:443":              "::1",
		"[::1]":                  "::1",
		"[[::1]]":                "::1",
		"::1":                    "::1",
		"[0:0::1]:443":           "::1",
		"[::ABCD]":               "::abcd",
		"2001:DB8:0:0:0:0:0:1":   "2001:db8::1",
		"acme.portal.test:":      "acme.portal.test",
		"a:b:c":                  "a:b:c",
		"":                       "",
	} {
		if got := HostOf(in); got != want {
			t.Errorf("HostOf(%q) = %q, want %q", in, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = HostOf("acme.portal.test") }); n != 0 {
		t.Errorf("HostOf allocates %v times for a host without a port", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = HostOf("[::1]:8443") }); n != 0 {
		t.Errorf("HostOf allocates %v times for an IPv6 host in canonical form", n)
	}
}

// A tenant id that no session cookie can carry (over 255 bytes) or that
// holds control characters is a config error naming the field, not a tenant
// whose valid tokens all fail at the exchange.
func TestTenantIDBounds(t *testing.T) {
	key := []SecretConfig{{Secret: strings.Repeat("k", 32)}}
	if _, err := New(Config{ID: strings.Repeat("a", 255), Keys: key}); err != nil {
		t.Fatalf("255-byte id: %v", err)
	}
	for _, id := range []string{strings.Repeat("a", 256), strings.Repeat("a", 300), "acme\x00", "ac\x7fme", "acme\x1b[31m"} {
		_, err := New(Config{ID: id, Keys: key})
		if err == nil || !strings.Contains(err.Error(), "id") {
			t.Errorf("id %.20q…: %v, want an error naming the id", id, err)
		}
	}
}
