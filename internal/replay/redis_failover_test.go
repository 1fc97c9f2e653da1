package replay_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/replay/replaytest"
)

// moveSubscriptions sends new connections to target and closes only the
// relayed subscriptions: the pooled connections stay on the old server.
// It is what a Sentinel failover looks like when the store's watcher moved
// the subscription (+switch-master) before go-redis moved its pool.
func (p *proxy) moveSubscriptions(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = target
	for in, out := range p.routed {
		if p.subs[in] {
			_ = in.Close()
			_ = out.Close()
		}
	}
}

// movePool closes the relayed connections that are not subscriptions, so
// the pool redials (to the current target).
func (p *proxy) movePool() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for in, out := range p.routed {
		if !p.subs[in] {
			_ = in.Close()
			_ = out.Close()
		}
	}
}

// TestRedisReloadWhenPoolCatchesUp: the resync after a resubscribe reads
// through the connection pool, which during a failover may still be on the
// old master while the subscription already listens on the new one. When
// the pool moved to the new master after that load but before the first
// end-to-end probe, the probe succeeded, the subscription was kept, and
// the mirror was never loaded again: a revocation written on the new
// master before the subscription got there (by an instance that never saw
// a master change, such as one started after the failover, so it never
// rewrites it) was missed on this instance until the session expired. Now
// the mirror is loaded again when that first probe comes back.
//
// The pool moves from the EventResynced report (which runs between the
// load and the first probe), to pin that interleaving; in production it is
// go-redis's own sentinel watcher moving the pool at any moment.
func TestRedisReloadWhenPoolCatchesUp(t *testing.T) {
	oldSrv, newSrv := replaytest.StartRedis(t), replaytest.StartRedis(t)
	p := newProxy(t, oldSrv.Addr())
	prefix := uniquePrefix()
	events := newEventLog()
	var armed atomic.Bool
	report := func(e replay.Event) {
		events.report(e)
		if e.Kind == replay.EventResynced && armed.CompareAndSwap(true, false) {
			p.movePool() // the pool follows the subscription a moment later
		}
	}
	b := newRedis(t, replay.RedisConfig{URL: "redis://" + p.Addr(), KeyPrefix: prefix, Report: report})
	<-b.Synced()
	// An instance already on the new master (started after the failover).
	a := newRedis(t, replay.RedisConfig{URL: newSrv.URL(), KeyPrefix: prefix})
	<-a.Synced()
	ctx := context.Background()
	victim := replay.SessionRef{ID: "sid-victim", Tenant: "acme", Subject: "jane", IssuedAt: time.Now().Add(-time.Minute)}
	if err := a.Revoke(ctx, victim.ID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	armed.Store(true)
	p.moveSubscriptions(newSrv.Addr())
	events.waitFor(t, replay.EventResynced, 5*time.Second)
	// Pool and subscription now agree on the new master, which holds the
	// revocation; give the store several health intervals.
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) && !b.Revoked(victim) {
		time.Sleep(20 * time.Millisecond)
	}
	if !b.Revoked(victim) {
		t.Fatalf("a session revoked on the new master is still accepted 4s after this instance's subscription and pool both moved there\nevents:\n%s", events)
	}
}

// delayProxy relays to a Redis server and holds back, once, the client
// bytes that contain marker, for delay: a request packet that is lost and
// retransmitted (TCP's minimum RTO is 200ms, past the 150ms store timeout).
type delayProxy struct {
	l      net.Listener
	target string
	marker []byte
	delay  time.Duration
	armed  atomic.Bool
}

func newDelayProxy(t *testing.T, target, marker string, delay time.Duration) *delayProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &delayProxy{l: l, target: target, marker: []byte(strings.ToLower(marker)), delay: delay}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go p.relay(in)
		}
	}()
	return p
}

func (p *delayProxy) relay(in net.Conn) {
	out, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = in.Close()
		return
	}
	go func() { _, _ = io.Copy(in, out); _ = in.Close() }()
	buf := make([]byte, 64<<10)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			if bytes.Contains(bytes.ToLower(buf[:n]), p.marker) && p.armed.CompareAndSwap(true, false) {
				time.Sleep(p.delay)
			}
			if _, werr := out.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	// Let a reply to the delayed write come back before closing.
	time.Sleep(50 * time.Millisecond)
	_ = out.Close()
}

