package session

import (
	"crypto/subtle"
	"strings"
	"testing"
)

// equalConstantTime is the cache's cookie comparison: for every length
// around the word size and a difference at every position, it agrees with
// subtle.ConstantTimeCompare.
func TestEqualConstantTimeAgreesWithSubtle(t *testing.T) {
	for n := 0; n <= 40; n++ {
		a := strings.Repeat("k", n)
		if !equalConstantTime(a, a) {
			t.Fatalf("len %d: equal strings compare unequal", n)
		}
		for i := range n {
			for _, flip := range []byte{0x01, 0x80} {
				b := []byte(a)
				b[i] ^= flip
				want := subtle.ConstantTimeCompare([]byte(a), b) == 1
				if got := equalConstantTime(a, string(b)); got != want {
					t.Fatalf("len %d, byte %d ^ %#x: got %v, want %v", n, i, flip, got, want)
				}
			}
		}
		if equalConstantTime(a, a+"k") {
			t.Fatalf("len %d: a prefix compares equal", n)
		}
	}
}
