package testsupport

import (
	"testing"
	"time"

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
