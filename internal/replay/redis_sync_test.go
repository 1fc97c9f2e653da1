package replay_test

import (
	"context"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/replay/replaytest"
)

// Item 1, without Sentinel's help: the pooled connections move to another
// server while the subscription stays on the old one, which still answers
// PING. The end-to-end probe notices within two health intervals; the
// store resubscribes where announcements are published and resyncs.
func TestRedisStaleSubscriptionIsReplaced(t *testing.T) {
	oldSrv, newSrv := replaytest.StartRedis(t), replaytest.StartRedis(t)
	proxy := newProxy(t, oldSrv.Addr())
	prefix := uniquePrefix()
	events := newEventLog()
	b := newRedis(t, replay.RedisConfig{URL: "redis://" + proxy.Addr(), KeyPrefix: prefix, Report: events.report})
	<-b.Synced()
	a := newRedis(t, replay.RedisConfig{URL: newSrv.URL(), KeyPrefix: prefix})
	<-a.Synced()
	ctx := context.Background()
	iat := time.Now().Add(-time.Minute)

	proxy.Switch(newSrv.Addr())
	switched := time.Now()
	first := replay.SessionRef{ID: "sid-1", Tenant: "acme", Subject: "jane", IssuedAt: iat}
	if err := a.Revoke(ctx, first.ID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitRevoked(t, b, first, 3*time.Second)
	t.Logf("a revocation published where the subscription no longer listens reached it %v after the switch", time.Since(switched))
	if e, ok := events.find(replay.EventSubscriptionStale); !ok || e.Err == nil {
		t.Fatalf("no stale-subscription event:\n%s", events)
	}
	next := replay.SessionRef{ID: "sid-2", Tenant: "acme", Subject: "jane", IssuedAt: iat}
	if err := a.Revoke(ctx, next.ID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitRevoked(t, b, next, time.Second)
}

// Probes are not revocations: a busy instance's probes leave the others'
// mirrors empty and their logs quiet.
func TestRedisProbesAreIgnored(t *testing.T) {
	srv := replaytest.StartRedis(t)
	prefix := uniquePrefix()
	events := newEventLog()
	a := newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: prefix})
	b := newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: prefix, Report: events.report})
	<-a.Synced()
	<-b.Synced()
	raw := rawClient(t, srv)
	sub := raw.Subscribe(context.Background(), prefix+"revocations")
	defer sub.Close()
	msg, err := sub.ReceiveMessage(context.Background()) // a's or b's probe, within a second
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("probe: %s", msg.Payload)
	time.Sleep(1500 * time.Millisecond) // more probes go by
	if events.has(replay.EventMalformedAnnouncement) || events.has(replay.EventSubscriptionStale) || events.has(replay.EventSubscriptionLost) {
		t.Fatalf("probes caused events:\n%s", events)
	}
}

// A cutoff written again (after a failover) or by an instance whose clock
// lags must not move back a later one in Redis: an instance that loads
// the key later must still refuse what the later cutoff covers.
func TestRedisCutoffKeepsLater(t *testing.T) {
	srv := replaytest.StartRedis(t)
	prefix := uniquePrefix()
	now := time.Now()
	ahead := newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: prefix, Now: func() time.Time { return now }})
	behind := newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: prefix, Now: func() time.Time { return now.Add(-time.Minute) }})
	<-ahead.Synced()
	<-behind.Synced()
	ctx := context.Background()
	if err := ahead.RevokeAll(ctx, "acme", "", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := behind.RevokeAll(ctx, "acme", "", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	late := newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: prefix})
	<-late.Synced()
	between := replay.SessionRef{ID: "s", Tenant: "acme", Subject: "jane", IssuedAt: now.Add(-30 * time.Second)}
	if !late.Revoked(between) {
		t.Fatal("an older cutoff replaced a later one in Redis")
	}
}