// TestRedisLateClaimLeavesItsTokenGivenBack: a claim that timed out before reaching Redis (its
// packet delayed) is given back at once: releaseScript finds no key and
// writes "free" so that "a claim still on its way then finds it taken".
// A claimScript that took any given-back key let the late claim take it,
// for an exchange that already answered 503, and the client's retry of the
// same token after Retry-After was refused as replayed; README promises "A
// 503 does not burn the token".
func TestRedisLateClaimLeavesItsTokenGivenBack(t *testing.T) {
	srv := replaytest.StartRedis(t)
	const jti = "jti-late"
	p := newDelayProxy(t, srv.Addr(), jti, 400*time.Millisecond)
	prefix := uniquePrefix()
	a := newRedis(t, replay.RedisConfig{URL: "redis://" + p.l.Addr().String(), KeyPrefix: prefix, Timeout: 100 * time.Millisecond})
	b := newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: prefix})
	<-a.Synced()
	<-b.Synced()
	ctx := context.Background()
	// Loads the claim script, so that the delayed claim is an EVALSHA
	// that runs when it arrives.
	if err := a.Claim(ctx, "acme", "warm-up", time.Minute); err != nil {
		t.Fatal(err)
	}
	p.armed.Store(true)
	if err := a.Claim(ctx, "acme", jti, time.Minute); reason.Of(err) != reason.StoreUnavailable {
		t.Fatalf("delayed claim: %v, want store_unavailable", err)
	}
	time.Sleep(time.Second) // Retry-After: 1
	if err := b.Claim(ctx, "acme", jti, time.Minute); err != nil {
		raw := rawClient(t, srv)
		t.Fatalf("retry of the same token after the 503: %v, want success (key holds %q)", err, raw.Get(ctx, prefix+"jti:acme:"+jti).Val())
	}
}

// TestRedisCloseStopsSentinelWatcher: Close waits for the Sentinel
// watcher, which blocks in a receive that ignores ctx (go-redis sets only a
// read deadline) for up to a health interval; else it could still kick the
// closed store and hold its sentinel connection after Close returned.
func TestRedisCloseStopsSentinelWatcher(t *testing.T) {
	s := replaytest.StartSentinel(t, replaytest.SentinelOptions{})
	r, err := replay.NewRedis(context.Background(), replay.RedisConfig{URL: s.URL(), KeyPrefix: uniquePrefix()})
	if err != nil {
		t.Fatal(err)
	}
	<-r.Synced()
	time.Sleep(300 * time.Millisecond) // the watcher is subscribed and waiting
	_ = r.Close()
	// The watcher's last frames may take a moment to leave the stack; one
	// that Close did not wait for stays in its receive for up to a second.
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(200 * time.Millisecond); ; time.Sleep(10 * time.Millisecond) {
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "replay.(*Redis).watchSentinel") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sentinel watcher still runs 200ms after Close returned")
		}
	}
}

