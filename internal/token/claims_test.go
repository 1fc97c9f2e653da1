package token

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/tenant"
)

// at is a NumericDate sec seconds from the test clock.
func at(sec float64) float64 { return float64(now.Unix()) + sec }

// claimsWith returns valid acme claims with set applied; a drop value deletes.
func claimsWith(set map[string]any) jwt.MapClaims {
	c := validClaims("acme")
	for n, v := range set {
		if v == drop {
			delete(c, n)
		} else {
			c[n] = v
		}
	}
	return c
}

// Test clock: now; leeway 30s; max age 120s.
func TestClaimRules(t *testing.T) {
	reg := registry(t)
	tests := []struct {
		name string
		set  map[string]any
		v    *Verifier // nil: testVerifier()
		want reason.Reason
	}{
		{"valid", nil, nil, ""},
		{"aud as one-element array", map[string]any{"aud": []string{"acme"}}, nil, ""},
		{"aud missing", map[string]any{"aud": drop}, nil, reason.MissingClaim},
		{"aud another tenant", map[string]any{"aud": "globex"}, nil, reason.WrongAudience},
		{"aud differs in case", map[string]any{"aud": "ACME"}, nil, reason.WrongAudience},
		{"aud empty string", map[string]any{"aud": ""}, nil, reason.WrongAudience},
		{"aud two elements", map[string]any{"aud": []string{"acme", "globex"}}, nil, reason.WrongAudience},
		{"aud twice the tenant", map[string]any{"aud": []string{"acme", "acme"}}, nil, reason.WrongAudience},
		{"aud empty array", map[string]any{"aud": []string{}}, nil, reason.WrongAudience},
		{"aud one other element", map[string]any{"aud": []string{"globex"}}, nil, reason.WrongAudience},
		{"aud number", map[string]any{"aud": 1}, nil, reason.WrongAudience},
		{"aud array of number", map[string]any{"aud": []int{1}}, nil, reason.WrongAudience},
		{"aud null", map[string]any{"aud": nil}, nil, reason.WrongAudience},

		{"sub missing", map[string]any{"sub": drop}, nil, reason.MissingClaim},
		{"sub empty", map[string]any{"sub": ""}, nil, reason.MissingClaim},
		{"sub number", map[string]any{"sub": 42}, nil, reason.Malformed},
		{"sub null", map[string]any{"sub": nil}, nil, reason.Malformed},
		{"jti missing", map[string]any{"jti": drop}, nil, reason.MissingClaim},
		{"jti empty", map[string]any{"jti": ""}, nil, reason.MissingClaim},
		{"jti array", map[string]any{"jti": []string{"j"}}, nil, reason.Malformed},

		{"iat missing", map[string]any{"iat": drop}, nil, reason.MissingClaim},
		{"iat string", map[string]any{"iat": "1700000000"}, nil, reason.Malformed},
		{"iat negative", map[string]any{"iat": -1}, nil, reason.Malformed},
		{"iat beyond year 9999", map[string]any{"iat": 1e300}, nil, reason.Malformed},
		{"exp missing", map[string]any{"exp": drop}, nil, reason.MissingClaim},
		{"exp bool", map[string]any{"exp": true}, nil, reason.Malformed},
		{"exp null", map[string]any{"exp": nil}, nil, reason.Malformed},
		{"nbf string", map[string]any{"nbf": "now"}, nil, reason.Malformed},
		{"nbf in the past", map[string]any{"nbf": at(-5)}, nil, ""},

		{"fractional iat and exp", map[string]any{"iat": at(-0.5), "exp": at(59.25)}, nil, ""},
		{"exp equals iat", map[string]any{"exp": at(0)}, nil, reason.Malformed},
		{"exp before iat", map[string]any{"exp": at(-1)}, nil, reason.Malformed},

		{"lifetime exactly 120s", map[string]any{"iat": at(-60), "exp": at(60)}, nil, ""},
		{"lifetime 120.001s", map[string]any{"iat": at(-60), "exp": at(60.001)}, nil, reason.LifetimeTooLong},
		{"lifetime one hour", map[string]any{"exp": at(3600)}, nil, reason.LifetimeTooLong},
		{"lifetime 300s, max age 5m", map[string]any{"exp": at(300)}, &Verifier{MaxTokenAge: 5 * time.Minute, Leeway: 30 * time.Second, Now: clock}, ""},

		{"iat at now+leeway", map[string]any{"iat": at(30), "exp": at(90)}, nil, ""},
		{"iat past now+leeway", map[string]any{"iat": at(30.5), "exp": at(90)}, nil, reason.IssuedInFuture},
		{"iat in future, no leeway", map[string]any{"iat": at(1), "exp": at(60)}, &Verifier{Now: clock}, reason.IssuedInFuture},
		{"nbf at now+leeway", map[string]any{"nbf": at(30)}, nil, ""},
		{"nbf past now+leeway", map[string]any{"nbf": at(31)}, nil, reason.NotYetValid},

		{"exp+leeway == now", map[string]any{"iat": at(-100), "exp": at(-30)}, nil, reason.Expired},
		{"exp+leeway just after now", map[string]any{"iat": at(-100), "exp": at(-29.5)}, nil, ""},
		{"exp == now, no leeway", map[string]any{"iat": at(-10), "exp": at(0)}, &Verifier{Now: clock}, reason.Expired},
		{"exp just after now, no leeway", map[string]any{"iat": at(-10), "exp": at(0.001)}, &Verifier{Now: clock}, ""},
		{"negative leeway is none", map[string]any{"iat": at(-10), "exp": at(0)}, &Verifier{Leeway: -time.Hour, Now: clock}, reason.Expired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.v
			if v == nil {
				v = testVerifier()
			}
			raw := signAlg(t, tenant.HS256, "a1", claimsWith(tc.set))
			_, err := v.Verify(context.Background(), raw, reg, nil)
			wantReason(t, err, tc.want)
		})
	}
}

