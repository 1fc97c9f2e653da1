package caddymodule

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/redis/go-redis/v9"

	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/replay/replaytest"
)

func TestUnmarshalStore(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    string // JSON of the handler's store
		wantErr string
	}{
		{name: "memory", input: "store memory", want: `{"type":"memory"}`},
		{name: "redis, defaults stay out of the JSON", input: "store redis redis://127.0.0.1:6379", want: `{"type":"redis","url":"redis://127.0.0.1:6379"}`},
		{
			name: "redis with options",
			input: `store redis rediss://gate:{env.REDIS_PASSWORD}@redis.internal:6380/2 {
				key_prefix eg-prod:
				timeout 250ms
			}`,
			want: `{"type":"redis","url":"rediss://gate:{env.REDIS_PASSWORD}@redis.internal:6380/2","key_prefix":"eg-prod:","timeout":250000000}`,
		},
		{name: "redis url from env", input: "store redis {env.EMBEDGATE_REDIS_URL}", want: `{"type":"redis","url":"{env.EMBEDGATE_REDIS_URL}"}`},
		{name: "no type", input: "store", wantErr: "wrong argument count"},
		{name: "unknown type", input: "store etcd", wantErr: `unknown store "etcd"`},
		{name: "url without type, never echoed", input: "store redis://:hunter2@h:6379", wantErr: "the type comes before the url"},
		{name: "redis without url", input: "store redis", wantErr: "store redis takes one <url>"},
		{name: "redis two urls", input: "store redis redis://a redis://b", wantErr: "store redis takes one <url>"},
		{name: "redis unknown option", input: "store redis redis://a {\n db 2\n}", wantErr: `store redis: unrecognized subdirective "db"`},
		{name: "key_prefix without value", input: "store redis redis://a {\n key_prefix\n}", wantErr: "key_prefix takes exactly one argument"},
		{name: "bad timeout", input: "store redis redis://a {\n timeout soon\n}", wantErr: "timeout"},
		{name: "zero timeout", input: "store redis redis://a {\n timeout 0s\n}", wantErr: "must be positive"},
		{name: "memory with argument", input: "store memory big", wantErr: "store memory takes no arguments"},
		{name: "memory with options", input: "store memory {\n key_prefix x\n}", wantErr: "store memory takes no options"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("embed_session {\n" + tt.input + "\n}"))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("error repeats a password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			got, _ := json.Marshal(h.Store)
			if string(got) != tt.want {
				t.Errorf("JSON mismatch\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

func TestRedisConfigChecks(t *testing.T) {
	t.Setenv("EG_TEST_REDIS_URL", "redis://:hunter2@127.0.0.1:6379/1\n")
	rc, err := redisConfig(StoreConfig{Type: "redis", URL: "{env.EG_TEST_REDIS_URL}"})
	if err != nil {
		t.Fatal(err)
	}
	if rc.URL != "redis://:hunter2@127.0.0.1:6379/1" || rc.KeyPrefix != "embedgate:" || rc.Timeout != 150*time.Millisecond ||
		rc.ReloadEvery != time.Minute {
		t.Fatalf("resolved config: %+v", rc)
	}
	for _, c := range []struct {
		cfg  StoreConfig
		want string
	}{
		{StoreConfig{Type: "redis"}, "a url is required"},
		{StoreConfig{Type: "redis", URL: "{env.EG_TEST_UNSET_VAR}"}, "EG_TEST_UNSET_VAR} is empty"},
		{StoreConfig{Type: "redis", URL: "redis://h", KeyPrefix: "has space"}, "key_prefix"},
		{StoreConfig{Type: "redis", URL: "redis://h", Timeout: caddy.Duration(10 * time.Second)}, "at most 5s"},
		{StoreConfig{Type: "redis", URL: "redis://h", Timeout: caddy.Duration(-time.Second)}, "must be positive"},
		// Each reload SCANs the whole database: not a SCAN storm, and a
		// gap it closes is not open for hours.
		{StoreConfig{Type: "redis", URL: "redis://h", ReloadInterval: caddy.Duration(time.Second)}, "reload_interval 1s: 10s to 1h0m0s"},
		{StoreConfig{Type: "redis", URL: "redis://h", ReloadInterval: caddy.Duration(2 * time.Hour)}, "reload_interval 2h0m0s: 10s to 1h0m0s"},
		{StoreConfig{Type: "redis", URL: "redis://h", ReloadInterval: caddy.Duration(-time.Minute)}, "reload_interval -1m0s"},
	} {
		if _, err := redisConfig(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.cfg, err, c.want)
		}
	}
}

func TestProvisionStoreRejects(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	for _, c := range []struct {
		cfg  StoreConfig
		want string
	}{
		{StoreConfig{Type: "memory", URL: "redis://h"}, "apply to store redis only"},
		{StoreConfig{Type: "etcd"}, `unknown type "etcd"`},
		{StoreConfig{Type: "redis", URL: "http://:hunter2@h"}, "scheme"},
	} {
		h := &Handler{Store: &c.cfg, SessionTTL: caddy.Duration(time.Hour)}
		_, _, err := h.provisionStore(ctx)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.cfg, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error repeats a password: %v", err)
		}
		if len(h.pooled) != 0 {
			t.Errorf("%+v: a failed provision holds pool keys %q", c.cfg, h.pooled)
		}
	}
}

func postRevoke(t *testing.T, method, body string) (*httptest.ResponseRecorder, error) {
	t.Helper()
	w := httptest.NewRecorder()
	r := httptest.NewRequest(method, "/embed_session/revoke", strings.NewReader(body))
	return w, new(AdminRevoke).handleRevoke(w, r)
}

func apiStatus(err error) int {
	if ae, ok := err.(caddy.APIError); ok {
		return ae.HTTPStatus
	}
	return 0
}

// The admin route revokes through the running (memory) store; Cleanup's
// release leaves nothing for it to revoke.
func TestAdminRevokeMemory(t *testing.T) {
	if _, err := postRevoke(t, "POST", `{"tenant":"acme"}`); apiStatus(err) != http.StatusConflict {
		t.Fatalf("no handler running: %v, want 409", err)
	}
	rev := serveMemoryStore(t, "acme", "globex")
	before := time.Now().Add(-time.Second)
	jane := replay.SessionRef{ID: "s1", Tenant: "acme", Subject: "jane", IssuedAt: before}
	bob := replay.SessionRef{ID: "s2", Tenant: "acme", Subject: "bob", IssuedAt: before}
	other := replay.SessionRef{ID: "s3", Tenant: "globex", Subject: "jane", IssuedAt: before}

	for _, c := range []struct{ method, body string }{
		{"POST", `{}`},
		{"POST", `{"tenant":""}`},
		{"POST", `{"tenant":"acme","sub":"jane"}`}, // misspelt: must not revoke the whole tenant
		// Each of these decoded to "every session of acme": an unset
		// variable (null), an empty subject, a case variant after the real
		// subject (encoding/json matches names case-insensitively and the
		// last one wins), a repeated name.
		{"POST", `{"tenant":"acme","subject":null}`},
		{"POST", `{"tenant":"acme","subject":""}`},
		{"POST", `{"tenant":"acme","subject":"jane","Subject":""}`},
		{"POST", `{"tenant":"acme","subject":"jane","subject":""}`},
		{"POST", `{"Tenant":"acme","subject":"jane"}`},
		// A stray bracket after the object once skipped the null check.
		{"POST", `{"tenant":"acme","subject":null}}`},
		{"POST", `{"tenant":"acme","subject":""}]`},
		{"POST", `{"tenant":"acme"}}`},
		// No session can have a subject with a space at an end.
		{"POST", `{"tenant":"acme","subject":"jane "}`},
		{"POST", `{"tenant":"acme\u0000"}`},
		{"POST", `{"tenant":"acme","subject":"ja\u0001ne"}`},
		{"POST", `{"tenant":"acme","subject":"` + strings.Repeat("j", 5000) + `"}`},
		{"POST", `not json`},
		{"POST", `{"tenant":"acme"}{"tenant":"globex"}`},
		{"POST", `{"tenant":"` + strings.Repeat("a", 5000) + `"}`},
	} {
		if _, err := postRevoke(t, c.method, c.body); apiStatus(err) != http.StatusBadRequest {
			t.Errorf("%s %.40s: %v, want 400", c.method, c.body, err)
		}
	}
	if _, err := postRevoke(t, "GET", ""); apiStatus(err) != http.StatusMethodNotAllowed {
		t.Errorf("GET: %v, want 405", err)
	}
	if rev.Revoked(jane) || rev.Revoked(bob) {
		t.Fatal("a refused request revoked something")
	}

	w, err := postRevoke(t, "POST", `{"tenant":"acme","subject":"jane"}`)
	if err != nil {
		t.Fatal(err)
	}
	if !rev.Revoked(jane) || rev.Revoked(bob) || rev.Revoked(other) {
		t.Fatal("subject revoke: wrong sessions revoked")
	}
	var resp revokeResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	until, _ := time.Parse(time.RFC3339, resp.Until)
	if resp.Tenant != "acme" || resp.Subject != "jane" || len(resp.Stores) != 1 || resp.Stores[0].Type != "memory" ||
		until.Before(time.Now().Add(59*time.Minute)) {
		t.Fatalf("response: %s", w.Body)
	}
	if _, err := postRevoke(t, "POST", `{"tenant":"acme"}`); err != nil {
		t.Fatal(err)
	}
	if !rev.Revoked(bob) || rev.Revoked(other) {
		t.Fatal("tenant revoke: wrong sessions revoked")
	}
}

// A reload provisions the new handler before cleaning up the old one: the
// Redis client and mirror are shared, not reconnected, and closed only with
// the last user. The admin route revokes through Redis.
func TestProvisionRedisStorePooled(t *testing.T) {
	srv := replaytest.StartRedis(t)
	t.Setenv("EG_TEST_REDIS_URL", srv.URL())
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	cfg := &StoreConfig{Type: "redis", URL: "{env.EG_TEST_REDIS_URL}", KeyPrefix: "pool-test:"}
	old := &Handler{Store: cfg, SessionTTL: caddy.Duration(time.Hour)}
	_, rev1, err := old.provisionStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := &Handler{Store: cfg, SessionTTL: caddy.Duration(2 * time.Hour)}
	_, rev2, err := next.provisionStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	serveTenants(t, next, "acme")
	if rev1 != rev2 {
		t.Fatal("a reload with the same store config built a second client")
	}
	_ = old.Cleanup()
	r := rev2.(*replay.Redis)
	select {
	case <-r.Synced():
	default:
		t.Fatal("mirror not loaded")
	}

	w, err := postRevoke(t, "POST", `{"tenant":"acme","subject":"jane"}`)
	if err != nil {
		t.Fatal(err)
	}
	var resp revokeResponse
	_ = json.Unmarshal(w.Body.Bytes(), &resp)
	if len(resp.Stores) != 1 || resp.Stores[0] != (storeInfo{Type: "redis", Redis: srv.URL(), KeyPrefix: "pool-test:"}) {
		t.Fatalf("response: %s", w.Body)
	}
	until, _ := time.Parse(time.RFC3339, resp.Until)
	if until.Before(time.Now().Add(119 * time.Minute)) {
		t.Fatalf("revoked_until %s does not cover the longest session_ttl (2h)", resp.Until)
	}
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer raw.Close()
	if n, err := raw.Exists(context.Background(), "pool-test:rev:cut:acme:jane").Result(); err != nil || n != 1 {
		t.Fatalf("cutoff key not in Redis: %d %v", n, err)
	}

	_ = next.Cleanup()
	if err := r.Claim(context.Background(), "acme", "j", time.Minute); err == nil {
		t.Fatal("the client is still open after the last Cleanup")
	}
}

// A reload that changes another store setting (here the timeout; renewed
// TLS files do the same) builds a new Redis client, whose mirror used to
// start empty: with Redis down at that moment, the new config took every
// session signed out or revoked before it, until Redis came back. It now
// starts from the running store's revocations for the same Redis and prefix.
func TestReloadWithNewStoreSettingsKeepsRevocations(t *testing.T) {
	srv := replaytest.StartRedis(t)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	old := &Handler{Store: &StoreConfig{Type: "redis", URL: srv.URL(), KeyPrefix: "seed-test:"}}
	_, rev1, err := old.provisionStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = old.Cleanup() }()
	<-rev1.(*replay.Redis).Synced()
	until := time.Now().Add(time.Hour)
	if err := rev1.Revoke(context.Background(), "sid-out", until); err != nil {
		t.Fatal(err)
	}
	if err := rev1.RevokeAll(context.Background(), "acme", "jane", until); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	next := &Handler{Store: &StoreConfig{Type: "redis", URL: srv.URL(), KeyPrefix: "seed-test:", Timeout: caddy.Duration(time.Second)}}
	_, rev2, err := next.provisionStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = next.Cleanup() }()
	if rev2 == rev1 {
		t.Fatal("a new timeout reused the old client")
	}
	issued := time.Now().Add(-time.Minute)
	if !rev2.Revoked(replay.SessionRef{ID: "sid-out", Tenant: "acme", Subject: "bob", IssuedAt: issued}) {
		t.Error("a signed-out session is taken by the reloaded config while Redis is down")
	}
	if !rev2.Revoked(replay.SessionRef{ID: "sid-2", Tenant: "acme", Subject: "jane", IssuedAt: issued}) {
		t.Error("a revoked subject's session is taken by the reloaded config while Redis is down")
	}
	// Another prefix is another deployment: nothing is carried over.
	other := &Handler{Store: &StoreConfig{Type: "redis", URL: srv.URL(), KeyPrefix: "other:"}}
	_, rev3, err := other.provisionStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Cleanup() }()
	if rev3.Revoked(replay.SessionRef{ID: "sid-out", Tenant: "acme", Subject: "bob", IssuedAt: issued}) {
		t.Error("a store with another prefix started from this one's revocations")
	}
}

