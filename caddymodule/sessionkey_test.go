package caddymodule

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"

	"github.com/embedgate/embedgate/internal/session"
	"github.com/embedgate/embedgate/internal/tenant"
)

// Provisioning (which `embedgate validate` runs too) writes nothing: the
// generated session key is created in storage on first use, and a second
// instance on the same storage then opens the first one's cookies.
func TestSessionKeyCreatedOnFirstUse(t *testing.T) {
	st := &certmagic.FileStorage{Path: t.TempDir()}
	a := newLazySealer(st, "__Host-s")
	if _, err := loadSessionKey(context.Background(), st); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a key exists before first use: %v", err)
	}
	now := time.Now().Truncate(time.Second)
	v, err := a.Seal(&session.Session{ID: "0123456789abcdef", Tenant: "acme", Subject: "jane", IssuedAt: now, LastSeen: now, ExpiresAt: now.Add(time.Hour)}, "portal.test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadSessionKey(context.Background(), st); err != nil {
		t.Fatalf("first use did not store the key: %v", err)
	}
	b := newLazySealer(st, "__Host-s")
	s, _, err := b.OpenClaims(v, "portal.test")
	if err != nil || s.Subject != "jane" {
		t.Fatalf("second instance: %v %v", s, err)
	}
}

// A config error that needs no network (a negative leeway) is reported
// before Provision dials Redis or fetches a key set: no connection reaches
// either server.
func TestProvisionChecksBeforeNetwork(t *testing.T) {
	addr, hits := connCounter(t)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{
		Leeway:      caddy.Duration(-time.Second),
		Store:       &StoreConfig{Type: "redis", URL: "redis://" + addr + "/0"},
		Tenants:     []tenant.Config{{ID: "acme", JWKS: "http://" + addr + "/jwks.json"}},
		SessionKeys: []string{strings.Repeat("s", 32)},
	}
	err := h.Provision(ctx)
	if err == nil || !strings.Contains(err.Error(), "leeway") {
		t.Fatalf("Provision: %v, want the leeway error", err)
	}
	_ = h.Cleanup()
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d connection(s) before the config error was reported", n)
	}
}
