package replay_test

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/replay/replaytest"
)

// Item 4: a claim that timed out but was applied afterwards (Redis paused
// past the timeout, as in a slow failover) does not burn the token: the
// failed exchange gives it back, so the client's retry of the same token
// after Retry-After succeeds, on any instance, exactly once.
func TestRedisClaimRetryAfterTimeout(t *testing.T) {
	srv := replaytest.StartRedis(t)
	raw := rawClient(t, srv)
	prefix := uniquePrefix()
	a := newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: prefix, Timeout: 100 * time.Millisecond})
	b := newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: prefix, Timeout: 100 * time.Millisecond})
	<-a.Synced()
	<-b.Synced()
	ctx := context.Background()
	const jti = "jti-retried"
	key := prefix + "jti:acme:" + jti

	// Write commands wait out the pause, then run: the claim times out
	// here and is applied 300ms later.
	if err := raw.Do(ctx, "CLIENT", "PAUSE", 300, "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	if err := a.Claim(ctx, "acme", jti, time.Minute); reason.Of(err) != reason.StoreUnavailable {
		t.Fatalf("claim during the pause: %v, want store_unavailable", err)
	}
	// What a client honouring Retry-After: 1 does, here on the other instance.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) && !strings.HasPrefix(raw.Get(ctx, key).Val(), "free") {
		time.Sleep(10 * time.Millisecond)
	}
	if v := raw.Get(ctx, key).Val(); !strings.HasPrefix(v, "free") {
		t.Fatalf("1s after the failed claim the key holds %q, want it given back", v)
	}
	if err := b.Claim(ctx, "acme", jti, time.Minute); err != nil {
		t.Fatalf("retry of the same token after the 503: %v, want success", err)
	}
	for _, r := range []*replay.Redis{a, b} {
		if err := r.Claim(ctx, "acme", jti, time.Minute); reason.Of(err) != reason.Replayed {
			t.Fatalf("a second use after the retry: %v, want replayed", err)
		}
	}
	if ttl := raw.PTTL(ctx, key).Val(); ttl <= 50*time.Second || ttl > time.Minute {
		t.Fatalf("the retried claim's key expires in %v, want about a minute", ttl)
	}
}

// A claim whose token another exchange already took is never given back:
// giving back only undoes this claim's own write.
func TestRedisGiveBackLeavesOtherClaims(t *testing.T) {
	srv := replaytest.StartRedis(t)
	raw := rawClient(t, srv)
	prefix := uniquePrefix()
	a := newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: prefix, Timeout: 100 * time.Millisecond})
	<-a.Synced()
	ctx := context.Background()
	key := prefix + "jti:acme:taken"
	if err := raw.Set(ctx, key, "c:someone-else", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.Do(ctx, "CLIENT", "PAUSE", 250, "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	if err := a.Claim(ctx, "acme", "taken", time.Minute); reason.Of(err) != reason.StoreUnavailable {
		t.Fatalf("claim during the pause: %v", err)
	}
	time.Sleep(600 * time.Millisecond) // the pause ends, the give-back runs
	if v := raw.Get(ctx, key).Val(); v != "c:someone-else" {
		t.Fatalf("another exchange's claim became %q", v)
	}
	if err := a.Claim(ctx, "acme", "taken", time.Minute); reason.Of(err) != reason.Replayed {
		t.Fatalf("claim of a token another exchange took: %v, want replayed", err)
	}
}

