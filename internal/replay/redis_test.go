package replay_test

import (
	"context"
	"fmt"
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
	return deploymentHarness(srv.URL(), rawClient(t, srv))
}

// deploymentHarness is redisHarness for any deployment: url for the store,
// raw (a plain, failover or cluster client) to shift the keys.
func deploymentHarness(url string, raw redis.UniversalClient) replaytest.Harness {
	return replaytest.Harness{New: func(t *testing.T) (replay.Store, replay.Revocations, func(time.Duration)) {
		clock := replaytest.NewClock(time.Now())
		prefix := uniquePrefix()
		// A generous timeout: 200 concurrent claims under -race must not
		// turn into outages; the outage test checks the default.
		r := newRedis(t, replay.RedisConfig{URL: url, KeyPrefix: prefix, Timeout: 5 * time.Second, Now: clock.Now})
		<-r.Synced()
		advance := func(d time.Duration) {
			clock.Advance(d)
			ctx := context.Background()
			for _, k := range scanAll(t, raw, prefix+"*") {
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
		}
		return r, r, advance
	}}
}

// scanAll lists the keys matching match, on every master of a Cluster.
func scanAll(t *testing.T, raw redis.UniversalClient, match string) []string {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	var keys []string
	scan := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, match, 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			keys = append(keys, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	var err error
	if cc, ok := raw.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, raw)
	}
	if err != nil {
		t.Fatal(err)
	}
	return keys
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
		mayBeGone        bool // the TTL is shorter than a loaded machine's round trip
	}{
		{"acme", "j1", "eg:jti:acme:j1", 90 * time.Second, 89 * time.Second, 90 * time.Second, false},
		// Rounded up, never PX 0 (which Redis refuses, so Claim would fail);
		// not the 1 s of a TTL <= 0 either, which would still be there.
		{"acme", "j2", "eg:jti:acme:j2", 1500 * time.Microsecond, time.Microsecond, 2 * time.Millisecond, true},
		{"acme", "j3", "eg:jti:acme:j3", 0, 900 * time.Millisecond, time.Second, false},   // <= 0 is 1s
		{"a:b", "c", "eg:jti:a%3Ab:c", time.Minute, 59 * time.Second, time.Minute, false}, // no collision with a + b:c
		{"a", "b:c", "eg:jti:a:b:c", time.Minute, 59 * time.Second, time.Minute, false},
	} {
		if err := r.Claim(ctx, c.tenant, c.jti, c.ttl); err != nil {
			t.Fatalf("%s: %v", c.key, err)
		}
		ttl, err := raw.PTTL(ctx, c.key).Result()
		if c.mayBeGone && err == nil && ttl == -2*time.Nanosecond { // go-redis: -2 for a key that is gone
			continue
		}
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
	events := newEventLog()
	r := newRedis(t, replay.RedisConfig{URL: srv.URL(), Report: events.report})
	<-r.Synced()
	ctx := context.Background()
	sess := replay.SessionRef{ID: "sid-1", Tenant: "acme", Subject: "jane", IssuedAt: time.Now()}
	if err := r.Revoke(ctx, sess.ID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	r.SetRecoverQuiet(100 * time.Millisecond)
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
	// A sign-out that failed still holds on the instance that made it: a
	// write whose reply was lost may have reached the others, and an
	// instance ignores its own announcement.
	if !r.Revoked(replay.SessionRef{ID: "sid-2", Tenant: "acme", Subject: "joe", IssuedAt: time.Now()}) {
		t.Fatal("a revocation that failed to store is not applied on the instance that made it")
	}
	if reason.Of(r.RevokeAll(ctx, "acme", "joe", time.Now().Add(time.Hour))) != reason.StoreUnavailable {
		t.Fatal("revoke-all during outage did not fail as store_unavailable")
	}
	if !r.Revoked(replay.SessionRef{ID: "sid-3", Tenant: "acme", Subject: "joe", IssuedAt: time.Now().Add(-time.Minute)}) {
		t.Fatal("a cutoff that failed to store is not applied on the instance that made it")
	}
	if n := events.count(replay.EventUnavailable); n != 1 {
		t.Fatalf("%d outage events for one outage, want 1:\n%s", n, events)
	}
	if e, _ := events.find(replay.EventUnavailable); e.Err == nil || strings.Contains(e.Err.Error(), jti) {
		t.Fatalf("outage event cause %v", e.Err)
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
	events.waitFor(t, replay.EventRecovered, 2*time.Second)
	if n := events.count(replay.EventRecovered); n != 1 {
		t.Fatalf("%d recovery events, want 1:\n%s", n, events)
	}
}

// twoInstances starts a Redis server and two synced stores sharing one
// key prefix on it, as two gateway instances of one deployment.
func twoInstances(t *testing.T) (a, b *replay.Redis, srv *replaytest.RedisServer, prefix string) {
	t.Helper()
	srv = replaytest.StartRedis(t)
	prefix = uniquePrefix()
	a = newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: prefix})
	b = newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: prefix})
	<-a.Synced()
	<-b.Synced()
	return a, b, srv, prefix
}

