package token

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/tenant"
)

func TestNewID(t *testing.T) {
	const n = 10000
	seen := make(map[string]bool, n)
	for i := 0; i < n; i++ {
		id := NewID()
		if len(id) != 22 {
			t.Fatalf("len(%q) = %d, want 22", id, len(id))
		}
		raw, err := base64.RawURLEncoding.Strict().DecodeString(id)
		if err != nil || len(raw) != 16 {
			t.Fatalf("%q is not 16 bytes of base64url: %v", id, err)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q after %d calls", id, i)
		}
		seen[id] = true
	}
}

// Sign makes what the verifier and every JWT library read: the pinned
// algorithm, the kid, typ JWT, and the claims as given.
func TestSignHS256(t *testing.T) {
	secret := []byte(strings.Repeat("k", 32))
	raw, err := Sign(Signer{Alg: tenant.HS256, KID: "k1", Key: secret}, map[string]any{"iss": "acme", "n": 1})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Parse(raw, func(t *jwt.Token) (any, error) { return secret, nil }, jwt.WithValidMethods([]string{"HS256"}))
	if err != nil || tok.Header["kid"] != "k1" || tok.Header["typ"] != "JWT" || tok.Claims.(jwt.MapClaims)["iss"] != "acme" {
		t.Fatalf("%v %v", tok, err)
	}
	if _, err := Sign(Signer{Alg: "none"}, nil); err == nil {
		t.Fatal("signed with none")
	}
}
