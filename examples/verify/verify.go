// Command verify checks an embedgate identity assertion (X-Embed-Assertion)
// in Go with github.com/golang-jwt/jwt/v5, against the gateway's JWKS.
//
// Usage: go run ./examples/verify <jwks-url> <issuer> <audience> <token>
// Prints the claims as JSON, or the reason for refusing and exit status 1.
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// jwk is one published key (only the members a verifier needs).
type jwk struct {
	Kty, Crv, X, Y, Kid, Alg string
}

// fetchKeys loads the key set. An app caches it (the gateway allows five
// minutes) and fetches again when a token names a kid it does not know.
func fetchKeys(url string) ([]jwk, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks: status %d", resp.StatusCode)
	}
	var set struct{ Keys []jwk }
	err = json.NewDecoder(resp.Body).Decode(&set)
	return set.Keys, err
}

// publicKey turns a P-256 or Ed25519 JWK into a key golang-jwt verifies with.
func publicKey(k jwk) (crypto.PublicKey, error) {
	b64 := base64.RawURLEncoding.DecodeString
	x, err := b64(k.X)
	if err != nil {
		return nil, err
	}
	switch {
	case k.Kty == "EC" && k.Crv == "P-256" && k.Alg == "ES256":
		y, err := b64(k.Y)
		if err != nil || len(x) != 32 || len(y) != 32 {
			return nil, errors.New("bad EC key")
		}
		return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	case k.Kty == "OKP" && k.Crv == "Ed25519" && k.Alg == "EdDSA" && len(x) == ed25519.PublicKeySize:
		return ed25519.PublicKey(x), nil
	}
	return nil, fmt.Errorf("unsupported key %s/%s", k.Kty, k.Crv)
}

// verifyAssertion returns the claims of a valid assertion: signed by a
// published key with that key's algorithm, for this issuer and audience,
// not expired.
func verifyAssertion(tok string, keys []jwk, issuer, audience string) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		for _, k := range keys {
			if k.Kid == kid && k.Alg == t.Method.Alg() {
				return publicKey(k)
			}
		}
		return nil, fmt.Errorf("no published key %q for %s", kid, t.Method.Alg())
	},
		jwt.WithValidMethods([]string{"ES256", "EdDSA"}),
		jwt.WithIssuer(issuer), jwt.WithAudience(audience),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(30*time.Second))
	if err != nil {
		return nil, err
	}
	return claims, nil
}

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: verify <jwks-url> <issuer> <audience> <token>")
		os.Exit(2)
	}
	keys, err := fetchKeys(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "jwks:", err)
		os.Exit(2)
	}
	claims, err := verifyAssertion(os.Args[4], keys, os.Args[2], os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, "refused:", err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(claims)
}
