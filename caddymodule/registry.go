package caddymodule

import (
	"context"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/embedgate/embedgate/internal/jwks"
	"github.com/embedgate/embedgate/internal/tenant"
)

// jwksKey names a JWKS cache: the tenant and its resolved jwks URL.
type jwksKey struct{ tenant, url string }

// jwksCaches are the JWKS caches of one registry, by tenant and URL. A
// buildAndSwap hands in the caches of the registry it replaces, so a tenant whose
// jwks URL did not change keeps its cache: its keys, its refresh schedule
// and its MinInterval limit.
type jwksCaches map[jwksKey]*jwks.Cache

// registryFromConfigs turns a handler's tenant configs into the tenant registry:
// {env.*} and {file.*} resolved in secrets (and in public key files, jwks
// URLs and api_keys), every tenant validated, and a JWKS cache attached to
// each tenant that names one. A cache found in prev under the same tenant id
// and URL is reused as is; each new cache is fetched once before this
// returns (in parallel, each fetch bounded by jwks.DefaultTimeout). A nil
// prev means every cache is new. A failed first fetch is not a config error:
// it is reported to onJWKSError and the cache retries on use, at most once a
// minute. The returned caches are those of the new registry only (caches of
// tenants that are gone, or whose URL changed, are dropped); on error prev
// is untouched and no new cache was fetched. Provision and embed-inspect
// both build their registry here, so the CLI sees exactly the keys the
// gateway uses.
func registryFromConfigs(ctx context.Context, in []tenant.Config, repl *caddy.Replacer, onJWKSError func(tenantID string, err error), prev jwksCaches) (*tenant.Registry, jwksCaches, error) {
	cfgs, err := resolveTenants(in, repl)
	if err != nil {
		return nil, nil, err
	}
	for i := range cfgs {
		cfgs[i].JWKS = repl.ReplaceKnown(cfgs[i].JWKS, "")
		cfgs[i].APIKeys = append([]string(nil), cfgs[i].APIKeys...)
		for j := range cfgs[i].APIKeys {
			cfgs[i].APIKeys[j] = repl.ReplaceKnown(cfgs[i].APIKeys[j], "")
		}
	}
	if onJWKSError == nil {
		onJWKSError = func(string, error) {}
	}
	next := jwksCaches{}
	var fresh []*jwks.Cache
	reg, err := tenant.NewRegistry(cfgs, tenant.WithKeySources(func(id, url string) (tenant.KeySource, error) {
		k := jwksKey{id, url}
		if c, ok := prev[k]; ok {
			next[k] = c
			return c, nil
		}
		c, err := jwks.New(jwks.Options{URL: url, OnError: func(err error) { onJWKSError(id, err) }})
		if err != nil {
			return nil, err
		}
		next[k] = c
		fresh = append(fresh, c)
		return c, nil
	}))
	if err != nil {
		return nil, nil, err
	}
	var wg sync.WaitGroup
	for _, c := range fresh {
		wg.Go(func() { _ = c.Start(ctx) }) // failures went to onJWKSError
	}
	wg.Wait()
	return reg, next, nil
}

// jwksError logs a JWKS fetch failure or refused key of a tenant.
func (h *Handler) jwksError(tenantID string, err error) {
	if h.logger != nil {
		h.logger.Warn("jwks", zap.String("tenant", tenantID), zap.Error(err))
	}
}
