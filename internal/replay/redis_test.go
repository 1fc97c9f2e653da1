package replay_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/replay/replaytest"
)

var prefixSeq atomic.Int64

// uniquePrefix isolates one subtest's keys on a shared server.
func uniquePrefix() string { return fmt.Sprintf("test%d:", prefixSeq.Add(1)) }

// rawClient is a plain client for inspecting and shifting keys.
func rawClient(t *testing.T, srv *replaytest.RedisServer) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newRedis(t *testing.T, cfg replay.RedisConfig) *replay.Redis {
	t.Helper()
	r, err := replay.NewRedis(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// redisHarness runs the conformance suites against one server. Time moves
// on a fake clock (the mirror's expiries) and, in Redis, by shifting every
// key's TTL: PEXPIRE ttl-d, or DEL when ttl <= d. Cutoff instants are
// absolute and need no shift.
func redisHarness(t *testing.T) replaytest.Harness {
	srv := replaytest.StartRedis(t)
	raw := rawClient(t, srv)
	return replaytest.Harness{New: func(t *testing.T) (replay.Store, replay.Revocations, func(time.Duration)) {
		clock := replaytest.NewClock(time.Now())
		prefix := uniquePrefix()
		// A generous timeout: 200 concurrent claims under -race must not
		// turn into outages; the outage test checks the default.
		r := newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: prefix, Timeout: 5 * time.Second, Now: clock.Now})
		<-r.Synced()
		advance := func(d time.Duration) {
			clock.Advance(d)
			ctx := context.Background()
			iter := raw.Scan(ctx, 0, prefix+"*", 1000).Iterator()
			for iter.Next(ctx) {
				k := iter.Val()
				ttl, err := raw.PTTL(ctx, k).Result()
				if err != nil || ttl < 0 {
					continue
				}
				if ttl <= d {
					raw.Del(ctx, k)
				} else {
					raw.PExpire(ctx, k, ttl-d)
				}
			}
			if err := iter.Err(); err != nil {
				t.Fatal(err)
			}
		}
		return r, r, advance
	}}
}

func TestRedisStore(t *testing.T)       { replaytest.RunStore(t, redisHarness(t)) }
func TestRedisRevocations(t *testing.T) { replaytest.RunRevocations(t, redisHarness(t)) }

// The replay key has the documented layout and a TTL close to the one asked.
func TestRedisClaimKeyAndTTL(t *testing.T) {
	srv := replaytest.StartRedis(t)
	raw := rawClient(t, srv)
	r := newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: "eg:"})
	ctx := context.Background()
	for _, c := range []struct {
		tenant, jti, key string
		ttl, min, max    time.Duration
	}{
		{"acme", "j1", "eg:jti:acme:j1", 90 * time.Second, 89 * time.Second, 90 * time.Second},
		{"acme", "j2", "eg:jti:acme:j2", 1500 * time.Microsecond, time.Microsecond, 2 * time.Millisecond}, // rounded up, never 0
		{"acme", "j3", "eg:jti:acme:j3", 0, 900 * time.Millisecond, time.Second},                          // <= 0 is 1s
		{"a:b", "c", "eg:jti:a%3Ab:c", time.Minute, 59 * time.Second, time.Minute},                        // no collision with a + b:c
		{"a", "b:c", "eg:jti:a:b:c", time.Minute, 59 * time.Second, time.Minute},
	} {
		if err := r.Claim(ctx, c.tenant, c.jti, c.ttl); err != nil {
			t.Fatalf("%s: %v", c.key, err)
		}
		ttl, err := raw.PTTL(ctx, c.key).Result()
		if err != nil || ttl < c.min || ttl > c.max {
			t.Errorf("%s: PTTL = %v (%v), want in [%v, %v]", c.key, ttl, err, c.min, c.max)
		}
	}
}