// A reload that rotates the Redis password is the same Redis: the new
// store's mirror starts from the running one's revocations. It used to
// match stores by the whole URL, password included, so with the new
// password wrong (or Redis down) the reloaded config took every session
// signed out before it.
func TestReloadWithRotatedPasswordKeepsRevocations(t *testing.T) {
	srv := replaytest.StartRedisWith(t, replaytest.RedisOptions{Args: []string{"--requirepass", "old-pw"}})
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	withPassword := func(pw string) string { return "redis://:" + pw + "@" + srv.Addr() + "/0" }
	old := &Handler{Store: &StoreConfig{Type: "redis", URL: withPassword("old-pw"), KeyPrefix: "rotate-test:"}}
	_, rev1, err := old.provisionStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = old.Cleanup() }()
	<-rev1.(*replay.Redis).Synced()
	if err := rev1.Revoke(context.Background(), "sid-out", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// The new password is not set on the server yet: the new store cannot load.
	next := &Handler{Store: &StoreConfig{Type: "redis", URL: withPassword("new-pw"), KeyPrefix: "rotate-test:"}}
	_, rev2, err := next.provisionStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = next.Cleanup() }()
	if rev2 == rev1 {
		t.Fatal("a new password reused the old client")
	}
	if !rev2.Revoked(replay.SessionRef{ID: "sid-out", Tenant: "acme", Subject: "bob", IssuedAt: time.Now().Add(-time.Minute)}) {
		t.Error("a signed-out session is taken after a reload that rotated the Redis password")
	}
}
