package tenant

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A key revoked by replacing the key file the tenants file names
// (public_keys[].file; likewise a {file.*} secret), then touching the
// tenants file, as README says: the touch used to be a no-op for a version
// in force (same bytes, no retry pending), and the replaced key went on
// verifying the tenant's tokens until the tenants file was edited.
func TestTouchAppliesReplacedKeyFile(t *testing.T) {
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "acme.pem")
	writeKey := func() *ecdsa.PrivateKey {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
		tmp := keyPath + ".tmp"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, keyPath); err != nil {
			t.Fatal(err)
		}
		return k
	}
	old := writeKey()
	path := filepath.Join(dir, "tenants.json")
	b, _ := json.Marshal(map[string]any{"tenants": []any{map[string]any{"id": "acme", "public_keys": []any{map[string]any{"file": keyPath}}}}})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfgs, v, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	current, err := NewRegistry(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	w := &Watcher{Path: path, Apply: func(c []Config) error {
		reg, err := NewRegistry(c)
		if err == nil {
			current = reg
		}
		return err
	}}
	w.Seed(v)
	writeKey() // the compromised key is replaced
	for range 3 {
		w.Check()
	}
	// Touching the tenants file applies it again.
	later := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		w.Check()
	}
	acme, _ := current.ByID("acme")
	if acme.Keys[0].Public.(*ecdsa.PublicKey).Equal(&old.PublicKey) {
		t.Error("the key file was replaced, but the replaced (compromised) key still verifies acme's tokens")
	}
}