// Redis stopped: Claim and Revoke fail closed as store_unavailable within
// the timeout, the outage counter moves, and revocations already mirrored
// still hold. Redis back on the same port: the same client recovers.
func TestRedisOutage(t *testing.T) {
	srv := replaytest.StartRedis(t)
	r := newRedis(t, replay.RedisConfig{URL: srv.URL()})
	<-r.Synced()
	ctx := context.Background()
	sess := replay.SessionRef{ID: "sid-1", Tenant: "acme", Subject: "jane", IssuedAt: time.Now()}
	if err := r.Revoke(ctx, sess.ID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	srv.Stop()

	const jti = "secret-jti-value"
	start := time.Now()
	err := r.Claim(ctx, "acme", jti, time.Minute)
	took := time.Since(start)
	if reason.Of(err) != reason.StoreUnavailable {
		t.Fatalf("claim during outage: %v, want store_unavailable", err)
	}
	if took > replay.DefaultRedisTimeout+100*time.Millisecond {
		t.Fatalf("claim took %v during outage, want about the %v timeout at most", took, replay.DefaultRedisTimeout)
	}
	if strings.Contains(err.Error(), jti) {
		t.Fatalf("error detail holds the jti: %v", err)
	}
	if reason.Of(r.Revoke(ctx, "sid-2", time.Now().Add(time.Hour))) != reason.StoreUnavailable {
		t.Fatal("revoke during outage did not fail as store_unavailable")
	}
	if r.Errors() < 2 {
		t.Fatalf("Errors() = %d, want >= 2", r.Errors())
	}
	if !r.Revoked(sess) {
		t.Fatal("a mirrored revocation was forgotten during the outage")
	}

	srv.Start()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := r.Claim(ctx, "acme", "after", time.Minute)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery 5s after Redis came back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A revocation on one instance reaches another within 1s over pub/sub.
func TestRedisPropagation(t *testing.T) {
	srv := replaytest.StartRedis(t)
	prefix := uniquePrefix()
	a := newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: prefix})
	b := newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: prefix})
	<-a.Synced()
	<-b.Synced()
	ctx := context.Background()
	iat := time.Now().Add(-time.Minute)
	one := replay.SessionRef{ID: "sid-1", Tenant: "acme", Subject: "jane", IssuedAt: iat}
	bob := replay.SessionRef{ID: "sid-2", Tenant: "acme", Subject: "bob", IssuedAt: iat}

	start := time.Now()
	if err := a.Revoke(ctx, one.ID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitRevoked(t, b, one, time.Second)
	t.Logf("Revoke reached the other instance in %v", time.Since(start))

	start = time.Now()
	if err := a.RevokeAll(ctx, "acme", "", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitRevoked(t, b, bob, time.Second)
	t.Logf("RevokeAll reached the other instance in %v", time.Since(start))
	if b.Revoked(replay.SessionRef{ID: "sid-3", Tenant: "acme", Subject: "bob", IssuedAt: time.Now().Add(time.Second)}) {
		t.Fatal("the mirror dated the cutoff from the message's arrival, not from the revocation")
	}

	// A third instance started later loads both from Redis.
	c := newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: prefix})
	<-c.Synced()
	if !c.Revoked(one) || !c.Revoked(bob) {
		t.Fatal("a new instance did not load existing revocations")
	}
}

