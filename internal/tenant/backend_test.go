package tenant

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func digest(key string) string {
	s := sha256.Sum256([]byte(key))
	return hex.EncodeToString(s[:])
}

func TestAPIKeysAndJWKSConfig(t *testing.T) {
	const rawKey = "egk_example-api-key-0123456789"
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "api key digest", cfg: Config{ID: "acme", Keys: []SecretConfig{{Secret: secret32}}, APIKeys: []string{digest(rawKey)}}},
		{name: "upper-case digest", cfg: Config{ID: "acme", Keys: []SecretConfig{{Secret: secret32}}, APIKeys: []string{strings.ToUpper(digest(rawKey))}}},
		{name: "raw key instead of digest, not quoted", cfg: Config{ID: "acme", Keys: []SecretConfig{{Secret: secret32}}, APIKeys: []string{rawKey}}, wantErr: `tenant "acme": api_keys #1: not a SHA-256 digest`},
		{name: "non-hex digest", cfg: Config{ID: "acme", Keys: []SecretConfig{{Secret: secret32}}, APIKeys: []string{strings.Repeat("z", 64)}}, wantErr: `tenant "acme": api_keys #1: not a SHA-256 digest`},
		{name: "duplicate digest", cfg: Config{ID: "acme", Keys: []SecretConfig{{Secret: secret32}}, APIKeys: []string{digest("a"), digest("a")}}, wantErr: `tenant "acme": api_keys #2: duplicate digest`},
		{name: "api keys need an HS256 key to sign", cfg: Config{ID: "acme", JWKS: "https://idp.example/jwks", APIKeys: []string{digest(rawKey)}}, wantErr: `tenant "acme": api_keys: the token API signs with the tenant's first key (HS256); add a key`},
		{name: "jwks alone is a key", cfg: Config{ID: "acme", JWKS: "https://idp.example/.well-known/jwks.json"}},
		{name: "jwks http on localhost", cfg: Config{ID: "acme", JWKS: "http://127.0.0.1:9999/jwks"}},
		{name: "jwks http elsewhere", cfg: Config{ID: "acme", JWKS: "http://idp.example/jwks"}, wantErr: `tenant "acme": jwks: "http://idp.example/jwks": must be an absolute https URL`},
		{name: "jwks relative", cfg: Config{ID: "acme", JWKS: "/jwks"}, wantErr: `tenant "acme": jwks:`},
		{name: "jwks with credentials, not quoted", cfg: Config{ID: "acme", JWKS: "https://u:hunter2@idp.example/jwks"}, wantErr: `tenant "acme": jwks: the URL may not hold user info`},
		{name: "login_url with credentials, not quoted", cfg: Config{ID: "acme", Keys: []SecretConfig{{Secret: secret32}}, LoginURL: "http://svc:hunter2@login.acme.test/sso?key=hunter2"},
			wantErr: `tenant "acme": login_url "http://…@login.acme.test/sso?…": must be`},
		{name: "frame_ancestors with credentials, not quoted", cfg: Config{ID: "acme", Keys: []SecretConfig{{Secret: secret32}}, FrameAncestors: []string{"https://u:hunter2@app.acme.test"}},
			wantErr: `origin "https://…@app.acme.test": user info is not allowed`},
		{name: "jwks http elsewhere, query not quoted", cfg: Config{ID: "acme", JWKS: "http://idp.example/jwks?access_token=hunter2"}, wantErr: `tenant "acme": jwks: "http://idp.example/jwks?…": must be an absolute https URL`},
		{name: "no key names jwks", cfg: Config{ID: "acme"}, wantErr: `tenant "acme": no key: add key, public_key or jwks`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			for _, secret := range []string{rawKey, "hunter2", secret32} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error quotes a secret: %v", err)
				}
			}
		})
	}
}

type fakeSource struct{ url string }

func (fakeSource) Keys() []Key                                { return nil }
func (fakeSource) Lookup(context.Context, string) (Key, bool) { return Key{}, false }

func TestRegistryAPIKeysAndKeySources(t *testing.T) {
	cfgs := []Config{
		{ID: "acme", Keys: []SecretConfig{{Secret: secret32}}, APIKeys: []string{digest("key-a1"), digest("key-a2")}},
		{ID: "globex", Keys: []SecretConfig{{Secret: secret32}}, APIKeys: []string{digest("key-g")}, JWKS: "https://idp.globex.example/jwks"},
		{ID: "initech", Keys: []SecretConfig{{Secret: secret32}}},
	}
	var asked []string
	r, err := NewRegistry(cfgs, WithKeySources(func(id, url string) (KeySource, error) {
		asked = append(asked, id+" "+url)
		return fakeSource{url}, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"key-a1": "acme", "key-a2": "acme", "key-g": "globex"} {
		if got, ok := r.ByAPIKey(key); !ok || got.ID != want {
			t.Errorf("ByAPIKey(%s) = %v, %v; want %s", key, got, ok, want)
		}
	}
	for _, key := range []string{"", "key-a3", digest("key-a1")} {
		if got, ok := r.ByAPIKey(key); ok {
			t.Errorf("ByAPIKey(%q) = %s", key, got.ID)
		}
	}
	g, _ := r.ByID("globex")
	if src, ok := g.Source.(fakeSource); !ok || src.url != "https://idp.globex.example/jwks" {
		t.Fatalf("globex source = %#v", g.Source)
	}
	if a, _ := r.ByID("acme"); a.Source != nil || !a.HasTokenAPI() {
		t.Fatal("acme: unexpected source, or no token API")
	}
	if i, _ := r.ByID("initech"); i.HasTokenAPI() {
		t.Fatal("initech has no api_keys, so no token API")
	}
	if len(asked) != 1 {
		t.Fatalf("key sources built: %v", asked)
	}
	if k, ok := g.SigningKey(); !ok || string(k.Secret) != secret32 {
		t.Fatal("signing key")
	}
	if got := strings.Join(r.IDs(), ","); got != "acme,globex,initech" {
		t.Fatalf("IDs = %s", got)
	}

	// Errors: a key listed by two tenants, no key source, a failing one.
	dup := []Config{cfgs[0], {ID: "b", Keys: []SecretConfig{{Secret: secret32}}, APIKeys: []string{digest("key-a2")}}}
	if _, err := NewRegistry(dup); err == nil || !strings.Contains(err.Error(), `tenant "b": api_keys #1: the same key is listed by tenant "acme"`) {
		t.Fatalf("duplicate key across tenants: %v", err)
	}
	if _, err := NewRegistry(cfgs); err == nil || !strings.Contains(err.Error(), `tenant "globex": jwks: no JWKS fetcher`) {
		t.Fatalf("jwks without key sources: %v", err)
	}
	_, err = NewRegistry(cfgs, WithKeySources(func(string, string) (KeySource, error) { return nil, errors.New("boom") }))
	if err == nil || !strings.Contains(err.Error(), `tenant "globex": jwks: boom`) {
		t.Fatalf("failing key source: %v", err)
	}
}
