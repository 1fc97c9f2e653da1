package caddymodule

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/embedgate/embedgate/internal/jwks"
	"github.com/embedgate/embedgate/internal/tenant"
)

// A tenants-file reload reuses the JWKS cache of every tenant whose jwks URL
// did not change: no refetch, so the per-cache refresh limit holds. A tenant
// whose URL changes gets a new cache, fetched once; a tenant that is gone
// loses its cache. The set holds one jwksPool reference per cache in use:
// a dropped cache is given back (and, unused elsewhere, stopped), and
// releaseJWKS gives back the rest.
func TestReloadReusesJWKSCaches(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":%q}]}`, base64.RawURLEncoding.EncodeToString(pub))
	var mu sync.Mutex
	fetches := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fetches[r.URL.Path]++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	refs := func(_, path string) int { // one cache per URL, whatever the tenant
		n, _ := jwksPool.References(jwksKey{srv.URL + path})
		return n
	}
	count := func(path string) int {
		mu.Lock()
		defer mu.Unlock()
		return fetches[path]
	}
	withJWKS := func(id, path string) tenant.Config { return tenant.Config{ID: id, JWKS: srv.URL + path} }

	h := &Handler{Tenants: []tenant.Config{withJWKS("inline", "/inline")}, logger: zap.NewNop()}
	ctx, repl := context.Background(), caddy.NewReplacer()
	set := &tenantSet{}
	defer set.releaseJWKS()
	reg, err := set.buildAndSwap(ctx, h, repl, []tenant.Config{withJWKS("a", "/a")})
	if err != nil {
		t.Fatal(err)
	}
	if count("/inline") != 1 || count("/a") != 1 {
		t.Fatalf("first build: fetches %v, want one per URL", fetches)
	}
	source := func(r *tenant.Registry, id string) tenant.KeySource {
		t.Helper()
		tn, ok := r.ByID(id)
		if !ok {
			t.Fatalf("tenant %q missing", id)
		}
		return tn.Source
	}
	inlineSrc, aSrc := source(reg, "inline"), source(reg, "a")

	// An unrelated tenant is added: nothing already known is refetched.
	reg, err = set.buildAndSwap(ctx, h, repl, []tenant.Config{withJWKS("a", "/a"), withJWKS("b", "/b")})
	if err != nil {
		t.Fatal(err)
	}
	if count("/inline") != 1 || count("/a") != 1 || count("/b") != 1 {
		t.Fatalf("after adding b: fetches %v, want one per URL", fetches)
	}
	if source(reg, "inline") != inlineSrc || source(reg, "a") != aSrc {
		t.Fatal("unchanged tenants got new caches")
	}
	if _, ok := source(reg, "b").Lookup(t.Context(), "k1"); !ok {
		t.Fatal("new tenant b has no keys")
	}
	if refs("inline", "/inline") != 1 || refs("a", "/a") != 1 || refs("b", "/b") != 1 {
		t.Fatal("the set does not hold exactly one reference per cache")
	}

	// a's URL changes: a new cache, fetched once; b is gone, so is its cache.
	reg, err = set.buildAndSwap(ctx, h, repl, []tenant.Config{withJWKS("a", "/a2")})
	if err != nil {
		t.Fatal(err)
	}
	if count("/a2") != 1 || count("/a") != 1 || count("/inline") != 1 {
		t.Fatalf("after a's URL changed: fetches %v", fetches)
	}
	if source(reg, "a") == aSrc || source(reg, "inline") != inlineSrc {
		t.Fatal("a kept its old cache, or inline lost its cache")
	}
	if len(set.jwks.held) != 2 || refs("a", "/a2") != 1 || refs("inline", "/inline") != 1 {
		t.Fatalf("caches %v, want inline and a only, one reference each", set.jwks.held)
	}
	if refs("a", "/a") != 0 || refs("b", "/b") != 0 {
		t.Fatal("a dropped cache is still in the pool")
	}
	if err := aSrc.(*jwks.Cache).Start(ctx); !errors.Is(err, jwks.ErrClosed) {
		t.Fatalf("a's old cache: Start = %v, want it closed", err)
	}

	// A refused build leaves the registry and its caches as they were.
	if _, err := set.buildAndSwap(ctx, h, repl, []tenant.Config{withJWKS("a", "/a3"), withJWKS("a", "/a3")}); err == nil {
		t.Fatal("duplicate tenant id accepted")
	}
	if count("/a3") != 0 || set.load() != reg || len(set.jwks.held) != 2 || refs("a", "/a3") != 0 || refs("a", "/a2") != 1 {
		t.Fatal("a refused build fetched, changed the live set or kept a reference")
	}

	// Without a set (embed-inspect), every cache is new.
	if _, err := h.freshRegistry(ctx, repl, []tenant.Config{withJWKS("a", "/a2")}, nil); err != nil {
		t.Fatal(err)
	}
	if count("/a2") != 2 || count("/inline") != 2 {
		t.Fatalf("freshRegistry: fetches %v, want a fresh fetch per URL", fetches)
	}
	if refs("a", "/a2") != 1 || refs("inline", "/inline") != 1 {
		t.Fatal("freshRegistry took pool references; nothing would give them back")
	}

	// Cleanup's release gives back every reference, and a rebuild that
	// finishes after it (a watcher tick racing Cleanup) holds nothing.
	set.releaseJWKS()
	if refs("a", "/a2") != 0 || refs("inline", "/inline") != 0 {
		t.Fatal("releaseJWKS left references")
	}
	if _, err := set.buildAndSwap(ctx, h, repl, []tenant.Config{withJWKS("a", "/a4")}); !errors.Is(err, errReleased) {
		t.Fatalf("build after release: %v, want errReleased", err)
	}
	if count("/a4") != 0 || refs("a", "/a4") != 0 || refs("inline", "/inline") != 0 {
		t.Fatal("a build after release fetched or took a reference")
	}
}