func waitRevoked(t *testing.T, r *replay.Redis, s replay.SessionRef, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !r.Revoked(s) {
		if time.Now().After(deadline) {
			t.Fatalf("session %s not revoked within %v", s.ID, within)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// An instance cut off from Redis misses announcements; after it reconnects
// it rescans, so revocations made meanwhile hold there too.
func TestRedisResyncAfterReconnect(t *testing.T) {
	srv := replaytest.StartRedis(t)
	proxy := newProxy(t, srv.Addr())
	prefix := uniquePrefix()
	a := newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: prefix})
	logs := newLogSink()
	b := newRedis(t, replay.RedisConfig{URL: "redis://" + proxy.Addr(), KeyPrefix: prefix, Logger: slog.New(logs)})
	<-a.Synced()
	<-b.Synced()
	ctx := context.Background()
	iat := time.Now().Add(-time.Minute)
	one := replay.SessionRef{ID: "sid-1", Tenant: "acme", Subject: "jane", IssuedAt: iat}
	globex := replay.SessionRef{ID: "sid-2", Tenant: "globex", Subject: "bob", IssuedAt: iat}

	proxy.Cut()
	if err := a.Revoke(ctx, one.ID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := a.RevokeAll(ctx, "globex", "", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if b.Revoked(one) || b.Revoked(globex) {
		t.Fatal("the cut-off instance saw the revocations: the test proves nothing")
	}
	proxy.Restore()
	waitRevoked(t, b, one, 5*time.Second)
	waitRevoked(t, b, globex, time.Second)
	logs.waitFor(t, "revocations resynced after a reconnect", 2*time.Second)
}

// A policy that may evict keys is reported with the reason; noeviction is not.
func TestRedisMaxmemoryPolicyWarning(t *testing.T) {
	srv := replaytest.StartRedis(t)
	raw := rawClient(t, srv)
	ctx := context.Background()

	quiet := newLogSink()
	r := newRedis(t, replay.RedisConfig{URL: srv.URL(), Logger: slog.New(quiet)})
	<-r.Synced()
	time.Sleep(100 * time.Millisecond) // the check runs just after the load
	if quiet.has("maxmemory-policy") {
		t.Fatalf("warning under noeviction:\n%s", quiet)
	}

	if err := raw.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	logs := newLogSink()
	r2 := newRedis(t, replay.RedisConfig{URL: srv.URL(), Logger: slog.New(logs)})
	<-r2.Synced()
	line := logs.waitFor(t, "maxmemory-policy is not noeviction", 2*time.Second)
	for _, want := range []string{"allkeys-lru", "evict", "exchanged a second time", "WARN"} {
		if !strings.Contains(line, want) {
			t.Errorf("warning %q lacks %q", line, want)
		}
	}
}

// logSink is a slog.Handler that keeps formatted records.
type logSink struct {
	lines *logLines
	attrs []slog.Attr
}

type logLines struct {
	mu    sync.Mutex
	lines []string
}

func newLogSink() *logSink { return &logSink{lines: &logLines{}} }

func (l *logSink) store() *logLines { return l.lines }

func (l *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (l *logSink) WithGroup(string) slog.Handler            { return l }
func (l *logSink) WithAttrs(as []slog.Attr) slog.Handler {
	return &logSink{lines: l.store(), attrs: append(append([]slog.Attr(nil), l.attrs...), as...)}
}

func (l *logSink) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	for _, a := range l.attrs {
		b.WriteString(" " + a.String())
	}
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	st := l.store()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.lines = append(st.lines, b.String())
	return nil
}

// find returns the first line containing sub.
func (l *logSink) find(sub string) (string, bool) {
	st := l.store()
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, line := range st.lines {
		if strings.Contains(line, sub) {
			return line, true
		}
	}
	return "", false
}

func (l *logSink) has(sub string) bool { _, ok := l.find(sub); return ok }

func (l *logSink) String() string {
	st := l.store()
	st.mu.Lock()
	defer st.mu.Unlock()
	return strings.Join(st.lines, "\n")
}

func (l *logSink) waitFor(t *testing.T, sub string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if line, ok := l.find(sub); ok {
			return line
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q within %v; logs:\n%s", sub, within, l)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Started while Redis is down: NewRedis returns after StartWait, exchanges
// fail closed, and the mirror loads once Redis answers. Close returns
// promptly even with the subscription waiting on a read.
func TestRedisStartsDuringOutage(t *testing.T) {
	srv := replaytest.StartRedis(t)
	srv.Stop()
	logs := newLogSink()
	began := time.Now()
	r, err := replay.NewRedis(context.Background(), replay.RedisConfig{URL: srv.URL(), StartWait: 200 * time.Millisecond, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > time.Second {
		t.Fatalf("NewRedis blocked %v", took)
	}
	logs.waitFor(t, "revocations not loaded from Redis yet", time.Second)
	if reason.Of(r.Claim(context.Background(), "acme", "j", time.Minute)) != reason.StoreUnavailable {
		t.Fatal("claim without Redis did not fail closed")
	}
	srv.Start()
	select {
	case <-r.Synced():
	case <-time.After(5 * time.Second):
		t.Fatal("mirror not loaded 5s after Redis came up")
	}
	time.Sleep(50 * time.Millisecond) // let the subscription block on its next read
	began = time.Now()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 500*time.Millisecond {
		t.Fatalf("Close took %v", took)
	}
	_ = r.Close() // idempotent
}
