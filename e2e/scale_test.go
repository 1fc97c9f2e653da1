package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const tenantsFileSite = `
portal.gate.test:{{.HTTPSPort}} {
	tls internal
	embed_session {
		tenants_file {{.TenantsFile}}
	}
	reverse_proxy {{.Upstream}}
}
`

// writeTenantsFile replaces the file atomically, as deploy tools do.
func writeTenantsFile(t *testing.T, path string, body string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func tenantJSON(id, secret string) string {
	return fmt.Sprintf(`{"id":%q,"keys":[{"secret":%q}],"frame_ancestors":["https://%s.test"]}`, id, secret, id)
}

// waitFor polls cond until it holds or the deadline passes; it returns how
// long that took.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

func metricsText(t *testing.T, g *Gateway) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", g.AdminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// A tenants file is hot-reloaded: a valid change applies within 2 s, an
// invalid one is refused whole and the previous set stays, live sessions
// survive, and a removed tenant loses its sessions. The metrics show it.
func TestBinaryTenantsFileHotReloadAndMetrics(t *testing.T) {
	up := newUpstream(t, nil)
	path := filepath.Join(t.TempDir(), "tenants.json")
	writeTenantsFile(t, path, `{"tenants":[`+tenantJSON("acme", acmeSecret)+`]}`)
	g := startGateway(t, tenantsFileSite, map[string]any{"Upstream": up.Listener.Addr().String(), "TenantsFile": path}, GatewayOptions{})

	acme := sessionCookie(t, exchangeJSON(t, g, "portal.gate.test", mint(t, "acme", acmeSecret, "jane@acme.com", nil)))
	if resp := exchangeJSON(t, g, "portal.gate.test", mint(t, "globex", globexSecret, "joe@globex.test", nil)); resp.StatusCode != 401 {
		t.Fatalf("globex before it exists: %d", resp.StatusCode)
	}

	// Add globex: applies within 2 s.
	writeTenantsFile(t, path, `{"tenants":[`+tenantJSON("acme", acmeSecret)+`,`+tenantJSON("globex", globexSecret)+`]}`)
	took := waitFor(t, 2*time.Second, "new tenant applied", func() bool {
		return exchangeJSON(t, g, "portal.gate.test", mint(t, "globex", globexSecret, "joe@globex.test", nil)).StatusCode == 204
	})
	t.Logf("tenant added, effective after %s", took.Round(10*time.Millisecond))
	if r, _ := get(t, g, "portal.gate.test", "/x", nil, acme); r.StatusCode != 200 {
		t.Fatalf("live session lost over a reload: %d", r.StatusCode)
	}

	// An invalid file is refused whole: the error names tenant and field; both tenants still work.
	writeTenantsFile(t, path, `{"tenants":[`+tenantJSON("acme", acmeSecret)+`,`+tenantJSON("globex", globexSecret)+`,{"id":"short","keys":[{"secret":"too-short"}]}]}`)
	waitFor(t, 3*time.Second, "refusal logged", func() bool {
		return strings.Contains(strings.ReplaceAll(g.Logs(), `\"`, `"`), `tenant "short": key #1: secret is 9 bytes`)
	})
	if resp := exchangeJSON(t, g, "portal.gate.test", mint(t, "globex", globexSecret, "joe@globex.test", nil)); resp.StatusCode != 204 {
		t.Fatalf("previous set not kept: %d", resp.StatusCode)
	}

	// Remove acme: its session is refused on its next request.
	writeTenantsFile(t, path, `{"tenants":[`+tenantJSON("globex", globexSecret)+`]}`)
	waitFor(t, 2*time.Second, "tenant removed", func() bool {
		r, _ := get(t, g, "portal.gate.test", "/x", nil, acme)
		return r.StatusCode == 401
	})

	m := metricsText(t, g)
	for _, want := range []string{
		`embedgate_tenants 1`,
		`embedgate_tenant_reloads_total{result="ok"} 2`,
		`embedgate_tenant_reloads_total{result="error"} 1`,
		`embedgate_exchanges_total{reason="",result="ok",tenant=""}`,
		// At least one: the wait for the reload may retry before it lands.
		`embedgate_exchanges_total{reason="unknown_tenant",result="rejected",tenant=""} `,
		`embedgate_requests_total{result="session_ok",tenant=""}`,
		`embedgate_requests_total{result="no_session",tenant=""}`,
		`embedgate_exchange_duration_seconds_count`,
		`embedgate_store_errors_total 0`,
	} {
		mustContain(t, m, want)
	}
}