// Each case breaks two rules; the one reported is the earlier in the
// documented order (Verify, then checkHeader, then checkClaims).
func TestCheckOrder(t *testing.T) {
	reg := registry(t)
	k := keys()
	hs := func(set map[string]any) string { return signAlg(t, tenant.HS256, "a1", claimsWith(set)) }
	tests := []struct {
		name string
		raw  string
		want reason.Reason
	}{
		{"duplicate key before alg none", rawHS(`{"alg":"none","alg":"none"}`, `{}`, k.secretA), reason.Malformed},
		{"payload structure before header", rawHS(`{"alg":"none"}`, `[]`, k.secretA), reason.Malformed},
		{"alg before forbidden header", rawHS(`{"alg":"none","jku":"x"}`, `{}`, k.secretA), reason.BadAlgorithm},
		{"forbidden header before typ", rawHS(`{"alg":"HS256","jwk":{},"typ":"at+jwt"}`, `{}`, k.secretA), reason.ForbiddenHeader},
		{"typ before iss", rawHS(`{"alg":"HS256","typ":"x"}`, `{}`, k.secretA), reason.Malformed},
		{"header before iss", rawHS(`{"alg":"HS256","x5u":"x"}`, `{"iss":"nobody"}`, k.secretA), reason.ForbiddenHeader},
		{"iss before the signature", rawHS(`{"alg":"HS256"}`, `{"iss":"nobody"}`, []byte("wrong")), reason.UnknownTenant},
		{"unknown key before the signature", rawHS(`{"alg":"HS256","kid":"zz"}`, `{"iss":"acme"}`, []byte("wrong")), reason.UnknownKey},
		{"key alg before the signature", rawHS(`{"alg":"HS256"}`, `{"iss":"rsaonly"}`, []byte("wrong")), reason.BadAlgorithm},
		{"signature before claims", rawHS(`{"alg":"HS256"}`, `{"iss":"acme","aud":"x","exp":1}`, []byte("wrong")), reason.BadSignature},
		{"aud before sub", hs(map[string]any{"aud": "x", "sub": 1}), reason.WrongAudience},
		{"sub before jti", hs(map[string]any{"sub": 1, "jti": drop}), reason.Malformed},
		{"jti before iat", hs(map[string]any{"jti": drop, "iat": "x"}), reason.MissingClaim},
		{"iat before exp", hs(map[string]any{"iat": "x", "exp": drop}), reason.Malformed},
		{"exp before nbf", hs(map[string]any{"exp": drop, "nbf": "x"}), reason.MissingClaim},
		{"types before the clock", hs(map[string]any{"nbf": "x", "iat": at(-1000), "exp": at(-900)}), reason.Malformed},
		{"exp<=iat before the clock", hs(map[string]any{"iat": at(-1000), "exp": at(-1000)}), reason.Malformed},
		{"lifetime before expired", hs(map[string]any{"iat": at(-1000), "exp": at(-500)}), reason.LifetimeTooLong},
		{"lifetime before issued in future", hs(map[string]any{"iat": at(1000), "exp": at(2000)}), reason.LifetimeTooLong},
		{"issued in future before nbf", hs(map[string]any{"iat": at(100), "exp": at(150), "nbf": at(100)}), reason.IssuedInFuture},
		{"nbf before expired", hs(map[string]any{"iat": at(-100), "exp": at(-40), "nbf": at(100)}), reason.NotYetValid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := testVerifier().Verify(context.Background(), tc.raw, reg, nil)
			wantReason(t, err, tc.want)
		})
	}
}

