package e2e

// Failovers under steady load on a Sentinel deployment (a planned SENTINEL
// FAILOVER and a SIGKILL of the master), with and without `replicas 1`,
// and a new instance started during a Cluster slot migration. The logged
// FIGURE lines are the README's "Running several instances" figures.

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/embedgate/embedgate/internal/replay/replaytest"
)

// attempt is one exchange under load.
type attempt struct {
	tok    string
	status int
	desc   string
	at     time.Time
	onA    bool
}

// steadyLoad exchanges fresh tokens on both instances of a pair, and signs
// sessions out on A, until stopped.
type steadyLoad struct {
	p        *pair
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	attempts []attempt
	signouts []*http.Cookie // sessions whose sign-out answered 204
}

func startLoad(t *testing.T, p *pair, workers int) *steadyLoad {
	l := &steadyLoad{p: p, stop: make(chan struct{})}
	for w := range workers {
		onA := w%2 == 0
		g := p.B
		if onA {
			g = p.A
		}
		l.wg.Go(func() {
			client := g.Client()
			for !l.stopped(10 * time.Millisecond) {
				tok := mint(t, "acme", acmeSecret, "load@acme.com", nil)
				res, err := doExchange(client, g, "portal.gate.test", tok)
				if err != nil {
					continue
				}
				l.mu.Lock()
				l.attempts = append(l.attempts, attempt{tok: tok, status: res.status, desc: res.description, at: time.Now(), onA: onA})
				l.mu.Unlock()
			}
		})
	}
	l.wg.Go(func() { // sign-outs, the moments of the switch included
		client := p.A.Client()
		for !l.stopped(50 * time.Millisecond) {
			res, err := doExchange(client, p.A, "portal.gate.test", mint(t, "acme", acmeSecret, "signout@acme.com", nil))
			if err != nil || res.cookie == nil {
				continue
			}
			req, _ := http.NewRequest("POST", p.A.URL("portal.gate.test", "/.embed/signout"), nil)
			req.AddCookie(res.cookie)
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusNoContent {
					l.mu.Lock()
					l.signouts = append(l.signouts, res.cookie)
					l.mu.Unlock()
				}
			}
		}
	})
	return l
}

func (l *steadyLoad) stopped(pause time.Duration) bool {
	select {
	case <-l.stop:
		return true
	case <-time.After(pause):
		return false
	}
}

func (l *steadyLoad) finish() {
	close(l.stop)
	l.wg.Wait()
}

// report checks and logs a pair's load: the 503 window, recovery on both
// instances, tokens accepted twice (each accepted token is exchanged again
// on the other instance) and what a retry of each refused (503) token got.
// It returns the number of tokens accepted twice.
func (l *steadyLoad) report(t *testing.T, name string, began time.Time) int {
	t.Helper()
	var first, last time.Time
	n503 := 0
	var accepted, refused []attempt
	for _, a := range l.attempts {
		switch a.status {
		case http.StatusNoContent:
			accepted = append(accepted, a)
		case http.StatusServiceUnavailable:
			if first.IsZero() {
				first = a.at
			}
			last, n503 = a.at, n503+1
			refused = append(refused, a)
		default:
			t.Errorf("%s: exchange under load: %d %q", name, a.status, a.desc)
		}
	}
	// Recovery without restart: the last second of load is all 204, on
	// both instances.
	end := l.attempts[len(l.attempts)-1].at
	okA, okB := 0, 0
	for _, a := range l.attempts {
		if end.Sub(a.at) > time.Second {
			continue
		}
		if a.status != http.StatusNoContent {
			t.Errorf("%s: not recovered: %d %q in the last second of load", name, a.status, a.desc)
		}
		if a.onA {
			okA++
		} else {
			okB++
		}
	}
	if okA == 0 || okB == 0 {
		t.Errorf("%s: no exchanges on one instance in the last second (%d on A, %d on B)", name, okA, okB)
	}
	twice := l.exchangeAgain(accepted)[http.StatusNoContent]
	retries := l.exchangeAgain(refused)
	retried := retries[http.StatusNoContent]
	window := "no 503"
	if n503 > 0 {
		window = fmt.Sprintf("503s over %v, from %v after the failover began", last.Sub(first).Round(time.Millisecond), first.Sub(began).Round(time.Millisecond))
	}
	t.Logf("FIGURE %s: %d exchanges, %d answered 503 (%s); %d of %d accepted tokens accepted a second time; %d of %d refused (503) tokens accepted on retry (retry answers %v)",
		name, len(l.attempts), n503, window, twice, len(accepted), retried, len(refused), retries)
	return twice
}

