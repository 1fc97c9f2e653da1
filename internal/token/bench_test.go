package token

import (
	"context"
	"testing"

	"github.com/embedgate/embedgate/internal/tenant"
)

func benchmarkVerify(b *testing.B, alg, kid string) {
	reg := registry(b)
	raw := signAlg(b, alg, kid, validClaims("acme"))
	v := testVerifier()
	if _, err := v.Verify(context.Background(), raw, reg, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(context.Background(), raw, reg, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyHS256 is the common case: a shared secret named by kid.
func BenchmarkVerifyHS256(b *testing.B) { benchmarkVerify(b, tenant.HS256, "a1") }

// BenchmarkVerifyES256 is the common asymmetric case.
func BenchmarkVerifyES256(b *testing.B) { benchmarkVerify(b, tenant.ES256, "e1") }
