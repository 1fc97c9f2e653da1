package caddymodule

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	zapobserver "go.uber.org/zap/zaptest/observer"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/tenant"
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

// store_unavailable is counted whatever the log level: metrics never
// depend on logging.
func TestStoreErrorsCountedWithLoggingOff(t *testing.T) {
	initMetrics()
	h := &Handler{logger: zap.NewNop()}
	before := counterValue(t, metrics.storeErrors)
	h.audit(httptest.NewRequest("GET", "/", nil), gateway.Event{Kind: gateway.EventReject, Reason: reason.StoreUnavailable})
	if counterValue(t, metrics.storeErrors) != before+1 {
		t.Fatal("store error not counted with logging off")
	}
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
