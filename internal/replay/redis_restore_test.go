package replay_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/replay/replaytest"
)

// TestRedisRestartWithoutDataKeepsRevocations is a regression test for
// revocations lost with Redis's data: restarted without persistence (and
// under Sentinel, its replica resynced from that empty master), Redis held
// no sign-out and no admin revocation any more. The instances running
// still refused those sessions from their mirrors, but never wrote them
// back, so an instance started afterwards took a signed-out session and
// every session of a revoked tenant again. A full resync now writes back
// what the mirror held and Redis lost.
func TestRedisRestartWithoutDataKeepsRevocations(t *testing.T) {
	srv := replaytest.StartRedis(t)
	prefix := uniquePrefix()
	events := newEventLog()
	a := newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: prefix, Report: events.report})
	// Both instances report to one log: whichever resyncs first writes a
	// key back, the other finds it there (restoreScript).
	b := newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: prefix, Report: events.report})
	<-a.Synced()
	<-b.Synced()
	ctx := context.Background()
	one, globex := testSessions()
	if err := a.Revoke(ctx, one.ID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := a.RevokeAll(ctx, "globex", "", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitRevoked(t, b, one, 2*time.Second)
	waitRevoked(t, b, globex, 2*time.Second)
	a.SetRewriteWindow(0) // not the recent-revocation rewrite: what restores them is the resync

	srv.Stop()
	srv.Start()
	raw := rawClient(t, srv)
	waitStored(t, raw, prefix+"rev:sid:"+one.ID, 15*time.Second, events)
	// An instance started now refuses both, from Redis.
	c := newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: prefix})
	<-c.Synced()
	waitRevoked(t, c, one, 5*time.Second)
	waitRevoked(t, c, globex, 5*time.Second)
	if ttl, err := raw.PTTL(ctx, prefix+"rev:sid:"+one.ID).Result(); err != nil || ttl < 59*time.Minute || ttl > time.Hour {
		t.Fatalf("restored with TTL %v (%v), want the rest of its hour", ttl, err)
	}
	events.waitFor(t, replay.EventRestored, 2*time.Second)
}

// TestRedisResyncRestoresNothingPresent: a resync that finds every
// revocation in Redis writes nothing back.
func TestRedisResyncRestoresNothingPresent(t *testing.T) {
	srv := replaytest.StartRedis(t)
	proxy := newProxy(t, srv.Addr())
	prefix := uniquePrefix()
	events := newEventLog()
	a := newRedis(t, replay.RedisConfig{URL: "redis://" + proxy.Addr(), KeyPrefix: prefix, Report: events.report})
	<-a.Synced()
	ctx := context.Background()
	if err := a.Revoke(ctx, "sid-1", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	proxy.Cut()
	proxy.Restore()
	events.waitFor(t, replay.EventResynced, 10*time.Second)
	if events.has(replay.EventRestored) {
		t.Fatalf("a resync restored revocations Redis had\n%s", events)
	}
}

// TestRedisClusterMasterRestartKeepsRevocations: on a Cluster without
// replicas, a master restarted without its data (its nodes.conf kept, so
// it takes its slots back empty) lost the sign-outs stored in its slots
// alone. The instances' subscription may live on another master and never
// drop, so what writes them back is the periodic full reload, which scans
// every master and restores, through the slot's owner, what the mirror
// holds and Redis lost.
func TestRedisClusterMasterRestartKeepsRevocations(t *testing.T) {
	c := replaytest.StartCluster(t, replaytest.ClusterOptions{})
	prefix := uniquePrefix()
	events := newEventLog()
	a := newRedis(t, replay.RedisConfig{URL: c.URL(), KeyPrefix: prefix, Report: events.report, ReloadEvery: time.Second})
	b := newRedis(t, replay.RedisConfig{URL: c.URL(), KeyPrefix: prefix})
	<-a.Synced()
	<-b.Synced()
	a.SetRewriteWindow(0) // what restores them is the reload
	b.SetRewriteWindow(0)
	ctx := context.Background()
	one, _ := testSessions()
	if err := a.Revoke(ctx, one.ID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitRevoked(t, b, one, 2*time.Second)
	key := prefix + "rev:sid:" + one.ID
	slot, err := c.Client().ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	owner := c.Owner(int(slot))
	owner.Stop()
	owner.Start()
	c.WaitOK(20 * time.Second)
	waitStored(t, c.Client(), key, 20*time.Second, events)
	// An instance started now refuses the session, from Redis.
	d := newRedis(t, replay.RedisConfig{URL: c.URL(), KeyPrefix: prefix})
	<-d.Synced()
	waitRevoked(t, d, one, 5*time.Second)
}

// waitStored waits until key is stored in Redis again after a restart.
func waitStored(t *testing.T, cl redis.Cmdable, key string, within time.Duration, events *eventLog) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(50 * time.Millisecond) {
		n, err := cl.Exists(context.Background(), key).Result()
		if err == nil && n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not back in Redis %s after the restart (%d, %v)\n%s", key, within, n, err, events)
		}
	}
}
