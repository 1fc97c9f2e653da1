package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/embedgate/embedgate/internal/tenant"
)

// TestTenantsSharingAJWKSURLShareItsFetchLimit stops a fetch flood of an
// identity provider that several tenants trust: README promises "never
// more than one fetch a minute, whatever the trigger, so tokens with
// made-up kids cannot flood your provider". The limit lives in a
// jwks.Cache, and caches were pooled by (tenant, URL): N tenants on one key
// set had N caches and N allowances, so the provider saw N fetches at every
// load and, with tokens naming each tenant and a made-up kid, N a minute.
// One URL is one cache now.
func TestTenantsSharingAJWKSURLShareItsFetchLimit(t *testing.T) {
	srv := newJWKSServer(t)
	const n = 20
	var cfgs []tenant.Config
	for i := range n {
		cfgs = append(cfgs, tenant.Config{ID: fmt.Sprintf("t%d", i), JWKS: srv.URL + "/shared"})
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{Tenants: cfgs, logger: zap.NewNop()}
	if _, err := h.provisionTenants(ctx, caddy.NewReplacer()); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	reg := h.tenants.load()
	caches := map[tenant.KeySource]bool{}
	for _, id := range reg.IDs() {
		tn, _ := reg.ByID(id)
		caches[tn.Source] = true
	}
	if got := srv.count("/shared"); got != 1 || len(caches) != 1 {
		t.Fatalf("%d tenants on one JWKS URL: the provider saw %d fetches at load, from %d caches each with its own one-a-minute limit; want 1 fetch and one shared limit", n, got, len(caches))
	}
}

// TestFailedRebuildKeepsReportingTenant: a tenants-file rebuild that fails
// leaves the holder's registry as it was (registryFromConfigs: "on error
// refs is untouched"), so a shared cache's failures must still be logged
// under a tenant of that registry, not under one of the refused file.
func TestFailedRebuildKeepsReportingTenant(t *testing.T) {
	srv := newJWKSServer(t)
	url := srv.URL + "/jwks"
	var mu sync.Mutex
	var ids []string
	onError := func(id string, _ error) { mu.Lock(); ids = append(ids, id); mu.Unlock() }
	ctx, repl := t.Context(), caddy.NewReplacer()
	var refs jwksRefs
	defer refs.release()
	if _, err := registryFromConfigs(ctx, []tenant.Config{{ID: "acme", JWKS: url}}, repl, onError, &refs); err != nil {
		t.Fatal(err)
	}
	// The new file names a new tenant first on the same URL, then fails.
	bad := []tenant.Config{{ID: "typo", JWKS: url}, {ID: "typo", JWKS: url}}
	if _, err := registryFromConfigs(ctx, bad, repl, onError, &refs); err == nil {
		t.Fatal("a duplicate tenant id loaded")
	}
	p := refs.held[jwksKey{url}]
	if p == nil {
		t.Fatal("the running registry's cache was given back by a failed rebuild")
	}
	p.report(errors.New("status 500"))
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 1 || ids[0] != "acme" {
		t.Fatalf("a failure of the running registry's cache was reported under %q, a tenant of the refused rebuild; want \"acme\"", ids)
	}
}