// exchangeAgain exchanges each attempt's token once more, on the other
// instance, 16 at a time, and counts the answers by status.
func (l *steadyLoad) exchangeAgain(attempts []attempt) map[int]int {
	var mu sync.Mutex
	n := map[int]int{}
	work := make(chan attempt)
	var wg sync.WaitGroup
	clients := map[*Gateway]*http.Client{l.p.A: l.p.A.Client(), l.p.B: l.p.B.Client()}
	for range 16 {
		wg.Go(func() {
			for a := range work {
				g := l.p.A
				if a.onA {
					g = l.p.B
				}
				if res, err := doExchange(clients[g], g, "portal.gate.test", a.tok); err == nil {
					mu.Lock()
					n[res.status]++
					mu.Unlock()
				}
			}
		})
	}
	for _, a := range attempts {
		work <- a
	}
	close(work)
	wg.Wait()
	return n
}

// signoutAfterFailover signs a fresh session out on A as soon as Redis
// takes it (retrying a 503), logs how long after the switch that was, and
// wants it refused on B within the subscription check's bound (5s): it may
// have landed on the old master while A's pool had not moved yet. A
// sign-out made once every client has the switch (all sentinels name the
// new master, and 200ms for their announcement to reach the clients) must
// be refused on B within 1s.
func signoutAfterFailover(t *testing.T, name string, p *pair, switched time.Time) {
	t.Helper()
	client := p.A.Client()
	once := func() (time.Time, *http.Cookie) {
		deadline := time.Now().Add(20 * time.Second)
		for {
			res, err := doExchange(client, p.A, "portal.gate.test", mint(t, "acme", acmeSecret, "after@acme.com", nil))
			if err == nil && res.cookie != nil {
				if code := signout(t, client, p.A, res.cookie); code == http.StatusNoContent {
					return time.Now(), res.cookie
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no sign-out went through 20s after the failover", name)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	at, ck := once()
	took := waitRefused(t, p.B, "portal.gate.test", ck, at, 5*time.Second)
	t.Logf("FIGURE %s: first sign-out after the switch went through %v after the sentinels named the new master; refused on B %v later",
		name, at.Sub(switched).Round(time.Millisecond), took.Round(time.Microsecond))
	time.Sleep(time.Until(switched.Add(200 * time.Millisecond)))
	at, ck = once()
	waitRefused(t, p.B, "portal.gate.test", ck, at, time.Second)
}

// signoutsHold checks that every sign-out that answered 204 under load,
// the moments of the switch included, is refused on g.
func signoutsHold(t *testing.T, name string, g *Gateway, cookies []*http.Cookie, within time.Duration) {
	t.Helper()
	began := time.Now()
	for _, ck := range cookies {
		waitRefused(t, g, "portal.gate.test", ck, began, within)
	}
	t.Logf("%s: all %d sign-outs made under load refused", name, len(cookies))
}

// Failovers under steady load: a planned SENTINEL FAILOVER and a SIGKILL
// of the master, each on two pairs of instances, one with `replicas 1`,
// one without; and a planned failover of a master configured with
// min-replicas-to-write 1, without `replicas`.
func TestSentinelFailoverUnderLoad(t *testing.T) {
	for _, c := range []struct {
		name     string
		planned  bool
		nodeArgs []string
		durable  bool // also run a pair with replicas 1
	}{
		{"Planned", true, nil, true},
		{"MasterKilled", false, nil, true},
		{"PlannedMinReplicasToWrite", true, []string{"--min-replicas-to-write", "1", "--min-replicas-max-lag", "1"}, false},
	} {
		t.Run(c.name, func(t *testing.T) { sentinelFailover(t, c.planned, c.nodeArgs, c.durable) })
	}
}

func sentinelFailover(t *testing.T, planned bool, nodeArgs []string, durable bool) {
	s := replaytest.StartSentinel(t, replaytest.SentinelOptions{NodeArgs: nodeArgs})
	pairs := map[string]*pair{"replicas 0": startPair(t, s.URL(), "eg-r0:", "")}
	if durable {
		pairs["replicas 1"] = startPair(t, s.URL(), "eg-r1:", "replicas 1")
	}
	loads := map[string]*steadyLoad{}
	for name, p := range pairs {
		warmUp(t, p)
		loads[name] = startLoad(t, p, 2)
	}
	time.Sleep(500 * time.Millisecond)

	kind := "SENTINEL FAILOVER"
	if len(nodeArgs) > 0 {
		kind += " with min-replicas-to-write 1"
	}
	began := time.Now()
	var old *replaytest.RedisServer
	if planned {
		old = s.Failover()
	} else {
		kind = "master SIGKILL"
		old = s.Master()
		old.Stop()
	}
	s.WaitSwitched(old, 30*time.Second)
	switched := time.Now()
	t.Logf("FIGURE %s: the sentinels named the new master %v after the failover began", kind, switched.Sub(began).Round(time.Millisecond))
	if !planned {
		old.Start() // as a supervisor restarts it; the sentinels make it a replica
	}
	for _, name := range []string{"replicas 0", "replicas 1"} {
		if p := pairs[name]; p != nil {
			signoutAfterFailover(t, kind+", "+name, p, switched)
		}
	}
	// A restarted master is turned into a replica only once a sentinel's
	// INFO poll (every 10 s for a replica) has seen it report the master
	// role for 8 s, then it syncs in full: 20 s and more before any load,
	// past 30 s on a busy CI machine.
	s.WaitReplicaSynced(old, 60*time.Second)
	t.Logf("FIGURE %s: the old master replicates from the new one %v after the switch", kind, time.Since(switched).Round(time.Millisecond))
	time.Sleep(2 * time.Second) // load on the recovered deployment
	for _, l := range loads {
		l.finish()
	}
	for name, l := range loads {
		if twice := l.report(t, kind+", "+name, began); name == "replicas 1" && twice != 0 {
			t.Errorf("%s with replicas 1: %d tokens accepted twice, want none", kind, twice)
		}
		// No sign-out lost: those made during the switch are refused on
		// the other instance, and on one started after the failover.
		signoutsHold(t, kind+", "+name+", on B", pairs[name].B, l.signouts, 5*time.Second)
		signoutsHold(t, kind+", "+name+", on an instance started after", pairs[name].third(t), l.signouts, 5*time.Second)
	}
}

// Item 2 end to end: a session is signed out; its revocation key's slot is
// put into migration and the key moved to the importing node; an instance
// started then refuses the session, and follows later sign-outs.
func TestClusterInstanceStartedDuringSlotMigration(t *testing.T) {
	c := replaytest.StartCluster(t, replaytest.ClusterOptions{})
	p := startPair(t, c.URL(), "eg-migr:", "")
	ck := mustExchange(t, p.A, "portal.gate.test", mint(t, "acme", acmeSecret, "jane@acme.com", nil))
	if code := signout(t, p.A.Client(), p.A, ck); code != http.StatusNoContent {
		t.Fatalf("signout: %d", code)
	}
	ctx := context.Background()
	var mu sync.Mutex
	var keys []string
	if err := c.Client().ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		ks, err := n.Keys(ctx, "eg-migr:rev:sid:*").Result()
		mu.Lock()
		keys = append(keys, ks...)
		mu.Unlock()
		return err
	}); err != nil || len(keys) != 1 {
		t.Fatalf("revocation keys %q: %v", keys, err)
	}
	slot := int(c.Client().ClusterKeySlot(ctx, keys[0]).Val())
	from := c.Owner(slot)
	to := c.Nodes[0]
	if to == from {
		to = c.Nodes[1]
	}
	m := c.StartMigration(slot, to)
	m.Move(keys[0])

	late := p.third(t)
	if r, _ := get(t, late, "portal.gate.test", "/x", nil, ck); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("an instance started during the migration accepts a session signed out before it started: %d\n%s", r.StatusCode, late.Logs())
	}
	fresh := mustExchange(t, p.B, "portal.gate.test", mint(t, "acme", acmeSecret, "bob@acme.com", nil))
	began := time.Now()
	if code := signout(t, p.B.Client(), p.B, fresh); code != http.StatusNoContent {
		t.Fatalf("signout during the migration: %d", code)
	}
	waitRefused(t, late, "portal.gate.test", fresh, began, time.Second)
	m.Finish()
	concurrentExchanges(t, p.A, late, 40)
}