// Item 3: with Replicas, a claim waits for the replica's acknowledgement;
// without enough replicas it fails closed (and gives the token back).
// Logs the latency each adds, for the README.
func TestRedisReplicasWait(t *testing.T) {
	master := replaytest.StartRedis(t)
	replica := replaytest.StartRedisWith(t, replaytest.RedisOptions{Args: []string{"--replicaof", "127.0.0.1", strconv.Itoa(master.Port)}})
	// Counted by the master, not only linked: WAIT counts online replicas.
	waitInfo(t, master, "port="+strconv.Itoa(replica.Port)+",state=online")
	// And acknowledging: right after its sync a replica may not answer
	// WAIT yet, which is the condition this test is not about.
	waitAcknowledging(t, rawClient(t, master))
	prefix := uniquePrefix()
	ctx := context.Background()
	lat := map[int]time.Duration{}
	for _, n := range []int{0, 1} {
		// A generous timeout: this proves the acknowledgement, not a
		// latency, and a loaded CI machine can delay a replica's ACK past
		// the default's WAIT budget (a third of 150ms).
		r := newRedis(t, replay.RedisConfig{URL: master.URL(), KeyPrefix: prefix, Replicas: n, Timeout: time.Second})
		<-r.Synced()
		var took []time.Duration
		for i := range 400 {
			began := time.Now()
			if err := r.Claim(ctx, "acme", "jti-"+strconv.Itoa(n)+"-"+strconv.Itoa(i), time.Minute); err != nil {
				t.Fatalf("replicas %d: %v", n, err)
			}
			took = append(took, time.Since(began))
		}
		sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
		lat[n] = took[len(took)/2]
		t.Logf("replicas %d: claim p50 %v, p99 %v (one replica, loopback)", n, took[len(took)/2], took[len(took)*99/100])
		if n == 1 {
			// The replica has the key by the time Claim returns.
			key := prefix + "jti:acme:jti-1-399"
			if v := rawClient(t, replica).Get(ctx, key).Val(); !strings.HasPrefix(v, "c:") {
				t.Fatalf("replica holds %q for a claim acknowledged with replicas 1", v)
			}
		}
	}

	events := newEventLog()
	two := newRedis(t, replay.RedisConfig{URL: master.URL(), KeyPrefix: prefix, Replicas: 2, Report: events.report, Timeout: 600 * time.Millisecond})
	<-two.Synced()
	began := time.Now()
	err := two.Claim(ctx, "acme", "jti-needs-two", time.Minute)
	if reason.Of(err) != reason.StoreUnavailable || !strings.Contains(err.Error(), "1 of 2") {
		t.Fatalf("claim with too few replicas: %v, want store_unavailable naming 1 of 2", err)
	}
	if took := time.Since(began); took > 600*time.Millisecond {
		t.Fatalf("the failed claim took %v, more than the timeout", took)
	}
	if e, ok := events.find(replay.EventUnavailable); !ok || !strings.Contains(e.Err.Error(), "replicas") {
		t.Fatalf("no outage event naming the replicas:\n%s", events)
	}
	// Given back: with one replica asked for, the same token goes through.
	one := newRedis(t, replay.RedisConfig{URL: master.URL(), KeyPrefix: prefix, Replicas: 1})
	<-one.Synced()
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := one.Claim(ctx, "acme", "jti-needs-two", time.Minute)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the token of the failed claim was not given back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Revocations wait too.
	if err := two.Revoke(ctx, "sid-x", time.Now().Add(time.Hour)); reason.Of(err) != reason.StoreUnavailable {
		t.Fatalf("revocation with too few replicas: %v", err)
	}
	if !two.Revoked(replay.SessionRef{ID: "sid-x"}) {
		t.Fatal("a revocation the master took is not applied locally")
	}
	if _, err := replay.NewRedis(ctx, replay.RedisConfig{URL: master.URL(), Replicas: -1}); err == nil {
		t.Fatal("negative replicas accepted")
	}
}

func waitInfo(t *testing.T, s *replaytest.RedisServer, line string) {
	t.Helper()
	raw := rawClient(t, s)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(raw.Info(context.Background(), "replication").Val(), line) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q in INFO replication", s, line)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitAcknowledging waits until one replica of the server c talks to
// acknowledges a WAIT.
func waitAcknowledging(t *testing.T, c *redis.Client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// A write first: WAIT counts replicas that have this connection's
		// writes.
		_ = c.Set(context.Background(), "replicas-wait-probe", "1", time.Minute).Err()
		n, err := c.Do(context.Background(), "WAIT", 1, 200).Int()
		if err == nil && n >= 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replica acknowledges WAIT after 10s: %d %v", n, err)
		}
	}
}
