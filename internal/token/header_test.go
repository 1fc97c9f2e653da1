package token

import (
	"context"
	"testing"

	"github.com/embedgate/embedgate/internal/reason"
)

func TestHeaderRules(t *testing.T) {
	reg := registry(t)
	k := keys()
	const claims = `{"iss":"acme","aud":"acme","sub":"s","jti":"j","iat":1700000000,"exp":1700000060}`
	// Every token is MACed with acme's key a1, so only the header can fail it.
	hs := func(header string) string { return rawHS(header, claims, k.secretA) }
	tests := []struct {
		name, header string
		want         reason.Reason
	}{
		{"plain", `{"alg":"HS256"}`, ""},
		{"typ JWT", `{"alg":"HS256","typ":"JWT"}`, ""},
		{"typ jwt", `{"alg":"HS256","typ":"jwt"}`, ""},
		{"unknown parameter ignored", `{"alg":"HS256","foo":{"bar":1}}`, ""},

		{"alg missing", `{"typ":"JWT"}`, reason.Malformed},
		{"alg number", `{"alg":256}`, reason.Malformed},
		{"alg null", `{"alg":null}`, reason.Malformed},
		{"alg array", `{"alg":["HS256"]}`, reason.Malformed},

		{"none", `{"alg":"none"}`, reason.BadAlgorithm},
		{"None", `{"alg":"None"}`, reason.BadAlgorithm},
		{"NONE", `{"alg":"NONE"}`, reason.BadAlgorithm},
		{"nOnE", `{"alg":"nOnE"}`, reason.BadAlgorithm},
		{"empty alg", `{"alg":""}`, reason.BadAlgorithm},
		{"hs256 lower case", `{"alg":"hs256"}`, reason.BadAlgorithm},
		{"HS384", `{"alg":"HS384"}`, reason.BadAlgorithm},
		{"HS512", `{"alg":"HS512"}`, reason.BadAlgorithm},
		{"RS512", `{"alg":"RS512"}`, reason.BadAlgorithm},
		{"PS256", `{"alg":"PS256"}`, reason.BadAlgorithm},
		{"ES384", `{"alg":"ES384"}`, reason.BadAlgorithm},
		{"Ed25519", `{"alg":"Ed25519"}`, reason.BadAlgorithm},
		{"trailing space", `{"alg":"HS256 "}`, reason.BadAlgorithm},
		{"JWE alg", `{"alg":"dir"}`, reason.BadAlgorithm},

		{"jku", `{"alg":"HS256","jku":"https://evil.example/jwks"}`, reason.ForbiddenHeader},
		{"x5u", `{"alg":"HS256","x5u":"https://evil.example/cert"}`, reason.ForbiddenHeader},
		{"jwk", `{"alg":"HS256","jwk":{"kty":"oct","k":"AAAA"}}`, reason.ForbiddenHeader},
		{"x5c", `{"alg":"HS256","x5c":["MIIB"]}`, reason.ForbiddenHeader},
		{"crit", `{"alg":"HS256","crit":["exp"],"exp":1}`, reason.ForbiddenHeader},
		{"crit null", `{"alg":"HS256","crit":null}`, reason.ForbiddenHeader},
		{"jku empty", `{"alg":"HS256","jku":""}`, reason.ForbiddenHeader},

		{"typ at+jwt", `{"alg":"HS256","typ":"at+jwt"}`, reason.Malformed},
		{"typ JWS", `{"alg":"HS256","typ":"JWS"}`, reason.Malformed},
		{"typ application/jwt", `{"alg":"HS256","typ":"application/jwt"}`, reason.Malformed},
		{"typ empty", `{"alg":"HS256","typ":""}`, reason.Malformed},
		{"typ number", `{"alg":"HS256","typ":1}`, reason.Malformed},
		{"typ null", `{"alg":"HS256","typ":null}`, reason.Malformed},

		{"kid number", `{"alg":"HS256","kid":1}`, reason.Malformed},
		{"kid null", `{"alg":"HS256","kid":null}`, reason.Malformed},
		{"kid object", `{"alg":"HS256","kid":{"a1":true}}`, reason.Malformed},
		{"kid empty counts as absent", `{"alg":"HS256","kid":""}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := testVerifier().Verify(context.Background(), hs(tc.header), reg, nil)
			wantReason(t, err, tc.want)
		})
	}
}

// The classic unsecured JWS: alg none and an empty signature segment.
func TestUnsecuredTokenRefused(t *testing.T) {
	reg := registry(t)
	for _, alg := range []string{"none", "None", "NONE"} {
		raw := enc(`{"alg":"`+alg+`","typ":"JWT"}`) + "." +
			enc(`{"iss":"acme","aud":"acme","sub":"s","jti":"j","iat":1700000000,"exp":1700000060}`) + "."
		_, err := testVerifier().Verify(context.Background(), raw, reg, nil)
		wantReason(t, err, reason.BadAlgorithm)
	}
}
