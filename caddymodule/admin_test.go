package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/gateway"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"

	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/replay/replaytest"
	"github.com/embedgate/embedgate/internal/tenant"
)

// A revocation made here must outlive the sessions of every instance that
// shares the Redis store, including one whose session_ttl is longer than
// any handler's in this process: the stored cutoff lasts MaxSessionTTL. The
// answer's revoked_until is the real end of what it covers here: now + the
// longest session_ttl serving the tenant (1h), not always now + 720h.
func TestAdminRevokeLastsMaxSessionTTL(t *testing.T) {
	srv := replaytest.StartRedis(t)
	t.Setenv("EG_TEST_REDIS_URL", srv.URL())
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	// This process runs a 1h session_ttl; a peer on the same Redis may run 720h.
	h := &Handler{Store: &StoreConfig{Type: "redis", URL: "{env.EG_TEST_REDIS_URL}", KeyPrefix: "span-test:"}, SessionTTL: caddy.Duration(time.Hour)}
	if _, _, err := h.provisionStore(ctx); err != nil {
		t.Fatal(err)
	}
	serveTenants(t, h, "acme")
	defer func() { _ = h.Cleanup() }()

	began := time.Now()
	w, err := postRevoke(t, "POST", `{"tenant":"acme","subject":"jane"}`)
	if err != nil {
		t.Fatal(err)
	}
	var resp revokeResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	until, err := time.Parse(time.RFC3339, resp.Until)
	if err != nil || until.Before(began.Add(time.Hour).Add(-time.Second)) || until.After(time.Now().Add(time.Hour)) {
		t.Fatalf("revoked_until %s, want about now + 1h (the session_ttl serving acme)", resp.Until)
	}
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer raw.Close()
	ttl, err := raw.PTTL(context.Background(), "span-test:rev:cut:acme:jane").Result()
	if err != nil || ttl < MaxSessionTTL+2*gateway.MaxLeeway-time.Minute {
		t.Fatalf("cutoff key lives %v (%v), want about %s: a peer's longer sessions would outlive it", ttl, err, MaxSessionTTL)
	}
}

// Validate refuses a session_ttl an admin revocation would not cover.
func TestValidateSessionTTLBound(t *testing.T) {
	for _, c := range []struct {
		ttl  time.Duration
		want string
	}{
		{DefaultSessionTTL, ""},
		{MaxSessionTTL, ""},
		{MaxSessionTTL + time.Second, "session_ttl 720h0m1s: at most 720h0m0s"},
		{365 * 24 * time.Hour, "at most 720h0m0s"},
	} {
		h := &Handler{SessionTTL: caddy.Duration(c.ttl)}
		h.setDefaults()
		err := h.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("session_ttl %s: %v, want %q", c.ttl, err, c.want)
		}
	}
}

// Validate refuses a leeway that would stretch every token's life: with
// leeway 24h, a 60-second token verified for a day after it was issued.
func TestValidateLeewayBound(t *testing.T) {
	for _, c := range []struct {
		leeway time.Duration
		want   string
	}{
		{DefaultLeeway, ""},
		{gateway.MaxLeeway, ""},
		{gateway.MaxLeeway + time.Second, "leeway 5m1s: at most 5m0s"},
		{24 * time.Hour, "leeway 24h0m0s: at most 5m0s"},
	} {
		h := &Handler{Leeway: caddy.Duration(c.leeway)}
		h.setDefaults()
		err := h.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("leeway %s: %v, want %q", c.leeway, err, c.want)
		}
	}
}

// Validate refuses a max_token_age no token can meet: exp and iat are
// whole seconds, so under one second the token API would mint tokens with
// exp = iat that its own exchange refuses.
func TestValidateMaxTokenAgeBound(t *testing.T) {
	for _, c := range []struct {
		age  time.Duration
		want string
	}{
		{DefaultMaxTokenAge, ""},
		{time.Second, ""},
		{time.Hour, ""},
		{500 * time.Millisecond, "max_token_age 500ms: at least 1s"},
		{time.Hour + time.Second, "max_token_age 1h0m1s: one-time tokens should live minutes at most"},
	} {
		h := &Handler{MaxTokenAge: caddy.Duration(c.age)}
		h.setDefaults()
		err := h.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("max_token_age %s: %v, want %q", c.age, err, c.want)
		}
	}
}