// TestRedisSignoutOfAGoneClientReachesEveryInstance: a page that signs out
// and navigates at once cancels its request; the revocation must still be
// written to Redis and announced, or it holds on the instance that took
// the sign-out only and the session stays valid on every other one.
func TestRedisSignoutOfAGoneClientReachesEveryInstance(t *testing.T) {
	a, b, srv, prefix := twoInstances(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := replay.SessionRef{ID: "sid-gone", Tenant: "acme", Subject: "jane", IssuedAt: time.Now().Add(-time.Minute)}
	if err := a.Revoke(ctx, s.ID, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if n, err := rawClient(t, srv).Exists(context.Background(), prefix+"rev:sid:"+s.ID).Result(); err != nil || n != 1 {
		t.Fatalf("the revocation is not in Redis (%d, %v)", n, err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && !b.Revoked(s) {
		time.Sleep(10 * time.Millisecond)
	}
	if !b.Revoked(s) {
		t.Fatal("the other instance still accepts the session")
	}
}

// TestRedisReloadClosesRelayedGap: an instance that missed a master switch
// (no +switch-master reached it) keeps its subscription on the old master.
// Another instance, on the new master, signs a session out there; the
// announcement goes out on the new master only. The sentinels then make
// the old master a replica of the new one, and Redis relays every later
// PUBLISH down to it: the stale subscription hears announcements again,
// every probe comes back once the pool has moved, and nothing reloads the
// mirror. The sign-out made in the gap was accepted on this instance for
// the rest of the session's life. The periodic full reload now loads it,
// and reports it as EventGapClosed; an announcement that did arrive is
// not counted as missed.
func TestRedisReloadClosesRelayedGap(t *testing.T) {
	oldSrv, newSrv := replaytest.StartRedis(t), replaytest.StartRedis(t)
	p := newProxy(t, oldSrv.Addr())
	prefix := uniquePrefix()
	events := newEventLog()
	b := newRedis(t, replay.RedisConfig{URL: "redis://" + p.Addr(), KeyPrefix: prefix, Report: events.report,
		ReloadEvery: 3 * time.Second})
	<-b.Synced()
	a := newRedis(t, replay.RedisConfig{URL: newSrv.URL(), KeyPrefix: prefix})
	<-a.Synced()
	ctx := context.Background()
	iat := time.Now().Add(-time.Minute)

	// The switch happened and b did not notice: a signs a session out on
	// the new master.
	gap := replay.SessionRef{ID: "sid-gap", Tenant: "acme", Subject: "jane", IssuedAt: iat}
	if err := a.Revoke(ctx, gap.ID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// The old master becomes a replica of the new one; b's pool follows
	// (the proxy), its subscription stays on the old server.
	if err := rawClient(t, oldSrv).Do(ctx, "REPLICAOF", "127.0.0.1", newSrv.Port).Err(); err != nil {
		t.Fatal(err)
	}
	waitInfo(t, oldSrv, "master_link_status:up")
	p.Switch(newSrv.Addr())
	// What is published from now on is relayed to b.
	after := replay.SessionRef{ID: "sid-after", Tenant: "acme", Subject: "jane", IssuedAt: iat}
	if err := a.Revoke(ctx, after.ID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitRevoked(t, b, after, 3*time.Second)

	ev := events.waitFor(t, replay.EventGapClosed, 10*time.Second)
	if !b.Revoked(gap) {
		t.Fatalf("the sign-out made in the gap is still accepted after the periodic reload\nevents:\n%s", events)
	}
	if ev.Entries != 1 {
		t.Fatalf("EventGapClosed with %d entries, want 1 (the relayed sign-out arrived by announcement)\nevents:\n%s", ev.Entries, events)
	}
}

// TestRedisOwnRevocationsAreNoGap: this instance's own sign-outs are
// never reported as lost announcements. It skips its own echo, and used to
// write its mirror only after the write's reply (and the WAIT of replicas),
// so a periodic reload that read the key in between counted it as a gap.
// With replicas 1 and no replica, every WAIT lasts a third of the timeout.
func TestRedisOwnRevocationsAreNoGap(t *testing.T) {
	srv := replaytest.StartRedis(t)
	events := newEventLog()
	r := newRedis(t, replay.RedisConfig{URL: srv.URL(), KeyPrefix: uniquePrefix(), Report: events.report,
		Replicas: 1, Timeout: 1500 * time.Millisecond, ReloadEvery: time.Second})
	<-r.Synced()
	ctx := context.Background()
	// Four at a time: some sign-out is always waiting on its WAIT when a
	// reload reads the keys.
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i, end := 0, time.Now().Add(4*time.Second); time.Now().Before(end); i++ {
				// No replica acknowledges: store_unavailable, applied all the same.
				_ = r.Revoke(ctx, "own-"+strconv.Itoa(g)+"-"+strconv.Itoa(i), time.Now().Add(time.Hour))
			}
		})
	}
	wg.Wait()
	// A key written behind the store's back is a real gap: the first one
	// reported, and alone.
	if err := rawClient(t, srv).Set(ctx, r.KeyPrefix()+"rev:sid:silent", `{"sid":"silent"}`, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	ev := events.waitFor(t, replay.EventGapClosed, 5*time.Second)
	if ev.Entries != 1 || events.count(replay.EventGapClosed) != 1 {
		t.Fatalf("this instance's own sign-outs were reported as lost announcements:\n%s", events)
	}
}

// TestRedisClusterGapCounting: on a Cluster, revocations announced from
// every master are no gap; keys written with no announcement, on several
// masters, are each counted once (the two passes and the concurrent node
// scans share the reload's gap set).
func TestRedisClusterGapCounting(t *testing.T) {
	c := replaytest.StartCluster(t, replaytest.ClusterOptions{})
	prefix := uniquePrefix()
	events := newEventLog()
	a := newRedis(t, replay.RedisConfig{URL: c.URL(), KeyPrefix: prefix, Report: events.report, ReloadEvery: time.Second})
	b := newRedis(t, replay.RedisConfig{URL: c.URL(), KeyPrefix: prefix})
	<-a.Synced()
	<-b.Synced()
	ctx := context.Background()
	for i := range 60 { // spread over the three masters
		if err := b.Revoke(ctx, "announced-"+strconv.Itoa(i), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		key := prefix + "rev:sid:silent-" + strconv.Itoa(i)
		if err := c.Client().Set(ctx, key, `{"sid":"silent-`+strconv.Itoa(i)+`"}`, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	ev := events.waitFor(t, replay.EventGapClosed, 8*time.Second)
	if ev.Entries != 20 {
		t.Fatalf("EventGapClosed with %d entries, want the 20 written without an announcement\n%s", ev.Entries, events)
	}
}
