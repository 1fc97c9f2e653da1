package testsupport_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/tenant"
	"github.com/embedgate/embedgate/internal/testsupport"
	"github.com/embedgate/embedgate/internal/token"
)

var start = time.Unix(1_700_000_000, 0).UTC()

func TestClockMovesOnlyWhenTold(t *testing.T) {
	c := testsupport.NewClock(start)
	if !c.Now().Equal(start) || !c.Now().Equal(start) {
		t.Fatalf("a new clock reads %v, want %v until moved", c.Now(), start)
	}
	c.Advance(90 * time.Second)
	if want := start.Add(90 * time.Second); !c.Now().Equal(want) {
		t.Fatalf("after Advance: %v, want %v", c.Now(), want)
	}
	c.Advance(-30 * time.Second)
	if want := start.Add(time.Minute); !c.Now().Equal(want) {
		t.Fatalf("after a negative Advance: %v, want %v", c.Now(), want)
	}
	later := start.Add(24 * time.Hour)
	c.Set(later)
	if !c.Now().Equal(later) {
		t.Fatalf("after Set: %v, want %v", c.Now(), later)
	}
}

// Readers and writers on other goroutines (a janitor, a refresh) see every
// Advance exactly once, and concurrent Sets leave the time set; run with
// -race, this also proves the locking. (A Set among the Advances would undo
// some of them by design, so the Sets run in a phase of their own.)
func TestClockConcurrentUse(t *testing.T) {
	c := testsupport.NewClock(start)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				c.Advance(time.Second)
				_ = c.Now()
			}
		})
	}
	wg.Go(func() { _ = c.Now() })
	wg.Wait()
	if want := start.Add(800 * time.Second); !c.Now().Equal(want) {
		t.Fatalf("after 800 concurrent one-second advances: %v, want %v", c.Now(), want)
	}
	for range 8 {
		wg.Go(func() {
			c.Set(start)
			_ = c.Now()
		})
	}
	wg.Wait()
	if !c.Now().Equal(start) {
		t.Fatalf("after concurrent Sets to %v: %v", start, c.Now())
	}
}

func TestFreePortCanBeListenedOn(t *testing.T) {
	p := testsupport.FreePort(t)
	if p <= 0 || p > 65535 {
		t.Fatalf("port %d", p)
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		t.Fatalf("the free port %d cannot be listened on: %v", p, err)
	}
	l.Close()
}

func TestLogBufferConcurrentWrites(t *testing.T) {
	var b testsupport.LogBuffer
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for range 50 {
				fmt.Fprintf(&b, "w%d\n", i)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 200 {
		t.Fatalf("%d lines, want 200: a write was lost or torn", n)
	}
	for i := range 4 {
		if n := strings.Count(b.String(), fmt.Sprintf("w%d\n", i)); n != 50 {
			t.Fatalf("writer %d: %d whole lines, want 50", i, n)
		}
	}
	b.Reset()
	if b.String() != "" {
		t.Fatalf("after Reset: %q", b.String())
	}
}

func TestClaimsAreValidAndFresh(t *testing.T) {
	a, b := testsupport.Claims("acme", "jane", start), testsupport.Claims("acme", "jane", start)
	if a["iss"] != "acme" || a["aud"] != "acme" || a["sub"] != "jane" ||
		a["iat"] != start.Unix() || a["exp"] != start.Add(testsupport.Lifetime).Unix() {
		t.Fatalf("claims %v", a)
	}
	if a["jti"] == "" || a["jti"] == b["jti"] {
		t.Fatalf("jti %q then %q: want a fresh one each time", a["jti"], b["jti"])
	}
}

// Every algorithm the suites mint with gives a token whose header is
// {"alg","kid" when set,"typ":"JWT"} and whose signature the matching
// public key verifies.
func TestMintEachAlgorithm(t *testing.T) {
	rsaKey, ecKey, edKey := signingKeys(t)
	const secret = "a-test-secret-of-at-least-32-bytes-0123"
	for _, tc := range []struct {
		signer token.Signer
		verify any
	}{
		{testsupport.HS256(secret, "k1"), []byte(secret)},
		{testsupport.HS256(secret, ""), []byte(secret)},
		{token.Signer{Alg: tenant.RS256, KID: "r1", Key: rsaKey}, rsaKey.Public()},
		{token.Signer{Alg: tenant.ES256, Key: ecKey}, ecKey.Public()},
		{token.Signer{Alg: tenant.EdDSA, KID: "d1", Key: edKey}, crypto.Signer(edKey).Public()},
	} {
		t.Run(tc.signer.Alg+"/"+tc.signer.KID, func(t *testing.T) {
			claims := testsupport.Claims("acme", "jane", start)
			raw := testsupport.Mint(t, tc.signer, jwt.MapClaims(claims))
			got := jwt.MapClaims{}
			tok, err := jwt.NewParser(jwt.WithValidMethods([]string{tc.signer.Alg}), jwt.WithTimeFunc(func() time.Time { return start })).
				ParseWithClaims(raw, got, func(*jwt.Token) (any, error) { return tc.verify, nil })
			if err != nil {
				t.Fatalf("does not verify: %v", err)
			}
			wantHdr := map[string]any{"alg": tc.signer.Alg, "typ": "JWT"}
			if tc.signer.KID != "" {
				wantHdr["kid"] = tc.signer.KID
			}
			if fmt.Sprint(tok.Header) != fmt.Sprint(wantHdr) {
				t.Fatalf("header %v, want %v", tok.Header, wantHdr)
			}
			if got["jti"] != claims["jti"] || got["sub"] != "jane" {
				t.Fatalf("claims %v, want %v", got, claims)
			}
		})
	}
}

// An algorithm token.Sign refuses fails the test instead of returning an
// empty token.
func TestMintFailsTheTest(t *testing.T) {
	ft := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		testsupport.Mint(ft, token.Signer{Alg: "none"}, map[string]any{})
	}()
	<-done
	if !ft.failed {
		t.Fatal("Mint with alg none did not fail the test")
	}
}