// serveTenants makes h look provisioned with the given tenants to the admin
// API (as provisionTenants does), until Cleanup.
func serveTenants(t *testing.T, h *Handler, ids ...string) {
	t.Helper()
	var cfgs []tenant.Config
	for _, id := range ids {
		cfgs = append(cfgs, tenant.Config{ID: id, Keys: []tenant.SecretConfig{{Secret: strings.Repeat("k", 32)}}})
	}
	reg, err := tenant.NewRegistry(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	set := &tenantSet{}
	set.current.Store(reg)
	h.tenants = set
	trackTenants(h)
}

// serveMemoryStore runs a handler with a memory store serving the given
// tenants, as the admin API sees it, until t ends; it returns the store.
func serveMemoryStore(t *testing.T, tenants ...string) replay.Revocations {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	h := &Handler{SessionTTL: caddy.Duration(time.Hour)}
	_, rev, err := h.provisionStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	serveTenants(t, h, tenants...)
	t.Cleanup(func() { _ = h.Cleanup() })
	return rev
}

// A mistyped tenant during an incident must not look like success: it is
// 404 unknown_tenant, and nothing is revoked.
func TestAdminRevokeUnknownTenant(t *testing.T) {
	rev := serveMemoryStore(t, "acme")
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/embed_session/revoke", strings.NewReader(`{"tenant":"nope"}`))
	err := new(AdminRevoke).handleRevoke(w, r)
	ae, ok := err.(caddy.APIError)
	if !ok || ae.HTTPStatus != http.StatusNotFound || ae.Message != "unknown_tenant" {
		t.Fatalf("unknown tenant: %#v, want 404 unknown_tenant", err)
	}
	if rev.Revoked(replay.SessionRef{ID: "s", Tenant: "nope", Subject: "x", IssuedAt: time.Now().Add(-time.Second)}) {
		t.Fatal("an unknown tenant's revoke was stored")
	}
}

// One store down during an incident (a second site's Redis) must not keep
// an admin revocation from the stores that are up: every store is tried,
// whatever the pool's (random) order, and the 503 names what failed and
// what holds the revocation.
func TestAdminRevokeTriesEveryStore(t *testing.T) {
	rev := serveMemoryStore(t, "acme")
	const downKey = "test:store-down"
	if _, _, err := statePool.LoadOrNew(downKey, func() (caddy.Destructor, error) { return unreachableStore{}, nil }); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = statePool.Delete(downKey) }()

	// The pool's order is a map's: several calls see both orders.
	for i := range 8 {
		subject := "jane" + strconv.Itoa(i)
		issued := time.Now().Add(-time.Second)
		_, err := postRevoke(t, "POST", `{"tenant":"acme","subject":"`+subject+`"}`)
		ae, ok := err.(caddy.APIError)
		if !ok || ae.HTTPStatus != http.StatusServiceUnavailable {
			t.Fatalf("call %d: %#v, want 503", i, err)
		}
		if !rev.Revoked(replay.SessionRef{ID: "s", Tenant: "acme", Subject: subject, IssuedAt: issued}) {
			t.Fatalf("call %d: the memory store was skipped because another store failed", i)
		}
		msg := ae.Err.Error()
		if !strings.Contains(msg, "store_unavailable") || !strings.Contains(msg, "1 of 2 stores") ||
			!strings.Contains(msg, "failed: redis redis://down.test:6379/0") || !strings.Contains(msg, "stored: [memory]") {
			t.Fatalf("call %d: %q, want the failed and the stored store named", i, msg)
		}
	}
}

// unreachableStore is a pooled store whose every write fails, as an unreachable Redis's.
type unreachableStore struct{}

func (unreachableStore) Destruct() error { return nil }
func (unreachableStore) parts() (replay.Store, replay.Revocations) {
	return nil, unreachableStore{}
}
func (unreachableStore) info() storeInfo {
	return storeInfo{Type: "redis", Redis: "redis://down.test:6379/0", KeyPrefix: "b:"}
}
func (unreachableStore) Revoke(context.Context, string, time.Time) error {
	return errors.New("dial: refused")
}
func (unreachableStore) RevokeAll(context.Context, string, string, time.Time) error {
	return errors.New("dial: refused")
}
func (unreachableStore) Revoked(replay.SessionRef) bool { return false }
