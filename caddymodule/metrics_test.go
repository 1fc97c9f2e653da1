package caddymodule

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"github.com/embedgate/embedgate/internal/tenant"
)

// embedgate_tenants is the sum over the live handlers, follows each one's
// tenants file, and drops a handler at its Cleanup.
func TestTenantsGaugeSumsLiveHandlers(t *testing.T) {
	initMetrics()
	gauge := func() int {
		var m dto.Metric
		if err := metrics.tenants.Write(&m); err != nil {
			t.Fatal(err)
		}
		return int(m.GetGauge().GetValue())
	}
	base := gauge()
	cfg := func(id string) tenant.Config {
		return tenant.Config{ID: id, Keys: []tenant.SecretConfig{{Secret: strings.Repeat("s", 32)}}}
	}
	path := filepath.Join(t.TempDir(), "tenants.json")
	writeFile := func(n int) {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"id":"file-%d","keys":[{"secret":"%s"}]}`, i, strings.Repeat("f", 32))
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(`{"tenants":[`+b.String()+`]}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(2)

	provision := func(h *Handler) context.CancelFunc {
		t.Helper()
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		h.logger = zap.NewNop()
		if _, err := h.provisionTenants(ctx, caddy.NewReplacer()); err != nil {
			t.Fatal(err)
		}
		return cancel
	}
	inline := &Handler{Tenants: []tenant.Config{cfg("a")}}
	stop1 := provision(inline)
	defer stop1()
	fromFile := &Handler{Tenants: []tenant.Config{cfg("b")}, TenantsFile: path}
	stop2 := provision(fromFile)
	if got := gauge() - base; got != 4 { // 1 + (1 inline + 2 from the file)
		t.Fatalf("two handlers: gauge %d, want 4", got)
	}

	// A reload of one handler's file changes only its share.
	writeFile(5)
	deadline := time.Now().Add(3 * time.Second)
	for gauge()-base != 7 {
		if time.Now().After(deadline) {
			t.Fatalf("after reload: gauge %d, want 7", gauge()-base)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Cleanup drops a handler's share; a late set on it changes nothing.
	tenantCounts.mu.Lock()
	late := tenantCounts.live[fromFile]
	tenantCounts.mu.Unlock()
	stop2()
	if err := fromFile.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if got := gauge() - base; got != 1 {
		t.Fatalf("after Cleanup: gauge %d, want 1", got)
	}
	late.set(100)
	if got := gauge() - base; got != 1 {
		t.Fatalf("a set after Cleanup counted: gauge %d, want 1", got)
	}
	_ = inline.Cleanup()
	if got := gauge() - base; got != 0 {
		t.Fatalf("no handlers: gauge %d, want 0", got)
	}
	untrackTenants(&Handler{}) // never tracked: a no-op
}
