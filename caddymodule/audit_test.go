package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	zapobserver "go.uber.org/zap/zaptest/observer"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/session"
	"github.com/embedgate/embedgate/internal/tenant"
	"github.com/embedgate/embedgate/internal/testsupport"
)

// Behind a load balancer the audit trail must name the client, not the
// balancer: client_ip is Caddy's client IP (trusted_proxies applied),
// remote_ip the peer without its port, and path only the path.
func TestAuditNamesClientAsCaddyDoes(t *testing.T) {
	core, logs := zapobserver.New(zapcore.DebugLevel)
	h := &Handler{logger: zap.New(core)}
	r := httptest.NewRequest("GET", "https://portal.test/deals?x=1", nil)
	r.RemoteAddr = "10.0.0.5:54321"
	ctx := context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: "203.0.113.7"})
	r = r.WithContext(ctx)
	h.audit(r, gateway.Event{Kind: gateway.EventExchange, Tenant: "acme", Subject: "jane"})
	all := logs.All()
	if len(all) != 1 {
		t.Fatalf("%d lines", len(all))
	}
	m := all[0].ContextMap()
	if m["client_ip"] != "203.0.113.7" || m["remote_ip"] != "10.0.0.5" || m["path"] != "/deals" || m["uri"] != nil {
		t.Fatalf("fields %v", m)
	}
}

// store_unavailable is counted whatever the log level: the gateway tells
// the Observer, and the log line is only the audit's business.
func TestStoreErrorsCountedWithLoggingOff(t *testing.T) {
	initMetrics()
	h := &Handler{logger: zap.NewNop()}
	reg, err := tenant.NewRegistry([]tenant.Config{{ID: "acme", Keys: []tenant.SecretConfig{{Secret: strings.Repeat("s", 40)}}}})
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := session.NewSealer("__Host-s", [][]byte{[]byte(strings.Repeat("k", 32))})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Config{Tenants: func() *tenant.Registry { return reg }, Sealer: sealer,
		Replay: downStore{}, Revocations: replay.NewMemory(nil), CookieName: "__Host-s", Prefix: "/.embed", TokenParam: "embed_token",
		Audit: h.audit, Observer: newObserver(false)})
	if err != nil {
		t.Fatal(err)
	}
	tok := testsupport.Mint(t, testsupport.HS256(strings.Repeat("s", 40), ""), testsupport.Claims("acme", "jane", time.Now()))
	before := counterValue(t, metrics.storeErrors)
	r := httptest.NewRequest("POST", "https://portal.test/.embed/exchange", strings.NewReader(`{"token":"`+tok+`"}`))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	if err := gw.ServeHTTP(w, r, nil); err != nil || w.Code != 503 {
		t.Fatalf("exchange with the store down: %d %v %s", w.Code, err, w.Body)
	}
	if counterValue(t, metrics.storeErrors) != before+1 {
		t.Fatal("store error not counted with logging off")
	}
}

type downStore struct{}

func (downStore) Claim(context.Context, string, string, time.Duration) error {
	return errors.New("connection refused")
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// A tenant no page can embed is loadable (direct links work) but named in a
// warning at load, not passed over in silence.
func TestWarnUnframableTenant(t *testing.T) {
	core, logs := zapobserver.New(zapcore.WarnLevel)
	reg, err := tenant.NewRegistry([]tenant.Config{
		{ID: "framed", Keys: []tenant.SecretConfig{{Secret: strings.Repeat("k", 32)}}, FrameAncestors: []string{"https://a.test"}},
		{ID: "bare", Keys: []tenant.SecretConfig{{Secret: strings.Repeat("k", 32)}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	warnUnframable(zap.New(core), reg)
	all := logs.All()
	if len(all) != 1 || all[0].ContextMap()["tenant"] != "bare" || !strings.Contains(all[0].Message, "frame_ancestors") {
		t.Fatalf("warnings %v", all)
	}
}

// The token API's outcomes reach embedgate_tokens_issued_total and
// embedgate_token_refusals_total, with a tenant label only under
// metrics_per_tenant.
func TestTokenMetrics(t *testing.T) {
	initMetrics()
	issued := func(tenant string) float64 { return counterValue(t, metrics.tokensIssued.WithLabelValues(tenant)) }
	refused := func(why, tenant string) float64 {
		return counterValue(t, metrics.tokenRefusals.WithLabelValues(why, tenant))
	}
	i0, r0, p0 := issued(""), refused("api_key_invalid", ""), issued("acme")
	o := newObserver(false)
	o.Token("acme", "")
	o.Token("", reason.APIKeyInvalid)
	newObserver(true).Token("acme", "")
	if issued("") != i0+1 || refused("api_key_invalid", "") != r0+1 || issued("acme") != p0+1 {
		t.Fatalf("issued %v/%v, refused %v", issued(""), issued("acme"), refused("api_key_invalid", ""))
	}
}

// A rebuild refused because the config is being unloaded (errReleased) is
// not a bad tenants file: counting and logging it would put an error line,
// with a retry that never comes, into every reload's shutdown.
func TestTenantsFileReporterIgnoresUnload(t *testing.T) {
	initMetrics()
	core, logs := zapobserver.New(zapcore.DebugLevel)
	h := &Handler{logger: zap.New(core)}
	report := h.tenantsFileReporter("/etc/tenants.json", &tenantSet{})
	refusals := metrics.tenantReloads.WithLabelValues("error")
	before := counterValue(t, refusals)
	report(tenant.FileEvent{Kind: tenant.FileRefused, Err: fmt.Errorf("tenants: %w", errReleased), Retry: time.Second})
	if logs.Len() != 0 || counterValue(t, refusals) != before {
		t.Fatalf("unload reported: %d log lines, %v errors counted", logs.Len(), counterValue(t, refusals)-before)
	}
	report(tenant.FileEvent{Kind: tenant.FileRefused, Err: os.ErrNotExist, Retry: time.Second})
	if logs.Len() != 1 || counterValue(t, refusals) != before+1 || logs.All()[0].ContextMap()["retry_in"] == nil {
		t.Fatalf("refusal: %d log lines %v, %v errors counted; want one line with retry_in, one count", logs.Len(), logs.All(), counterValue(t, refusals)-before)
	}
}

// Session fixation from a sibling subdomain: without the __Host- prefix a
// browser takes a Domain= cookie another subdomain set, so a cookie_name
// without it is named in a warning at load (it still loads).
func TestWarnCookieWithoutHostPrefix(t *testing.T) {
	core, logs := zapobserver.New(zapcore.WarnLevel)
	warnCookiePrefix(zap.New(core), "__Host-embed_session")
	if logs.Len() != 0 {
		t.Fatalf("warned for a __Host- name: %v", logs.All())
	}
	warnCookiePrefix(zap.New(core), "embed_session")
	if all := logs.All(); len(all) != 1 || all[0].ContextMap()["cookie_name"] != "embed_session" || !strings.Contains(all[0].Message, "__Host-") {
		t.Fatalf("warnings %v", all)
	}
}
