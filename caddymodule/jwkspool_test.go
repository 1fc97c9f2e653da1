package caddymodule

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/embedgate/embedgate/internal/jwks"
	"github.com/embedgate/embedgate/internal/tenant"
)

// jwksServer is a loopback JWKS endpoint that counts fetches per path and
// answers with status for paths in failing.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	fetches map[string]int
	failing map[string]bool
}

func newJWKSServer(t *testing.T) *jwksServer {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":%q}]}`, base64.RawURLEncoding.EncodeToString(pub))
	s := &jwksServer{fetches: map[string]int{}, failing: map[string]bool{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.fetches[r.URL.Path]++
		fail := s.failing[r.URL.Path]
		s.mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches[path]
}

// A Caddy config reload provisions the new Handler before it cleans up the
// old one: a tenant whose jwks URL is unchanged keeps its cache (the IdP sees
// no second fetch), and the cache outlives the old Handler. A cache whose
// URL changed, or whose tenant is gone, is destructed (closed: it fetches no
// more) when the last Handler holding it is cleaned up.
func TestConfigReloadKeepsJWKSCache(t *testing.T) {
	srv := newJWKSServer(t)
	jwksTenant := func(id, path string) tenant.Config { return tenant.Config{ID: id, JWKS: srv.URL + path} }
	refs := func(_, path string) int { // one cache per URL, whatever the tenant
		n, _ := jwksPool.References(jwksKey{srv.URL + path})
		return n
	}
	type loaded struct {
		h      *Handler
		cancel context.CancelFunc
	}
	provision := func(tenants ...tenant.Config) loaded {
		t.Helper()
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		// Provision's JWKS part (the rest of Provision needs a running
		// Caddy's storage); Cleanup below is the real one.
		h := &Handler{Tenants: tenants, logger: zap.NewNop()}
		if _, err := h.provisionTenants(ctx, caddy.NewReplacer()); err != nil {
			cancel()
			t.Fatal(err)
		}
		return loaded{h, cancel}
	}
	unload := func(l loaded) { // as Caddy stops a config: cancel, then Cleanup
		t.Helper()
		l.cancel()
		if err := l.h.Cleanup(); err != nil {
			t.Fatal(err)
		}
	}
	cache := func(l loaded, id string) *jwks.Cache {
		t.Helper()
		tn, ok := l.h.tenants.load().ByID(id)
		if !ok || tn.Source == nil {
			t.Fatalf("tenant %q has no key source", id)
		}
		return tn.Source.(*jwks.Cache)
	}

	first := provision(jwksTenant("acme", "/jwks"))
	if srv.count("/jwks") != 1 || refs("acme", "/jwks") != 1 {
		t.Fatalf("first config: %d fetches, %d references; want 1 and 1", srv.count("/jwks"), refs("acme", "/jwks"))
	}
	acme := cache(first, "acme")

	// `embedgate reload` with the same config.
	second := provision(jwksTenant("acme", "/jwks"))
	unload(first)
	if n := srv.count("/jwks"); n != 1 {
		t.Fatalf("the reload refetched: %d fetches, want 1", n)
	}
	if cache(second, "acme") != acme || refs("acme", "/jwks") != 1 {
		t.Fatal("the reloaded config did not keep the cache, or holds it more than once")
	}
	if _, ok := acme.Lookup(t.Context(), "k1"); !ok {
		t.Fatal("the kept cache lost its keys")
	}

	// A reload that changes acme's URL: a new cache; the old one is closed
	// once the old config is cleaned up, not before.
	third := provision(jwksTenant("acme", "/jwks2"))
	if srv.count("/jwks2") != 1 || cache(third, "acme") == acme || refs("acme", "/jwks") != 1 {
		t.Fatal("a new URL did not get its own cache, or the old config lost its cache early")
	}
	unload(second)
	if refs("acme", "/jwks") != 0 {
		t.Fatal("the old URL's cache is still pooled")
	}
	if err := acme.Start(t.Context()); !errors.Is(err, jwks.ErrClosed) {
		t.Fatalf("the old URL's cache: Start = %v, want it closed", err)
	}
	if n := srv.count("/jwks"); n != 1 {
		t.Fatalf("the closed cache fetched: %d fetches of the old URL, want 1", n)
	}

	// A reload that removes acme altogether.
	acme2 := cache(third, "acme")
	fourth := provision(jwksTenant("globex", "/globex"))
	unload(third)
	if refs("acme", "/jwks2") != 0 || !errors.Is(acme2.Start(t.Context()), jwks.ErrClosed) {
		t.Fatal("a removed tenant's cache was not destructed")
	}
	unload(fourth)
	if refs("globex", "/globex") != 0 {
		t.Fatal("the last config's cache outlived its Cleanup")
	}
}

// A pooled cache reports its errors to the newest holder still holding it:
// the old holder stops receiving once it lets go, and with no holder left
// they are dropped (nothing keeps a cleaned-up Handler's logger alive).
func TestPooledJWKSErrorsGoToNewestHolder(t *testing.T) {
	srv := newJWKSServer(t)
	cfgs := []tenant.Config{{ID: "acme", JWKS: srv.URL + "/jwks"}}
	var mu sync.Mutex
	got := map[string][]string{}
	recorder := func(name string) func(string, error) {
		return func(id string, err error) {
			mu.Lock()
			got[name] = append(got[name], id+": "+err.Error())
			mu.Unlock()
		}
	}
	reports := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return len(got[name])
	}
	ctx, repl := t.Context(), caddy.NewReplacer()
	var oldRefs, newRefs jwksRefs
	reg, err := registryFromConfigs(ctx, cfgs, repl, recorder("old"), &oldRefs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registryFromConfigs(ctx, cfgs, repl, recorder("new"), &newRefs); err != nil {
		t.Fatal(err)
	}
	tn, _ := reg.ByID("acme")
	c := tn.Source.(*jwks.Cache)

	srv.mu.Lock()
	srv.failing["/jwks"] = true
	srv.mu.Unlock()
	_ = c.Start(ctx) // Start fetches whatever MinInterval says
	if reports("new") != 1 || reports("old") != 0 {
		t.Fatalf("reports %v, want one, to the newest holder", got)
	}
	if !strings.Contains(got["new"][0], "acme: ") || !strings.Contains(got["new"][0], "status 500") {
		t.Fatalf("report %q does not name the tenant and the failure", got["new"][0])
	}

	newRefs.release()
	_ = c.Start(ctx)
	if reports("old") != 1 || reports("new") != 1 {
		t.Fatalf("after the new holder let go: reports %v, want the old one to receive", got)
	}
	// The new holder was the newest, so releasing it left the old one as
	// the sole holder; releasing that destructs the cache.
	oldRefs.release()
	if err := c.Start(ctx); !errors.Is(err, jwks.ErrClosed) {
		t.Fatalf("Start after the last release = %v, want ErrClosed", err)
	}
	if reports("old") != 1 || reports("new") != 1 {
		t.Fatalf("a released cache still reported: %v", got)
	}
}
