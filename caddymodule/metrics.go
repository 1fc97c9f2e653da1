package caddymodule

import (
	"errors"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/reason"
)

// Collectors live for the process, so counters keep counting across config
// reloads; each new config's registry (Caddy makes one per load) gets them
// registered again.
var metrics struct {
	once          sync.Once
	exchanges     *prometheus.CounterVec
	requests      *prometheus.CounterVec
	duration      prometheus.Histogram
	storeErrors   prometheus.Counter
	tenants       prometheus.Gauge
	tenantReloads *prometheus.CounterVec
	tokensIssued  *prometheus.CounterVec
	tokenRefusals *prometheus.CounterVec
}

func initMetrics() {
	metrics.once.Do(func() {
		const ns = "embedgate"
		metrics.exchanges = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "exchanges_total",
			Help: "Token exchanges by result (ok, rejected) and rejection reason.",
		}, []string{"result", "reason", "tenant"})
		metrics.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "requests_total",
			Help: "Requests on the session path by result (session_ok, no_session, refused).",
		}, []string{"result", "tenant"})
		metrics.duration = prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Name: "exchange_duration_seconds",
			Help:    "Wall time of token exchange requests.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
		})
		metrics.storeErrors = prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "store_errors_total",
			Help: "Replay or revocation store operations that failed (requests refused with store_unavailable).",
		})
		metrics.tenants = prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "tenants",
			Help: "Tenants in the current registries of all running embed_session handlers (a tenant in two handlers counts twice).",
		})
		metrics.tenantReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "tenant_reloads_total",
			Help: "Reloads of the tenants file by result (ok, error).",
		}, []string{"result"})
		metrics.tokensIssued = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "tokens_issued_total",
			Help: "Tokens issued by the token API.",
		}, []string{"tenant"})
		metrics.tokenRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "token_refusals_total",
			Help: "Token API calls refused, by reason (api_key_invalid, browser_request, bad_request).",
		}, []string{"reason", "tenant"})
	})
}

// registerMetrics adds the collectors to this config's registry.
func registerMetrics(ctx caddy.Context) error {
	initMetrics()
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{metrics.exchanges, metrics.requests, metrics.duration,
		metrics.storeErrors, metrics.tenants, metrics.tenantReloads, metrics.tokensIssued, metrics.tokenRefusals} {
		if err := reg.Register(c); err != nil {
			if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); !ok {
				return err
			}
		}
	}
	return nil
}

// tenantCounts feeds embedgate_tenants: the sum of the current registry
// sizes of the live handlers. A handler is tracked from provisionTenants
// until its Cleanup; during a config reload the new handlers are added
// before the old ones are dropped, so the gauge briefly counts both.
var tenantCounts struct {
	mu   sync.Mutex
	live map[*Handler]*tenantCount
}

// tenantCount is one handler's share of embedgate_tenants.
type tenantCount struct {
	n    int
	dead bool // dropped in Cleanup: a late watcher reload must not revive it
}

// trackTenants starts counting h's tenants (replacing an earlier count of
// the same handler, should it be provisioned twice).
func trackTenants(h *Handler) *tenantCount {
	initMetrics()
	tenantCounts.mu.Lock()
	defer tenantCounts.mu.Unlock()
	if tenantCounts.live == nil {
		tenantCounts.live = map[*Handler]*tenantCount{}
	}
	if old := tenantCounts.live[h]; old != nil {
		old.dead = true
	}
	c := &tenantCount{}
	tenantCounts.live[h] = c
	publishTenantsLocked()
	return c
}

// set records the handler's current registry size.
func (c *tenantCount) set(n int) {
	tenantCounts.mu.Lock()
	defer tenantCounts.mu.Unlock()
	if c.dead {
		return
	}
	c.n = n
	publishTenantsLocked()
}

// untrackTenants removes h's count; Cleanup calls it. A no-op for a handler
// that never got as far as its tenants.
func untrackTenants(h *Handler) {
	tenantCounts.mu.Lock()
	defer tenantCounts.mu.Unlock()
	c := tenantCounts.live[h]
	if c == nil {
		return
	}
	c.dead = true
	delete(tenantCounts.live, h)
	publishTenantsLocked()
}

// liveHandlers are the provisioned, not yet cleaned up handlers.
func liveHandlers() []*Handler {
	tenantCounts.mu.Lock()
	defer tenantCounts.mu.Unlock()
	out := make([]*Handler, 0, len(tenantCounts.live))
	for h := range tenantCounts.live {
		out = append(out, h)
	}
	return out
}

func publishTenantsLocked() {
	sum := 0
	for _, c := range tenantCounts.live {
		sum += c.n
	}
	metrics.tenants.Set(float64(sum))
}

// observer feeds the gateway's outcomes into the collectors. Without the
// per-tenant label the request counters are bound once, so the hot path is
// one atomic add.
type observer struct {
	perTenant bool
	sessionOK prometheus.Counter
	noSession prometheus.Counter
	refused   prometheus.Counter
}

func newObserver(perTenant bool) *observer {
	initMetrics()
	return &observer{
		perTenant: perTenant,
		sessionOK: metrics.requests.WithLabelValues(gateway.RequestSessionOK, ""),
		noSession: metrics.requests.WithLabelValues(gateway.RequestNoSession, ""),
		refused:   metrics.requests.WithLabelValues(gateway.RequestRefused, ""),
	}
}

func (o *observer) Exchange(tenant string, why reason.Reason) {
	result := "ok"
	if why != "" {
		result = "rejected"
	}
	if !o.perTenant {
		tenant = ""
	}
	metrics.exchanges.WithLabelValues(result, string(why), tenant).Inc()
}

func (o *observer) ExchangeDuration(d time.Duration) { metrics.duration.Observe(d.Seconds()) }

func (o *observer) Request(tenant, result string) {
	if o.perTenant {
		metrics.requests.WithLabelValues(result, tenant).Inc()
		return
	}
	switch result {
	case gateway.RequestSessionOK:
		o.sessionOK.Inc()
	case gateway.RequestNoSession:
		o.noSession.Inc()
	default:
		o.refused.Inc()
	}
}

// StoreError counts a request refused for a store failure.
func (o *observer) StoreError() { metrics.storeErrors.Inc() }

func (o *observer) Token(tenant string, why reason.Reason) {
	if !o.perTenant {
		tenant = ""
	}
	if why == "" {
		metrics.tokensIssued.WithLabelValues(tenant).Inc()
		return
	}
	metrics.tokenRefusals.WithLabelValues(string(why), tenant).Inc()
}

// Interface guards
var (
	_ gateway.Observer = (*observer)(nil)
)
