package caddymodule

import (
	"context"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/embedgate/embedgate/internal/jwks"
	"github.com/embedgate/embedgate/internal/tenant"
)

// A subject issuer's JWKS cache is built and pooled as a tenant's own is,
// keyed by the tenant and the issuer's jwks URL: kept across a reload,
// shared (one cache, one reference) with the tenant's own jwks when the
// URL is the same, and destructed with the last Handler holding it. The
// URL's placeholders are resolved first.
func TestSubjectIssuerJWKSPooled(t *testing.T) {
	srv := newJWKSServer(t)
	t.Setenv("EMBEDGATE_TEST_IDP", srv.URL)
	cfg := func(ownPath string) tenant.Config {
		return tenant.Config{
			ID: "acme", Keys: []tenant.SecretConfig{{Secret: strings.Repeat("s", 32)}}, APIKeys: []string{strings.Repeat("ab", 32)},
			JWKS: srv.URL + ownPath,
			SubjectIssuers: []tenant.SubjectIssuerConfig{
				{Issuer: "https://idp.test", JWKS: "{env.EMBEDGATE_TEST_IDP}/idp", Audiences: []string{"api"}},
				{Issuer: "https://same.test", JWKS: srv.URL + "/own", Audiences: []string{"api"}},
			},
		}
	}
	refs := func(path string) int {
		n, _ := jwksPool.References(jwksKey{srv.URL + path})
		return n
	}
	provision := func(c tenant.Config) (*Handler, context.CancelFunc) {
		t.Helper()
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		h := &Handler{Tenants: []tenant.Config{c}, logger: zap.NewNop()}
		if _, err := h.provisionTenants(ctx, caddy.NewReplacer()); err != nil {
			cancel()
			t.Fatal(err)
		}
		return h, cancel
	}
	issuerCache := func(h *Handler, i int) *jwks.Cache {
		tn, _ := h.tenants.load().ByID("acme")
		return tn.SubjectIssuers[i].Source.(*jwks.Cache)
	}

	first, stop1 := provision(cfg("/own"))
	tn, _ := first.tenants.load().ByID("acme")
	if srv.count("/idp") != 1 || srv.count("/own") != 1 || refs("/idp") != 1 || refs("/own") != 1 {
		t.Fatalf("fetches idp %d own %d, references idp %d own %d; want 1 each", srv.count("/idp"), srv.count("/own"), refs("/idp"), refs("/own"))
	}
	if issuerCache(first, 1) != tn.Source.(*jwks.Cache) {
		t.Fatal("the issuer sharing the tenant's jwks URL has a cache of its own")
	}
	if _, ok := issuerCache(first, 0).Lookup(t.Context(), "k1"); !ok {
		t.Fatal("the issuer's cache has no keys")
	}
	idp := issuerCache(first, 0)

	// A reload keeps it; a reload that moves the tenant's own jwks away
	// keeps the shared one for the issuer.
	second, stop2 := provision(cfg("/own2"))
	stop1()
	if err := first.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if issuerCache(second, 0) != idp || srv.count("/idp") != 1 || refs("/idp") != 1 || refs("/own") != 1 {
		t.Fatalf("after the reload: idp fetched %d times, references idp %d own %d", srv.count("/idp"), refs("/idp"), refs("/own"))
	}
	stop2()
	if err := second.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if refs("/idp") != 0 || refs("/own") != 0 || refs("/own2") != 0 {
		t.Fatal("a cache outlived the last Handler")
	}
	if err := idp.Start(t.Context()); err != jwks.ErrClosed {
		t.Fatalf("the issuer's cache after the last Cleanup: %v", err)
	}
}
