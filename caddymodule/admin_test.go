package caddymodule

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"

	"github.com/embedgate/embedgate/internal/replay/replaytest"
)

// A revocation made here must outlive the sessions of every instance that
// shares the Redis store, including one whose session_ttl is longer than
// any handler's in this process: the cutoff lasts MaxSessionTTL, not this
// process's longest session_ttl.
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
	if err != nil || until.Before(began.Add(MaxSessionTTL).Add(-time.Second)) || until.After(time.Now().Add(MaxSessionTTL)) {
		t.Fatalf("revoked_until %s, want about now + %s", resp.Until, MaxSessionTTL)
	}
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer raw.Close()
	ttl, err := raw.PTTL(context.Background(), "span-test:rev:cut:acme:jane").Result()
	if err != nil || ttl < MaxSessionTTL-time.Minute {
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
