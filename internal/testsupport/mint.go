package testsupport

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/tenant"
	"github.com/embedgate/embedgate/internal/token"
)

// Lifetime is the exp - iat of Claims: what a customer's backend gives a
// token, inside every max_token_age the suites configure.
const Lifetime = 60 * time.Second

// Claims is a token body every verification rule accepts for tenant iss:
// aud iss, sub, iat now, exp now + Lifetime and a fresh jti (so that two
// tokens are never replays of each other). Tests edit the map before Mint.
func Claims(iss, sub string, now time.Time) map[string]any {
	return map[string]any{
		"iss": iss,
		"aud": iss,
		"sub": sub,
		"jti": token.NewID(),
		"iat": now.Unix(),
		"exp": now.Add(Lifetime).Unix(),
	}
}

// HS256 is the signer of an HS256 secret, naming kid in the header when it
// is not empty.
func HS256(secret, kid string) token.Signer {
	return token.Signer{Alg: tenant.HS256, KID: kid, Key: []byte(secret)}
}

// SignerFor is the signer of a private key (RSA, P-256 or Ed25519) with the
// algorithm tenant.AcceptPrivateKey pins for it, naming kid in the header
// when it is not empty. A key the gateway would refuse fails the test.
func SignerFor(t testing.TB, key crypto.Signer, kid string) token.Signer {
	t.Helper()
	alg, err := tenant.AcceptPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return token.Signer{Alg: alg, KID: kid, Key: key}
}

// Mint signs claims with s (HS256, RS256, ES256 or EdDSA) and fails the test
// if it cannot. It signs through token.Sign, so the suites' tokens are made
// the way the gateway's own token API and embed-mint make them. A jwt.MapClaims
// may be passed as it is.
func Mint(t testing.TB, s token.Signer, claims map[string]any) string {
	t.Helper()
	tok, err := token.Sign(s, claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// MintHeader is Mint with header members set over token.Sign's, for tokens
// that others issue, such as an identity provider's access token with typ
// "at+jwt" (RFC 9068). The payload is token.Sign's; the signature is s's
// algorithm whatever header names.
func MintHeader(t testing.TB, s token.Signer, header, claims map[string]any) string {
	t.Helper()
	head, rest, _ := strings.Cut(Mint(t, s, claims), ".")
	payload, _, _ := strings.Cut(rest, ".")
	h := map[string]any{}
	if raw, err := base64.RawURLEncoding.DecodeString(head); err != nil || json.Unmarshal(raw, &h) != nil {
		t.Fatalf("token.Sign wrote an unreadable header %q", head)
	}
	maps.Copy(h, header)
	raw, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	input := base64.RawURLEncoding.EncodeToString(raw) + "." + payload
	sig, err := jwt.GetSigningMethod(s.Alg).Sign(input, s.Key)
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}