// fatalRecorder records Fatal and ends the goroutine, as testing.T does.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatal(...any) {
	f.failed = true
	runtime.Goexit()
}

// SignerFor pins each accepted key type to its algorithm, as the gateway
// does, and names the kid; a key the gateway refuses (P-384, RSA under
// 2048 bits) fails the test instead of minting an unverifiable token.
func TestSignerForPinsTheAlgorithm(t *testing.T) {
	rsaKey, ecKey, edKey := signingKeys(t)
	for _, tc := range []struct {
		key crypto.Signer
		alg string
	}{{rsaKey, tenant.RS256}, {ecKey, tenant.ES256}, {edKey, tenant.EdDSA}} {
		s := testsupport.SignerFor(t, tc.key, "k-"+tc.alg)
		if s.Alg != tc.alg || s.KID != "k-"+tc.alg {
			t.Errorf("%T: signer %s/%s, want %s/k-%s", tc.key, s.Alg, s.KID, tc.alg, tc.alg)
		}
		// The key itself signs: its public half verifies.
		raw := testsupport.Mint(t, s, testsupport.Claims("acme", "jane", start))
		if _, err := jwt.NewParser(jwt.WithValidMethods([]string{tc.alg}), jwt.WithTimeFunc(func() time.Time { return start })).
			Parse(raw, func(*jwt.Token) (any, error) { return tc.key.Public(), nil }); err != nil {
			t.Errorf("%s: does not verify: %v", tc.alg, err)
		}
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []crypto.Signer{p384, small} {
		ft := &fatalRecorder{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			testsupport.SignerFor(ft, key, "")
		}()
		<-done
		if !ft.failed {
			t.Errorf("SignerFor accepted a %T the gateway refuses", key)
		}
	}
}

// MintHeader sets the header members it is given over token.Sign's (typ
// replaced, kid and alg kept, a new member added), keeps Mint's payload,
// and signs so that the key verifies it.
func TestMintHeaderSetsMembers(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s := testsupport.SignerFor(t, key, "idp-1")
	claims := testsupport.Claims("https://idp.test", "jane", start)
	raw := testsupport.MintHeader(t, s, map[string]any{"typ": "at+jwt", "cty": "x"}, claims)
	got := jwt.MapClaims{}
	tok, err := jwt.NewParser(jwt.WithValidMethods([]string{tenant.RS256}), jwt.WithTimeFunc(func() time.Time { return start })).
		ParseWithClaims(raw, got, func(*jwt.Token) (any, error) { return key.Public(), nil })
	if err != nil {
		t.Fatalf("does not verify: %v", err)
	}
	want := map[string]any{"alg": tenant.RS256, "kid": "idp-1", "typ": "at+jwt", "cty": "x"}
	if fmt.Sprint(tok.Header) != fmt.Sprint(want) {
		t.Fatalf("header %v, want %v", tok.Header, want)
	}
	if plain := testsupport.Mint(t, s, claims); strings.Split(plain, ".")[1] != strings.Split(raw, ".")[1] {
		t.Fatal("the payload differs from Mint's")
	}
	if got["jti"] != claims["jti"] || got["sub"] != "jane" {
		t.Fatalf("claims %v, want %v", got, claims)
	}
}

// signingKeys is one key of each type the gateway accepts for signing.
func signingKeys(t *testing.T) (*rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey) {
	t.Helper()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return rsaKey, ecKey, edKey
}

// FreePort never hands one port out twice, so two roles of one server
// (its HTTP and HTTPS ports) never end up on the same port.
func TestFreePortNeverRepeats(t *testing.T) {
	seen := map[int]bool{}
	for range 500 {
		p := testsupport.FreePort(t)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}
