package caddymodule

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/embedgate/embedgate/internal/testsupport"
	"github.com/embedgate/embedgate/internal/token"
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
		// The tenant's rule for a secret (tenant.CheckSecret): a public key
		// is not one, however it is pasted.
		{"jwk as a secret", []byte(`{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}`), "", "a JWK is not an HS256 secret"},
		{"public key body as a secret", []byte(base64.StdEncoding.EncodeToString(pubDER)), "", "is not an HS256 secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := signingKey(tc.material)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || s.Alg != tc.alg {
				t.Fatalf("alg %v, err %v", s.Alg, err)
			}
			if _, err := token.Sign(s, map[string]any{"a": 1}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// embed-inspect verifies with the same tenants as the gateway: the inline
// ones plus the handler's tenants_file, its path resolved as Provision
// resolves it.
func TestInspectUsesTenantsFile(t *testing.T) {
	const (
		acmeSecret   = "acme-secret-0123456789abcdef0123"
		globexSecret = "globex-secret-0123456789abcdef01"
	)
	dir := t.TempDir()
	tenants := filepath.Join(dir, "tenants.json")
	if err := os.WriteFile(tenants, []byte(`{"tenants":[{"id":"globex","keys":[{"secret":"`+globexSecret+`"}],"frame_ancestors":["https://globex.example"]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("EG_TEST_TENANTS_FILE", tenants)
	cf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cf, []byte(`a.example {
	embed_session {
		tenant acme {
			key `+acmeSecret+`
			frame_ancestors https://acme.example
		}
		tenants_file {env.EG_TEST_TENANTS_FILE}
	}
	respond ok
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	mint := func(iss, secret string) string {
		return testsupport.Mint(t, testsupport.HS256(secret, ""), testsupport.Claims(iss, "jane", time.Now()))
	}
	inspect := runInspect

	for _, c := range []struct {
		name, tok string
		code      int
		want      string
	}{
		{"file tenant", mint("globex", globexSecret), exitOK, "valid for tenant globex"},
		{"inline tenant", mint("acme", acmeSecret), exitOK, "valid for tenant acme"},
		{"file tenant, wrong key", mint("globex", acmeSecret), exitRejected, "bad_signature"},
		{"unknown tenant", mint("initech", acmeSecret), exitRejected, `this config has tenants "acme", "globex"`},
		{"millisecond timestamps", func() string {
			ms := time.Now().UnixMilli()
			c := testsupport.Claims("acme", "jane", time.Now())
			c["iat"], c["exp"] = ms, ms+60000
			return testsupport.Mint(t, testsupport.HS256(acmeSecret, ""), c)
		}(), exitRejected, "looks like milliseconds: iat, nbf and exp are whole seconds since the epoch"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out := inspect(cf, c.tok)
			if code != c.code || !strings.Contains(out, c.want) {
				t.Fatalf("exit %d, want %d with %q:\n%s", code, c.code, c.want, out)
			}
		})
	}

	// A config that cannot be loaded is exit 2, whatever the cause.
	for name, body := range map[string]string{
		"short secret":  "a.example {\n embed_session {\n tenant acme {\n key short\n }\n }\n}\n",
		"unset env":     "a.example {\n embed_session {\n tenant acme {\n key {env.EG_TEST_UNSET_ANYWHERE}\n }\n }\n}\n",
		"syntax error":  "a.example {\n embed_session {\n",
		"no handler":    "a.example {\n respond ok\n}\n",
		"unknown field": "a.example {\n embed_session {\n colour red\n }\n}\n",
	} {
		bad := filepath.Join(dir, "bad-"+strings.ReplaceAll(name, " ", "-"))
		_ = os.WriteFile(bad, []byte(body), 0o600)
		if code, out := inspect(bad, mint("acme", acmeSecret)); code != exitUsage {
			t.Errorf("%s: exit %d, want %d\n%s", name, code, exitUsage, out)
		}
	}
	if code, _ := inspect(filepath.Join(dir, "nonexistent"), mint("acme", acmeSecret)); code != exitUsage {
		t.Errorf("missing config: exit %d", code)
	}

	// An unreadable tenants file is a config error, as it is for Provision.
	t.Setenv("EG_TEST_TENANTS_FILE", filepath.Join(dir, "missing.json"))
	if code, out := inspect(cf, mint("acme", acmeSecret)); code != exitUsage || !strings.Contains(out, "embed_session #1: tenants file") {
		t.Fatalf("missing tenants file: exit %d\n%s", code, out)
	}
}

// runInspect runs embed-inspect on config and tok as the CLI does, and
// returns its exit code and everything it printed.
func runInspect(config, tok string) (int, string) {
	cmd := &cobra.Command{Use: "embed-inspect"}
	cmd.Flags().StringP("config", "c", "", "")
	cmd.Flags().StringP("adapter", "a", "", "")
	var buf bytes.Buffer
	cmd.SetOut(&buf)
	cmd.SetErr(&buf)
	_ = cmd.Flags().Set("config", config)
	code := cmdInspect(cmd, []string{tok})
	return code, buf.String()
}
