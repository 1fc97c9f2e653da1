package caddymodule

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// embed-inspect finds every embed_session handler, however deeply the
// Caddyfile nests it, in config order.
func TestLoadHandlersNested(t *testing.T) {
	cf := filepath.Join(t.TempDir(), "Caddyfile")
	body := `a.example {
	handle /app/* {
		embed_session {
			tenant acme {
				key {env.A}
			}
		}
		respond ok
	}
}
b.example {
	route {
		embed_session {
			tenant globex {
				key {env.G}
				jwks https://idp.globex.example/jwks
				api_key 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
			}
			max_token_age 60s
		}
		respond ok
	}
}
`
	if err := os.WriteFile(cf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	hs, err := loadHandlers(cf, "")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, h := range hs {
		for _, tc := range h.Tenants {
			ids = append(ids, tc.ID)
		}
	}
	if strings.Join(ids, ",") != "acme,globex" || time.Duration(hs[1].MaxTokenAge) != time.Minute || hs[1].Tenants[0].JWKS != "https://idp.globex.example/jwks" || len(hs[1].Tenants[0].APIKeys) != 1 {
		t.Fatalf("handlers: %+v", hs)
	}
	if _, err := loadHandlers(cf, "nope"); err == nil || !strings.Contains(err.Error(), `unknown config adapter "nope"`) {
		t.Fatalf("unknown adapter: %v", err)
	}
	js := filepath.Join(t.TempDir(), "caddy.json")
	_ = os.WriteFile(js, []byte(`{"apps":{"http":{"servers":{"s":{"routes":[{"handle":[{"handler":"static_response"}]}]}}}}}`), 0o600)
	if _, err := loadHandlers(js, ""); err == nil || !strings.Contains(err.Error(), "has no embed_session handler") {
		t.Fatalf("config without handler: %v", err)
	}
}

func TestMintClaimValues(t *testing.T) {
	for in, want := range map[string]string{
		`gold`:             `"gold"`,
		`42`:               `42`,
		`true`:             `true`,
		`"42"`:             `"42"`,
		`{"id":"o7"}`:      `{"id":"o7"}`,
		`["a","b"]`:        `["a","b"]`,
		`{"id":1} {"x":2}`: `"{\"id\":1} {\"x\":2}"`,
		``:                 `""`,
	} {
		b, _ := json.Marshal(claimValue(in))
		if string(b) != want {
			t.Errorf("claimValue(%q) = %s, want %s", in, b, want)
		}
	}
}

func TestMintSigningKeys(t *testing.T) {
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaSmall, _ := rsa.GenerateKey(rand.Reader, 1024)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	pk8 := func(k any) []byte { b, _ := x509.MarshalPKCS8PrivateKey(k); return b }
	ecDER, _ := x509.MarshalECPrivateKey(ec)
	pubDER, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	for _, tc := range []struct {
		name     string
		material []byte
		alg      string
		err      string
	}{
		{"secret", []byte("0123456789abcdef0123456789abcdef"), "HS256", ""},
		{"short secret", []byte("short"), "", "secret is 5 bytes"},
		{"rsa pkcs8", pemOf("PRIVATE KEY", pk8(rsaKey)), "RS256", ""},
		{"rsa pkcs1", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), "RS256", ""},
		{"rsa 1024", pemOf("PRIVATE KEY", pk8(rsaSmall)), "", "1024 bits"},
		{"p256 sec1", pemOf("EC PRIVATE KEY", ecDER), "ES256", ""},
		{"p384", pemOf("PRIVATE KEY", pk8(ec384)), "", "P-384 is not supported"},
		{"ed25519", pemOf("PRIVATE KEY", pk8(ed)), "EdDSA", ""},
		{"public key", pemOf("PUBLIC KEY", pubDER), "", "not a private key"},
		{"broken pem", []byte("-----BEGIN PRIVATE KEY-----\nnope"), "", "unreadable PEM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, key, err := signingKey(tc.material)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || m.Alg() != tc.alg {
				t.Fatalf("alg %v, err %v", m, err)
			}
			if _, err := jwt.NewWithClaims(m, jwt.MapClaims{"a": 1}).SignedString(key); err != nil {
				t.Fatal(err)
			}
		})
	}
}
