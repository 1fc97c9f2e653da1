package caddymodule

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"

	"github.com/embedgate/embedgate/internal/assertion"
)

func assertionJWKS(t *testing.T, h *Handler, st certmagic.Storage) []byte {
	t.Helper()
	a, err := h.provisionAssertion(st)
	if err != nil {
		t.Fatal(err)
	}
	body, err := a.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// Provisioning (which `embedgate validate` runs too) writes nothing; the
// generated key is created at embedgate/assertion_key on first use, and two
// instances on one storage, starting together, publish the same single key.
func TestAssertionKeyGeneratedOnceShared(t *testing.T) {
	st := &certmagic.FileStorage{Path: t.TempDir()}
	h := &Handler{Assertion: &AssertionConfig{}}
	a, err := h.provisionAssertion(st)
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.provisionAssertion(st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(context.Background(), assertionStorageKey); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("provisioning wrote the key: %v", err)
	}
	var wg sync.WaitGroup
	out := make([][]byte, 2)
	for i, inst := range []interface{ JWKS() ([]byte, error) }{a, b} {
		wg.Go(func() {
			body, err := inst.JWKS()
			if err != nil {
				t.Error(err)
			}
			out[i] = body
		})
	}
	wg.Wait()
	if !bytes.Equal(out[0], out[1]) {
		t.Fatalf("two instances publish different keys:\n%s\n%s", out[0], out[1])
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(out[0], &set); err != nil || len(set.Keys) != 1 || set.Keys[0]["alg"] != "ES256" {
		t.Fatalf("JWKS %s: %v, want one ES256 key", out[0], err)
	}
	if _, err := st.Load(context.Background(), assertionStorageKey); err != nil {
		t.Fatalf("first use did not store the key: %v", err)
	}
	// A later instance (a restart) loads it at Provision.
	if later := assertionJWKS(t, h, st); !bytes.Equal(later, out[0]) {
		t.Fatalf("after a restart: %s, want %s", later, out[0])
	}
}

// A corrupt stored key is a config error, not a silently new key.
func TestAssertionStoredKeyCorrupt(t *testing.T) {
	st := &certmagic.FileStorage{Path: t.TempDir()}
	if err := st.Store(context.Background(), assertionStorageKey, []byte("junk")); err != nil {
		t.Fatal(err)
	}
	_, err := (&Handler{Assertion: &AssertionConfig{}}).provisionAssertion(st)
	if err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("corrupt key: %v", err)
	}
}

// Configured keys: PEM files with {env.*} in the path, the first signs,
// all are published; the generated key is then not used.
func TestAssertionConfiguredKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, der []byte, typ string) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p8, _ := x509.MarshalPKCS8PrivateKey(k1)
	sec1, _ := x509.MarshalECPrivateKey(k2)
	write("new.pem", p8, "PRIVATE KEY")
	write("old.pem", sec1, "EC PRIVATE KEY")
	t.Setenv("EG_ASSERTION_KEYS", dir)
	st := &certmagic.FileStorage{Path: t.TempDir()}
	h := &Handler{Assertion: &AssertionConfig{Keys: []AssertionKey{{File: "{env.EG_ASSERTION_KEYS}/new.pem", KID: "new"}, {File: "{env.EG_ASSERTION_KEYS}/old.pem"}}}}
	body := assertionJWKS(t, h, st)
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil || len(set.Keys) != 2 ||
		set.Keys[0]["kid"] != "new" || set.Keys[1]["kid"] != assertion.Thumbprint(&k2.PublicKey) {
		t.Fatalf("JWKS %s: %v", body, err)
	}
	if _, err := st.Load(context.Background(), assertionStorageKey); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a key was generated although keys are configured")
	}
	h.Assertion.Keys[1].File = filepath.Join(dir, "missing.pem")
	if _, err := h.provisionAssertion(st); err == nil || !strings.Contains(err.Error(), "key #2") {
		t.Fatalf("missing file: %v", err)
	}
}

// Every bad assertion value is a config-load error that needs no I/O.
func TestAssertionValidate(t *testing.T) {
	for name, h := range map[string]*Handler{
		"reserved header":  {Assertion: &AssertionConfig{Header: "X-Embed-Subject"}},
		"cookie header":    {Assertion: &AssertionConfig{Header: "Cookie"}},
		"bad header":       {Assertion: &AssertionConfig{Header: "X Bad"}},
		"forward header":   {Assertion: &AssertionConfig{Header: "X-Org"}, ForwardClaims: []ForwardClaim{{Claim: "org", Header: "x-org"}}},
		"default header":   {Assertion: &AssertionConfig{}, ForwardClaims: []ForwardClaim{{Claim: "a", Header: "X-Embed-Assertion"}}},
		"reserved, folded": {Assertion: &AssertionConfig{Header: "X_Embed_Subject"}},
		"forward, folded":  {Assertion: &AssertionConfig{Header: "X.Org"}, ForwardClaims: []ForwardClaim{{Claim: "org", Header: "X-Org"}}},
		"default, folded":  {Assertion: &AssertionConfig{}, ForwardClaims: []ForwardClaim{{Claim: "a", Header: "X_Embed_Assertion"}}},
		"own claim":        {Assertion: &AssertionConfig{}, ForwardClaims: []ForwardClaim{{Claim: "exp", Header: "X-Exp"}}},
		"ttl over 1h":      {Assertion: &AssertionConfig{TTL: caddy.Duration(2 * time.Hour)}},
		"ttl negative":     {Assertion: &AssertionConfig{TTL: caddy.Duration(-time.Minute)}},
		"key no file":      {Assertion: &AssertionConfig{Keys: []AssertionKey{{KID: "a"}}}},
		"kid twice":        {Assertion: &AssertionConfig{Keys: []AssertionKey{{File: "a", KID: "k"}, {File: "b", KID: "k"}}}},
	} {
		if err := errors.Join(h.validateAssertion(), h.checkUpstreamHeaders()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	good := &Handler{Assertion: &AssertionConfig{Header: "X-App-Identity", TTL: caddy.Duration(time.Hour)}, ForwardClaims: []ForwardClaim{{Claim: "org", Header: "X-Org"}}}
	if err := errors.Join(good.validateAssertion(), good.checkUpstreamHeaders()); err != nil {
		t.Errorf("good config refused: %v", err)
	}
}
