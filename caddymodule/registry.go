package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/embedgate/embedgate/internal/tenant"
)

// jwksKey names a JWKS cache, here and in jwksPool: its resolved URL.
// Tenants (and subject issuers) that name one key set share one cache, so
// its one-fetch-a-minute limit is the provider's, however many tenants
// point at it; a verifier still picks the tenant from the token's iss.
type jwksKey struct{ url string }

// errReleased refuses a tenants-file rebuild that finishes after Cleanup.
var errReleased = errors.New("embed_session: handler cleaned up; tenants not rebuilt")

// registryFromConfigs turns a handler's tenant configs into the tenant registry:
// {env.*} and {file.*} resolved in secrets (and in jwks URLs and api_keys;
// public key files take {env.*} only, resolvePath), every tenant validated, and a JWKS cache attached to
// each tenant that names one.
//
// With refs (the gateway's tenantSet), caches come from jwksPool: one that
// refs already holds under the same URL (a tenants-file rebuild), or that
// another Handler holds (a config reload), is reused as is. On success refs holds exactly the caches of the new registry and has
// given back the others (tenants gone, or whose URL changed); on error refs
// is untouched and nothing it did not hold stays taken. A nil refs
// (embed-inspect) makes every cache new and unpooled.
//
// Each new cache is fetched once before this returns (in parallel, each
// fetch bounded by jwks.DefaultTimeout, the wait by ctx). A failed first
// fetch is not a config error: it is reported to onJWKSError and the cache
// retries on use, at most once a minute. Provision and embed-inspect both
// build their registry here, so the CLI sees exactly the keys the gateway
// uses.
func registryFromConfigs(ctx context.Context, in []tenant.Config, repl *caddy.Replacer, onJWKSError func(tenantID string, err error), refs *jwksRefs) (*tenant.Registry, error) {
	if refs != nil && refs.released {
		return nil, errReleased
	}
	cfgs, err := resolveTenants(in, repl)
	if err != nil {
		return nil, err
	}
	for i := range cfgs {
		if cfgs[i].JWKS, err = resolveURL(repl, cfgs[i].JWKS); err != nil {
			return nil, fmt.Errorf("tenant %q: jwks: %w", cfgs[i].ID, err)
		}
		cfgs[i].APIKeys = append([]string(nil), cfgs[i].APIKeys...)
		for j := range cfgs[i].APIKeys {
			files := withCheckedFiles(repl)
			cfgs[i].APIKeys[j] = files.repl.ReplaceKnown(cfgs[i].APIKeys[j], "")
			if files.err != nil {
				return nil, fmt.Errorf("tenant %q: api_keys #%d: %w", cfgs[i].ID, j+1, files.err)
			}
		}
		if cfgs[i].SubjectIssuers, err = resolveSubjectIssuers(cfgs[i].SubjectIssuers, repl); err != nil {
			return nil, fmt.Errorf("tenant %q: %w", cfgs[i].ID, err)
		}
	}
	if onJWKSError == nil {
		onJWKSError = func(string, error) {}
	}
	b := &jwksBuild{refs: refs, onError: onJWKSError, next: map[jwksKey]*pooledJWKS{}}
	reg, err := tenant.NewRegistry(cfgs, tenant.WithKeySources(b.source))
	if err != nil {
		b.abort()
		return nil, err
	}
	b.commit()
	var wg sync.WaitGroup
	for _, c := range b.fresh {
		wg.Go(func() { _ = c.Start(ctx) }) // failures went to onJWKSError
	}
	wg.Wait()
	return reg, nil
}

// resolveSubjectIssuers is a copy of in with placeholders resolved in the
// jwks URLs and public key files, as for the tenant's own.
func resolveSubjectIssuers(in []tenant.SubjectIssuerConfig, repl *caddy.Replacer) ([]tenant.SubjectIssuerConfig, error) {
	if in == nil {
		return nil, nil
	}
	out := make([]tenant.SubjectIssuerConfig, len(in))
	for i, s := range in {
		var err error
		if s.JWKS, err = resolveURL(repl, s.JWKS); err != nil {
			return nil, fmt.Errorf("subject_issuer #%d: jwks: %w", i+1, err)
		}
		s.PublicKeys = append([]tenant.PublicKeyConfig(nil), s.PublicKeys...)
		for j := range s.PublicKeys {
			f, err := resolvePath(s.PublicKeys[j].File)
			if err != nil {
				return nil, fmt.Errorf("subject_issuer #%d: public_key #%d: %w", i+1, j+1, err)
			}
			s.PublicKeys[j].File = f
		}
		out[i] = s
	}
	return out, nil
}

// resolveURL resolves a key-set URL. It is fetched, so one placeholder
// may start it, as {env.NAME} (a base URL from the environment: its value
// names the host the URL goes to), and none may stand anywhere else: inside
// a URL, a {file.*} or {env.*} (in a tenants file generated from customers'
// input, say) would send the gateway's secrets to the URL's host, in the
// query or by DNS. One that resolves to nothing is an error rather than a
// URL gone empty (which would load as "no jwks").
func resolveURL(repl *caddy.Replacer, s string) (string, error) {
	if !strings.ContainsAny(s, "{}") {
		return s, nil
	}
	name, rest, ok := strings.Cut(strings.TrimPrefix(s, "{env."), "}")
	if !strings.HasPrefix(s, "{env.") || !ok || name == "" || strings.ContainsAny(name, "{") || strings.ContainsAny(rest, "{}") {
		return "", errors.New("a placeholder may only start the url, as {env.NAME}: elsewhere in a url it would send its value to the url's host")
	}
	return resolveSecret(repl, s)
}
