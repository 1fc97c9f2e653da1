package caddymodule

import (
	"context"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/embedgate/embedgate/internal/jwks"
	"github.com/embedgate/embedgate/internal/tenant"
)

// buildRegistry turns a handler's tenant configs into the tenant registry:
// {env.*} and {file.*} resolved in secrets (and in public key files, jwks
// URLs and api_keys), every tenant validated, and a JWKS cache attached to
// each tenant that names one, fetched once before it returns (in parallel,
// each fetch bounded by jwks.DefaultTimeout). A failed first fetch is not a
// config error: it is reported to onJWKSError and the cache retries on use,
// at most once a minute. Provision and embed-inspect both build their
// registry here, so the CLI sees exactly the keys the gateway uses.
func buildRegistry(ctx context.Context, in []tenant.Config, repl *caddy.Replacer, onJWKSError func(tenantID string, err error)) (*tenant.Registry, error) {
	cfgs, err := resolveTenants(in, repl)
	if err != nil {
		return nil, err
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
	var caches []*jwks.Cache
	reg, err := tenant.NewRegistry(cfgs, tenant.WithKeySources(func(id, url string) (tenant.KeySource, error) {
		c, err := jwks.New(jwks.Options{URL: url, OnError: func(err error) { onJWKSError(id, err) }})
		if err != nil {
			return nil, err
		}
		caches = append(caches, c)
		return c, nil
	}))
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	for _, c := range caches {
		wg.Go(func() { _ = c.Start(ctx) }) // failures went to onJWKSError
	}
	wg.Wait()
	return reg, nil
}

// jwksError logs a JWKS fetch failure or refused key of a tenant.
func (h *Handler) jwksError(tenantID string, err error) {
	if h.logger != nil {
		h.logger.Warn("jwks", zap.String("tenant", tenantID), zap.Error(err))
	}
}
