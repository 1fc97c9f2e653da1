package caddymodule

import (
	"fmt"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/embedgate/embedgate/internal/tenant"
)

// tenantSet holds the live registry: inline tenants plus the tenants file,
// swapped whole when the file changes.
type tenantSet struct {
	current atomic.Pointer[tenant.Registry]
}

func (s *tenantSet) load() *tenant.Registry { return s.current.Load() }

// provisionTenants builds the first registry and, with a tenants file,
// starts a watcher that swaps in each valid new version. An invalid file at
// load is a config error; an invalid file later is logged and refused whole,
// and the previous registry stays in force.
func (h *Handler) provisionTenants(ctx caddy.Context, repl *caddy.Replacer) (*tenantSet, error) {
	var fileCfgs []tenant.Config
	var sum [32]byte
	path := ""
	if h.TenantsFile != "" {
		path = repl.ReplaceKnown(h.TenantsFile, "")
		var err error
		if fileCfgs, sum, err = tenant.ReadFile(path); err != nil {
			return nil, err
		}
	}
	build := func(fromFile []tenant.Config) (*tenant.Registry, error) {
		all := make([]tenant.Config, 0, len(h.Tenants)+len(fromFile))
		all = append(append(all, h.Tenants...), fromFile...)
		return buildRegistry(ctx, all, repl, h.jwksError)
	}
	reg, err := build(fileCfgs)
	if err != nil {
		return nil, err
	}
	if reg.Len() == 0 && path == "" {
		return nil, fmt.Errorf("embed_session: at least one tenant is required (tenant blocks or tenants_file)")
	}
	set := &tenantSet{}
	set.current.Store(reg)
	metrics.tenants.Set(float64(reg.Len()))
	if path == "" {
		return set, nil
	}
	w := &tenant.Watcher{
		Path: path,
		Apply: func(cfgs []tenant.Config) error {
			next, err := build(cfgs)
			if err != nil {
				return err
			}
			set.current.Store(next)
			metrics.tenants.Set(float64(next.Len()))
			h.logger.Info("tenants reloaded", zap.String("file", path), zap.Int("tenants", next.Len()))
			return nil
		},
		Report: func(err error) {
			if err == nil {
				metrics.tenantReloads.WithLabelValues("ok").Inc()
				return
			}
			metrics.tenantReloads.WithLabelValues("error").Inc()
			h.logger.Error("tenants file refused; the previous tenants stay in force", zap.String("file", path), zap.Error(err))
		},
	}
	w.Seed(sum)
	go w.Run(ctx) // ends when this config is unloaded
	return set, nil
}
