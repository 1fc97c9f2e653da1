package caddymodule

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/embedgate/embedgate/internal/tenant"
)

// tenantSet holds the live registry: inline tenants plus the tenants file,
// swapped whole when the file changes.
type tenantSet struct {
	current atomic.Pointer[tenant.Registry]

	mu   sync.Mutex // serializes rebuilds and their release
	jwks jwksRefs   // the pooled JWKS caches of current, reused by the next build
}

func (s *tenantSet) load() *tenant.Registry { return s.current.Load() }

// tenantsFile is a handler's tenants file as first read.
type tenantsFile struct {
	path    string          // resolved; "" without a tenants_file
	tenants []tenant.Config // its tenants
	version tenant.Version  // what the watcher is seeded with
}

// readTenantsFile resolves and reads h's tenants_file, if it has one. An
// unreadable or invalid file is a config error.
func (h *Handler) readTenantsFile() (tenantsFile, error) {
	if h.TenantsFile == "" {
		return tenantsFile{}, nil
	}
	path, err := resolvePath(h.TenantsFile)
	if err != nil {
		return tenantsFile{}, fmt.Errorf("tenants_file: %w", err)
	}
	f := tenantsFile{path: path}
	if f.tenants, f.version, err = tenant.ReadFile(f.path); err != nil {
		return tenantsFile{}, err
	}
	return f, nil
}

// freshRegistry builds the registry of h's inline tenants plus fromFile with
// new JWKS caches: embed-inspect's one look. Provision builds through the
// same registryReusingCaches, so the CLI verifies with exactly the gateway's
// tenants and keys.
func (h *Handler) freshRegistry(ctx context.Context, repl *caddy.Replacer, fromFile []tenant.Config, onJWKSError func(tenantID string, err error)) (*tenant.Registry, error) {
	return h.registryReusingCaches(ctx, repl, fromFile, onJWKSError, nil)
}

// registryReusingCaches is freshRegistry with its JWKS caches taken from
// jwksPool and held in refs, reusing those refs holds (see
// registryFromConfigs); a nil refs makes them new and unpooled.
func (h *Handler) registryReusingCaches(ctx context.Context, repl *caddy.Replacer, fromFile []tenant.Config, onJWKSError func(tenantID string, err error), refs *jwksRefs) (*tenant.Registry, error) {
	all := make([]tenant.Config, 0, len(h.Tenants)+len(fromFile))
	all = append(append(all, h.Tenants...), fromFile...)
	return registryFromConfigs(ctx, all, repl, onJWKSError, refs)
}

// buildAndSwap builds the registry of h's inline tenants plus fromFile, reusing
// the JWKS caches of the current registry, and swaps it in; on error the
// current registry and its caches stay.
func (s *tenantSet) buildAndSwap(ctx context.Context, h *Handler, repl *caddy.Replacer, fromFile []tenant.Config) (*tenant.Registry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	reg, err := h.registryReusingCaches(ctx, repl, fromFile, h.jwksError, &s.jwks)
	if err != nil {
		return nil, err
	}
	s.current.Store(reg)
	warnUnframable(h.logger, reg)
	return reg, nil
}

// warnUnframable names each tenant without frame_ancestors: it loads (direct
// links with login_url still work) but no page can embed it, since its
// responses carry frame-ancestors 'none'.
func warnUnframable(logger *zap.Logger, reg *tenant.Registry) {
	for _, id := range reg.IDs() {
		if t, _ := reg.ByID(id); len(t.FrameAncestors) == 0 {
			logger.Warn("tenant has no frame_ancestors: no page can embed it (frame-ancestors 'none'); direct links still work",
				zap.String("tenant", id))
		}
	}
}

// provisionTenants builds the first registry and, with a tenants file,
// starts a watcher that swaps in each valid new version. An invalid file at
// load is a config error; an invalid file later is logged and refused whole,
// and the previous registry stays in force.
func (h *Handler) provisionTenants(ctx caddy.Context, repl *caddy.Replacer) (*tenantSet, error) {
	file, err := h.readTenantsFile()
	if err != nil {
		return nil, err
	}
	set := &tenantSet{}
	reg, err := set.buildAndSwap(ctx, h, repl, file.tenants)
	if err != nil {
		return nil, err
	}
	path := file.path
	if reg.Len() == 0 && path == "" {
		return nil, fmt.Errorf("embed_session: at least one tenant is required (tenant blocks or tenants_file)")
	}
	h.tenants = set // before trackTenants publishes h to the admin API
	count := trackTenants(h)
	count.set(reg.Len())
	if path == "" {
		return set, nil
	}
	w := &tenant.Watcher{
		Path: path,
		Apply: func(cfgs []tenant.Config) error {
			next, err := set.buildAndSwap(ctx, h, repl, cfgs)
			if err != nil {
				return err
			}
			count.set(next.Len())
			return nil
		},
		Report: h.tenantsFileReporter(path, set),
	}
	// Seeded with the stat from before the read above: a write since then
	// (the build can wait up to 10s on JWKS) is applied on the first tick.
	w.Seed(file.version)
	go w.Run(ctx) // ends when this config is unloaded
	return set, nil
}
