package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/session"
	"github.com/embedgate/embedgate/internal/tenant"
	"github.com/embedgate/embedgate/internal/testsupport"
)

// TestReplayAcrossHandlersWithDifferentLeeway: two handlers share one
// store (two sites in a process share the memory store; instances share a
// Redis; a reload may raise leeway). The jti was kept for exp + 2·(the
// claiming handler's leeway), 1 s here, while the other, with leeway 5m,
// accepts the token until exp + 5m: a used token was exchanged again once
// the store forgot it.
func TestReplayAcrossHandlersWithDifferentLeeway(t *testing.T) {
	clock := testsupport.NewClock(t0)
	reg, err := tenant.NewRegistry(tenantConfigs())
	if err != nil {
		t.Fatal(err)
	}
	mem := replay.NewMemory(clock.Now)
	t.Cleanup(mem.Close)
	sealer, err := session.NewSealer(cookieName, [][]byte{[]byte(sealSecret)})
	if err != nil {
		t.Fatal(err)
	}
	handler := func(leeway time.Duration) *gateway.Gateway {
		g, err := gateway.New(gateway.Config{
			Tenants: func() *tenant.Registry { return reg }, Sealer: sealer, Replay: mem, Revocations: mem,
			SessionTTL: sessionTTL, IdleTimeout: idle, MaxTokenAge: 120 * time.Second, Leeway: leeway,
			CookieName: cookieName, Prefix: "/.embed", TokenParam: "embed_token", Now: clock.Now,
			Audit: func(*http.Request, gateway.Event) {},
		})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	narrow, wide := handler(time.Second), handler(gateway.MaxLeeway)
	tok := testsupport.Mint(t, testsupport.HS256(acmeSecret, ""), testsupport.Claims("acme", subject, clock.Now()))
	exchange := func(g *gateway.Gateway) int {
		w := httptest.NewRecorder()
		if err := g.ServeHTTP(w, exchangeReq(tok), func(http.ResponseWriter, *http.Request) error { return nil }); err != nil {
			t.Fatal(err)
		}
		return w.Code
	}
	if c := exchange(narrow); c != http.StatusNoContent {
		t.Fatalf("first exchange: %d", c)
	}
	// Past exp + 2s (the narrow handler's window), inside exp + 5m (the
	// wide one's), and at its very end.
	for _, at := range []time.Duration{testsupport.Lifetime + 10*time.Second, testsupport.Lifetime + gateway.MaxLeeway} {
		clock.Set(t0.Add(at))
		if c := exchange(wide); c != http.StatusUnauthorized {
			t.Fatalf("%s after iat: a used token got %d from a handler with a larger leeway", at, c)
		}
	}
}