// A revocation on one instance reaches another within 1s over pub/sub.
func TestRedisPropagation(t *testing.T) {
	a, b, srv, prefix := twoInstances(t)
	ctx := context.Background()
	one, _ := testSessions()
	bob := replay.SessionRef{ID: "sid-2", Tenant: "acme", Subject: "bob", IssuedAt: one.IssuedAt}

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

// Two deployments on one Redis server under the same key_prefix, in
// different databases (staging in 1, production in 0), keep their
// sign-outs apart: pub/sub ignores the database, so a shared channel would
// have production apply staging's revocations. Redis delivers a
// subscriber's messages in the order they were published, so once
// production has applied an announcement published after staging's, it
// never received staging's.
func TestRedisDatabasesKeepRevocationsApart(t *testing.T) {
	srv := replaytest.StartRedis(t)
	prefix := uniquePrefix()
	store := func(db int) *replay.Redis {
		r := newRedis(t, replay.RedisConfig{URL: fmt.Sprintf("%s/%d", srv.URL(), db), KeyPrefix: prefix})
		<-r.Synced()
		return r
	}
	staging, stagingPeer := store(1), store(1)
	prod, prodPeer := store(0), store(0)
	ctx := context.Background()
	iat := time.Now().Add(-time.Minute)
	jane := replay.SessionRef{ID: "sid-jane", Tenant: "acme", Subject: "jane", IssuedAt: iat}
	marker := replay.SessionRef{ID: "sid-marker", Tenant: "other", Subject: "x", IssuedAt: iat}

	if err := staging.RevokeAll(ctx, "acme", "", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitRevoked(t, stagingPeer, jane, 2*time.Second)
	if err := prodPeer.Revoke(ctx, marker.ID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitRevoked(t, prod, marker, 2*time.Second)
	if prod.Revoked(jane) || prodPeer.Revoked(jane) {
		t.Fatal("production applied a sign-out made in staging's database")
	}
	marker2 := replay.SessionRef{ID: "sid-marker-2", Tenant: "other", Subject: "x", IssuedAt: iat}
	if err := staging.Revoke(ctx, marker2.ID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitRevoked(t, stagingPeer, marker2, 2*time.Second)
	if stagingPeer.Revoked(marker) {
		t.Fatal("staging applied a sign-out made in production's database")
	}
	// A production instance started now loads its own database only.
	if late := store(0); late.Revoked(jane) || !late.Revoked(marker) {
		t.Fatal("a new production instance did not load exactly its own database's revocations")
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
	events := newEventLog()
	b := newRedis(t, replay.RedisConfig{URL: "redis://" + proxy.Addr(), KeyPrefix: prefix, Report: events.report})
	<-a.Synced()
	<-b.Synced()
	ctx := context.Background()
	one, globex := testSessions()

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
	events.waitFor(t, replay.EventResynced, 2*time.Second)
}

// A policy that may evict keys is reported with the reason; noeviction is not.
func TestRedisMaxmemoryPolicyWarning(t *testing.T) {
	srv := replaytest.StartRedis(t)
	raw := rawClient(t, srv)
	ctx := context.Background()

	quiet := newEventLog()
	r := newRedis(t, replay.RedisConfig{URL: srv.URL(), Report: quiet.report})
	<-r.Synced()
	time.Sleep(100 * time.Millisecond) // the check runs just after the load
	if quiet.has(replay.EventPolicyEvicts) || quiet.has(replay.EventPolicyUnknown) {
		t.Fatalf("warning under noeviction:\n%s", quiet)
	}

	if err := raw.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	events := newEventLog()
	r2 := newRedis(t, replay.RedisConfig{URL: srv.URL(), Report: events.report})
	<-r2.Synced()
	e := events.waitFor(t, replay.EventPolicyEvicts, 2*time.Second)
	if e.Policy != "allkeys-lru" {
		t.Errorf("policy %q, want allkeys-lru", e.Policy)
	}
	for _, want := range []string{"not noeviction", "evict", "exchanged a second time"} {
		if !strings.Contains(e.Message(), want) {
			t.Errorf("warning %q lacks %q", e.Message(), want)
		}
	}
}

// eventLog records the store's events.
type eventLog struct {
	mu     sync.Mutex
	events []replay.Event
}

func newEventLog() *eventLog { return &eventLog{} }

func (l *eventLog) report(e replay.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

// find returns the first event of kind k.
func (l *eventLog) find(k replay.EventKind) (replay.Event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if e.Kind == k {
			return e, true
		}
	}
	return replay.Event{}, false
}

func (l *eventLog) has(k replay.EventKind) bool { _, ok := l.find(k); return ok }

func (l *eventLog) count(k replay.EventKind) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if e.Kind == k {
			n++
		}
	}
	return n
}

func (l *eventLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, e := range l.events {
		fmt.Fprintf(&b, "%d %s err=%v entries=%d\n", e.Kind, e.Message(), e.Err, e.Entries)
	}
	return b.String()
}

func (l *eventLog) waitFor(t *testing.T, k replay.EventKind, within time.Duration) replay.Event {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if e, ok := l.find(k); ok {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event %d (%s) within %v; events:\n%s", k, replay.Event{Kind: k}.Message(), within, l)
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
	events := newEventLog()
	began := time.Now()
	r, err := replay.NewRedis(context.Background(), replay.RedisConfig{URL: srv.URL(), StartWait: 200 * time.Millisecond, Report: events.report})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > time.Second {
		t.Fatalf("NewRedis blocked %v", took)
	}
	if e := events.waitFor(t, replay.EventNotLoaded, time.Second); e.Waited != 200*time.Millisecond {
		t.Errorf("waited %v", e.Waited)
	}
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

// testSessions are the sessions the revocation tests end, issued a minute
// ago: jane's of acme, by its id, and bob's of globex, by a cutoff of the
// tenant.
func testSessions() (one, globex replay.SessionRef) {
	iat := time.Now().Add(-time.Minute)
	return replay.SessionRef{ID: "sid-1", Tenant: "acme", Subject: "jane", IssuedAt: iat},
		replay.SessionRef{ID: "sid-2", Tenant: "globex", Subject: "bob", IssuedAt: iat}
}
