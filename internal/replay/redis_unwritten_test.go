package replay_test

import (
	"context"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/replay/replaytest"
)

// TestRedisUnwrittenRevocationsAreWrittenOnceRedisTakesThem is a
// regression test for sign-outs lost to an outage: a revocation Redis did
// not take held on the instance that made it, and was written again only
// if Redis came back within the 15 s rewrite window. After a longer
// partition the signed-out session, and every session of a tenant revoked
// by an admin, went on working on every other instance, and on instances
// started later. The rewrite window is switched off here, so what writes
// them is the keeping of unwritten revocations alone.
func TestRedisUnwrittenRevocationsAreWrittenOnceRedisTakesThem(t *testing.T) {
	srv := replaytest.StartRedis(t)
	proxy := newProxy(t, srv.Addr())
	prefix := uniquePrefix()
	events := newEventLog()
	a := newRedis(t, replay.RedisConfig{URL: "redis://" + proxy.Addr(), KeyPrefix: prefix, Report: events.report})
	b := newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: prefix})
	<-a.Synced()
	<-b.Synced()
	a.SetRewriteWindow(0)
	ctx := context.Background()
	one, globex := testSessions()

	proxy.Cut()
	if reason.Of(a.Revoke(ctx, one.ID, time.Now().Add(time.Hour))) != reason.StoreUnavailable {
		t.Fatal("a revocation Redis cannot take did not fail as store_unavailable")
	}
	if reason.Of(a.RevokeAll(ctx, "globex", "", time.Now().Add(time.Hour))) != reason.StoreUnavailable {
		t.Fatal("a cutoff Redis cannot take did not fail as store_unavailable")
	}
	if !a.Revoked(one) || !a.Revoked(globex) {
		t.Fatal("the revocations do not hold on the instance that made them")
	}
	if b.Revoked(one) || b.Revoked(globex) {
		t.Fatal("the other instance saw the revocations: the test proves nothing")
	}
	proxy.Restore()
	waitRevoked(t, b, one, 10*time.Second)
	waitRevoked(t, b, globex, time.Second)
	raw := rawClient(t, srv)
	if n, err := raw.Exists(ctx, prefix+"rev:sid:"+one.ID).Result(); err != nil || n != 1 {
		t.Fatalf("the sign-out is not stored in Redis (%d, %v): an instance started now would take the session", n, err)
	}
	if keys, err := raw.Keys(ctx, prefix+"rev:cut:*").Result(); err != nil || len(keys) != 1 {
		t.Fatalf("the cutoff is not stored in Redis (%v, %v)", keys, err)
	}
	if ev := events.waitFor(t, replay.EventRewritten, 2*time.Second); ev.Entries != 2 {
		t.Fatalf("EventRewritten with %d entries, want 2\n%s", ev.Entries, events)
	}
	// Written once: a later reconnect has nothing left to write.
	resynced := events.count(replay.EventResynced)
	proxy.Cut()
	proxy.Restore()
	for deadline := time.Now().Add(10 * time.Second); events.count(replay.EventResynced) == resynced; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no resync after the second reconnect\n%s", events)
		}
	}
	if n := events.count(replay.EventRewritten); n != 1 {
		t.Fatalf("%d EventRewritten, want 1\n%s", n, events)
	}
}

// TestRedisUnwrittenRevocationsSurviveAReload: a config reload replaces
// the store with one seeded from it; what the old one had not written yet
// reaches Redis from the new one (by adoptPending, or at the latest by
// the restore of its first full load: TestAdoptPending pins the first).
func TestRedisUnwrittenRevocationsSurviveAReload(t *testing.T) {
	srv := replaytest.StartRedis(t)
	proxy := newProxy(t, srv.Addr())
	prefix := uniquePrefix()
	cfg := replay.RedisConfig{URL: "redis://" + proxy.Addr(), KeyPrefix: prefix}
	old := newRedis(t, cfg)
	<-old.Synced()
	old.SetRewriteWindow(0)
	ctx := context.Background()
	proxy.Cut()
	if reason.Of(old.Revoke(ctx, "sid-1", time.Now().Add(time.Hour))) != reason.StoreUnavailable {
		t.Fatal("a revocation Redis cannot take did not fail as store_unavailable")
	}
	cfg.Seed = old
	fresh, err := replay.NewRedis(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fresh.Close() })
	fresh.SetRewriteWindow(0)
	_ = old.Close()
	proxy.Restore()
	raw := rawClient(t, srv)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if n, err := raw.Exists(ctx, prefix+"rev:sid:sid-1").Result(); err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the revocation the old store had not written was lost with it")
		}
	}
}

// TestRedisUnwrittenWrittenWhileSubscribed: Redis refuses a write while the
// subscription stays up (here min-replicas-to-write with no replica, as on
// a master that lost its replicas; also a write timed out on a busy
// server): nothing reconnects, so nothing resubscribes, and what writes
// the kept revocation is the follow loop's periodic pass alone.
func TestRedisUnwrittenWrittenWhileSubscribed(t *testing.T) {
	srv := replaytest.StartRedis(t)
	prefix := uniquePrefix()
	events := newEventLog()
	a := newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: prefix, Report: events.report})
	b := newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: prefix})
	<-a.Synced()
	<-b.Synced()
	a.SetRewriteWindow(0)
	ctx := context.Background()
	raw := rawClient(t, srv)
	if err := raw.ConfigSet(ctx, "min-replicas-to-write", "1").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.ConfigSet(context.Background(), "min-replicas-to-write", "0") })
	one, _ := testSessions()
	resynced := events.count(replay.EventResynced)
	if reason.Of(a.Revoke(ctx, one.ID, time.Now().Add(time.Hour))) != reason.StoreUnavailable {
		t.Fatal("a revocation Redis refused did not fail as store_unavailable")
	}
	if !a.Revoked(one) || b.Revoked(one) {
		t.Fatalf("revoked on a %v, on b %v; want a only", a.Revoked(one), b.Revoked(one))
	}
	if err := raw.ConfigSet(ctx, "min-replicas-to-write", "0").Err(); err != nil {
		t.Fatal(err)
	}
	waitRevoked(t, b, one, 10*time.Second)
	if n, err := raw.Exists(ctx, prefix+"rev:sid:"+one.ID).Result(); err != nil || n != 1 {
		t.Fatalf("the sign-out is not stored in Redis (%d, %v)", n, err)
	}
	if ev := events.waitFor(t, replay.EventRewritten, 2*time.Second); ev.Entries != 1 {
		t.Fatalf("EventRewritten with %d entries, want 1\n%s", ev.Entries, events)
	}
	if n := events.count(replay.EventResynced); n != resynced {
		t.Fatalf("%d resyncs meanwhile: the write came from a reconnect, not the periodic pass\n%s", n-resynced, events)
	}
}
