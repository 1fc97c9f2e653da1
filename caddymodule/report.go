package caddymodule

// How the core's events reach the operator: each core component reports
// typed events; here each becomes its metric (always) and its log line (at
// the level chosen here, built only when that level is enabled).

import (
	"errors"
	"net"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/tenant"
)

// storeReporter logs the Redis store's state changes. It looks the logger
// up per event, so a store pooled across config reloads logs under the
// logging config in force, not the one it was created under.
func storeReporter(target, prefix string) func(replay.Event) {
	return func(e replay.Event) {
		ce := caddy.Log().Named("http.handlers.embed_session").Check(storeEventLevel(e.Kind), e.Message())
		if ce == nil {
			return
		}
		fields := []zap.Field{zap.String("redis", target), zap.String("key_prefix", prefix)}
		if e.Err != nil {
			fields = append(fields, zap.Error(e.Err))
		}
		switch e.Kind {
		case replay.EventLoaded, replay.EventResynced, replay.EventMalformedKeys, replay.EventResyncIncomplete, replay.EventRewritten, replay.EventGapClosed,
			replay.EventUnwrittenDropped, replay.EventRestored:
			fields = append(fields, zap.Int("entries", e.Entries))
		case replay.EventNotLoaded:
			fields = append(fields, zap.Duration("waited", e.Waited))
		case replay.EventPolicyEvicts:
			fields = append(fields, zap.String("maxmemory_policy", e.Policy))
		default: // the message says it all
		}
		ce.Write(fields...)
	}
}

// storeEventLevel: errors for what fails requests or accepts revoked
// sessions, warnings for what an operator should fix, info for recovery.
func storeEventLevel(k replay.EventKind) zapcore.Level {
	switch k {
	case replay.EventNotLoaded, replay.EventUnavailable, replay.EventResyncIncomplete, replay.EventGapClosed,
		replay.EventUnwrittenDropped:
		return zapcore.ErrorLevel
	case replay.EventSubscriptionLost, replay.EventMalformedAnnouncement, replay.EventMalformedKeys,
		replay.EventPolicyUnknown, replay.EventPolicyEvicts, replay.EventSubscriptionStale,
		replay.EventMasterSwitched, replay.EventClaimsNotReturned, replay.EventRestored:
		return zapcore.WarnLevel
	case replay.EventRecovered, replay.EventLoaded, replay.EventResynced, replay.EventRewritten:
		return zapcore.InfoLevel
	}
	return zapcore.WarnLevel
}

// audit logs an event once, here at the boundary.
func (h *Handler) audit(r *http.Request, e gateway.Event) {
	level := zapcore.WarnLevel
	switch {
	case e.Kind != gateway.EventReject:
		level = zapcore.InfoLevel
	case e.Reason == reason.StoreUnavailable:
		level = zapcore.ErrorLevel
	case e.HotPath:
		level = zapcore.DebugLevel
	}
	// Check first: on the hot path the fields are built only when the
	// line is written.
	ce := h.logger.Check(level, e.Kind)
	if ce == nil {
		return
	}
	fields := []zap.Field{zap.String("tenant", e.Tenant)}
	if e.Subject != "" {
		fields = append(fields, zap.String("sub", e.Subject))
	}
	if e.JTI != "" {
		fields = append(fields, zap.String("jti_hash", e.JTI))
	}
	if e.Session != "" {
		fields = append(fields, zap.String("session_hash", e.Session))
	}
	if e.Reason != "" {
		fields = append(fields, zap.String("reason", string(e.Reason)))
	}
	if e.Detail != "" {
		fields = append(fields, zap.String("detail", e.Detail))
	}
	ce.Write(append(fields, requestFields(r)...)...)
}

// requestFields name the client as Caddy's access log does: client_ip
// honours trusted_proxies (behind a load balancer, the client, not the
// balancer), remote_ip is the peer address without its port.
func requestFields(r *http.Request) []zap.Field {
	remote, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		remote = r.RemoteAddr
	}
	client, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	if client == "" {
		client = remote
	}
	return []zap.Field{zap.String("client_ip", client), zap.String("remote_ip", remote), zap.String("path", r.URL.Path)}
}

// jwksError logs a JWKS fetch failure or refused key of a tenant.
func (h *Handler) jwksError(tenantID string, err error) {
	if h.logger != nil {
		h.logger.Warn("jwks", zap.String("tenant", tenantID), zap.Error(err))
	}
}

// tenantsFileReporter counts and logs what the tenants-file watcher saw:
// the reload counter first, whatever the log level.
func (h *Handler) tenantsFileReporter(path string, set *tenantSet) func(tenant.FileEvent) {
	return func(e tenant.FileEvent) {
		if errors.Is(e.Err, errReleased) {
			return // this config is being unloaded: nothing was refused
		}
		switch e.Kind {
		case tenant.FileApplied:
			metrics.tenantReloads.WithLabelValues("ok").Inc()
			h.logger.Info("tenants reloaded", zap.String("file", path), zap.Int("tenants", set.load().Len()))
		case tenant.FileRefused, tenant.FileUnreadable:
			metrics.tenantReloads.WithLabelValues("error").Inc()
			fields := []zap.Field{zap.String("file", path), zap.Error(e.Err)}
			if e.Retry > 0 {
				fields = append(fields, zap.Duration("retry_in", e.Retry))
			}
			h.logger.Error("tenants file refused; the previous tenants stay in force", fields...)
		case tenant.FileReadable:
			h.logger.Info("tenants file readable again; the tenants in force are unchanged", zap.String("file", path))
		}
	}
}
