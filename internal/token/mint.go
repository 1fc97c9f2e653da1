package token

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"

	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/tenant"
)

// RegisteredClaims are the claims a minter sets itself from the tenant, the
// subject and the lifetime; a caller's extra claims may not name them.
var RegisteredClaims = []string{"iss", "aud", "sub", "iat", "exp", "nbf", "jti"}

// IsRegistered reports whether name is one of RegisteredClaims.
func IsRegistered(name string) bool { return slices.Contains(RegisteredClaims, name) }

// NewID is 128 random bits as 22 base64url characters: token ids (jti) and
// session ids, which can be neither guessed nor collide. crypto/rand.Read
// never fails (it ends the program instead), so neither does NewID.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Signer is a key that signs tokens: an HS256 secret, or a private key with
// the algorithm tenant.AcceptPrivateKey pins for it.
type Signer struct {
	Alg string // tenant.HS256, RS256, ES256 or EdDSA
	KID string // put in the header when set
	Key any    // []byte for HS256, else the crypto.Signer
}

// Sign builds a compact JWS of claims: header {"alg", "kid" (when set),
// "typ": "JWT"}, members in sorted order.
func Sign(s Signer, claims map[string]any) (string, error) {
	method := jwt.GetSigningMethod(s.Alg)
	if method == nil || !slices.Contains([]string{tenant.HS256, tenant.RS256, tenant.ES256, tenant.EdDSA}, s.Alg) {
		return "", fmt.Errorf("token: cannot sign with %q", s.Alg)
	}
	tok := jwt.NewWithClaims(method, jwt.MapClaims(claims))
	tok.Header["typ"] = "JWT"
	if s.KID != "" {
		tok.Header["kid"] = s.KID
	}
	return tok.SignedString(s.Key)
}