// TestReplayTTL: the jti stays used until exp + 2·MaxLeeway, whatever this
// verifier's leeway, so no instance sharing the store (whose clock is up to
// its own leeway behind, and which accepts the token until its own exp +
// leeway) can exchange it a second time: with exp + 2·(own leeway), one
// with a larger leeway could, once the store forgot the jti.
func TestReplayTTL(t *testing.T) {
	const window = 2 * MaxLeeway // 10m
	tests := []struct {
		name string
		exp  time.Time
		want time.Duration
	}{
		{"fresh token", now.Add(60 * time.Second), 60*time.Second + window},
		{"fraction rounds up", now.Add(60*time.Second + time.Millisecond), 61*time.Second + window},
		{"expired here, still good where the leeway is larger", now.Add(-30 * time.Second), window - 30*time.Second},
		{"last instant of the widest window", now.Add(-window + time.Millisecond), time.Second},
		{"beyond every instance's leeway", now.Add(-window - time.Second), time.Second},
		{"already expired", now.Add(-time.Hour), time.Second},
		{"zero claims", time.Time{}, time.Second},
	}
	for _, leeway := range []time.Duration{0, 30 * time.Second, MaxLeeway} {
		v := testVerifier()
		v.Leeway = leeway
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/leeway=%s", tc.name, leeway), func(t *testing.T) {
				got := v.ReplayTTL(Claims{ExpiresAt: tc.exp})
				if got != tc.want {
					t.Fatalf("ReplayTTL = %s, want %s", got, tc.want)
				}
				// An instance with the largest leeway, its clock that far
				// behind, accepts the token until exp + 2·MaxLeeway here.
				if w := tc.exp.Add(window).Sub(now); got < w {
					t.Fatalf("ReplayTTL %s shorter than the window %s", got, w)
				}
			})
		}
	}
	// From a real verification (exp = now + 60s).
	v := testVerifier()
	res, err := v.Verify(context.Background(), signAlg(t, tenant.ES256, "e1", validClaims("acme")), registry(t), nil)
	wantReason(t, err, "")
	if got := v.ReplayTTL(res.Claims); got != 60*time.Second+window {
		t.Fatalf("ReplayTTL = %s, want %s", got, 60*time.Second+window)
	}
}

func TestLookup(t *testing.T) {
	reg := registry(t)
	c := validClaims("acme")
	c["org"] = map[string]any{"id": "org_42", "plan": map[string]any{"tier": 3}}
	c["groups"] = []string{"admins", "sales"}
	c["https://acme.example/roles"] = "owner"
	c["flat"] = "x"
	res, err := testVerifier().Verify(context.Background(), signAlg(t, tenant.HS256, "a1", c), reg, nil)
	wantReason(t, err, "")
	tests := []struct {
		path string
		want any
		ok   bool
	}{
		{"org.id", "org_42", true},
		{"org.plan.tier", json.Number("3"), true},
		{"org.plan", map[string]any{"tier": json.Number("3")}, true},
		{"groups", []any{"admins", "sales"}, true},
		{"sub", "jane@acme.example", true},
		{"exp", json.Number("1700000060"), true},
		{"https://acme.example/roles", "owner", true},
		{"org.missing", nil, false},
		{"missing", nil, false},
		{"flat.x", nil, false},
		{"groups.0", nil, false},
		{"org.", nil, false},
		{"", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			got, ok := res.Claims.Lookup(tc.path)
			if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Lookup(%q) = %#v, %v; want %#v, %v", tc.path, got, ok, tc.want, tc.ok)
			}
		})
	}
	if _, ok := (Claims{}).Lookup("sub"); ok {
		t.Fatal("Lookup on empty claims found something")
	}
}

// A subject is what sessions and revocations are keyed on: it must reach
// the app unchanged, so a space at either end (trimmed by every HTTP
// parser) and control characters, a tab included, are refused.
func TestCheckSubject(t *testing.T) {
	for sub, ok := range map[string]bool{
		"jane@acme.test": true, "Jane Doe": true, "jäne": true, "": true,
		"jane ": false, " jane": false, "jane\t": false, "ja\tne": false, "jane\r\nX-Evil: 1": false, "jane\x7f": false,
	} {
		err := CheckSubject(sub)
		if (err == nil) != ok {
			t.Errorf("CheckSubject(%q) = %v, want ok=%v", sub, err, ok)
		}
		if err != nil && reason.Of(err) != reason.Malformed {
			t.Errorf("CheckSubject(%q): reason %s, want malformed", sub, reason.Of(err))
		}
	}
}
