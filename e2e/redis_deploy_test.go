package e2e

// Two gateway instances on each Redis deployment production runs, from
// Debian's redis-server and redis-sentinel: a single node over TLS (a CA
// and a client certificate made here) with the README's ACL user,
// Sentinel (one master, one replica, three sentinels) and Cluster (three
// masters, redis-cli --cluster create).

import (
	"bufio"
	"context"
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/embedgate/embedgate/internal/replay/replaytest"
)

// pair is two gateways sharing one Redis deployment and one storage
// directory (so one generated session key), as behind a load balancer.
type pair struct {
	A, B   *Gateway
	url    string
	env    []string
	data   map[string]any
	prefix string
}

// storeTimeout is the per-command timeout: the default, or 2s for a
// race-built gateway, several times slower, whose concurrent exchanges
// would otherwise queue for pooled connections past the default.
func storeTimeout() string {
	if raceBinary {
		return "2s"
	}
	return "150ms"
}

// startPair starts two gateways on coreSite with store redis at url (from
// {env.*}); block adds lines to the store redis block.
func startPair(t *testing.T, url, prefix, block string) *pair {
	t.Helper()
	return startPairTimeout(t, url, prefix, block, storeTimeout())
}

func startPairTimeout(t *testing.T, url, prefix, block, timeout string) *pair {
	t.Helper()
	up := newUpstream(t, nil)
	store := "store redis {env.EMBEDGATE_REDIS_URL} {\n\t\t\tkey_prefix " + prefix + "\n\t\t\ttimeout " + timeout + "\n\t\t\t" + block + "\n\t\t}"
	p := &pair{
		url: url, prefix: prefix,
		env:  append(append([]string(nil), coreEnv...), "EMBEDGATE_REDIS_URL="+url),
		data: map[string]any{"Upstream": up.Listener.Addr().String(), "Extra": store},
	}
	p.A = startGateway(t, coreSite, p.data, GatewayOptions{Env: p.env})
	p.B = startGateway(t, coreSite, p.data, GatewayOptions{Env: p.env, Dir: p.A.Dir})
	return p
}

// third starts one more instance of the pair's deployment.
func (p *pair) third(t *testing.T) *Gateway {
	t.Helper()
	return startGateway(t, coreSite, p.data, GatewayOptions{Env: p.env, Dir: p.A.Dir})
}

// checkPair is the Proof's check on each deployment: exactly one success
// for 100 concurrent exchanges of one token spread over both instances, and
// a sign-out and an admin revoke on one refused on the other within 1s.
func checkPair(t *testing.T, name string, p *pair) {
	warmUp(t, p)
	t.Run("OneToken100ConcurrentOverTwo", func(t *testing.T) {
		concurrentExchanges(t, p.A, p.B, 100)
		t.Logf("FIGURE %s: 100 concurrent exchanges of one token over two instances: 1 success, 99 replayed", name)
	})
	t.Run("SignoutOnARefusedOnB", func(t *testing.T) {
		ck := mustExchange(t, p.A, "portal.gate.test", mint(t, "acme", acmeSecret, "jane@acme.com", nil))
		if r, _ := get(t, p.B, "portal.gate.test", "/x", nil, ck); r.StatusCode != 200 {
			t.Fatalf("before sign-out, on B: %d", r.StatusCode)
		}
		began := time.Now()
		if code := signout(t, p.A.Client(), p.A, ck); code != http.StatusNoContent {
			t.Fatalf("signout: %d\n%s", code, p.A.Logs())
		}
		t.Logf("FIGURE %s: sign-out on A refused on B %v later", name, waitRefused(t, p.B, "portal.gate.test", ck, began, time.Second))
	})
	t.Run("AdminRevokeOnBRefusedOnA", func(t *testing.T) {
		ck := mustExchange(t, p.A, "globex.gate.test", mint(t, "globex", globexSecret, "ann@globex.test", nil))
		began := time.Now()
		if code, body := adminRevoke(t, p.B, `{"tenant":"globex","subject":"ann@globex.test"}`); code != http.StatusOK {
			t.Fatalf("revoke: %d %s", code, body)
		}
		t.Logf("FIGURE %s: admin revoke on B refused on A %v later", name, waitRefused(t, p.A, "globex.gate.test", ck, began, time.Second))
	})
}

// warmUp fills both instances' Redis connection pools with concurrent
// exchanges of distinct tokens: the burst that follows tests single use,
// not the cost of 50 cold connections at once (each a TLS handshake, or a
// Sentinel lookup, queued on single-threaded servers past the 150ms
// timeout).
func warmUp(t *testing.T, p *pair) {
	t.Helper()
	var wg sync.WaitGroup
	for _, g := range []*Gateway{p.A, p.B} {
		client := g.Client()
		for range 50 {
			wg.Go(func() {
				for range 3 { // a cold 503 is retried with a fresh token
					res, err := doExchange(client, g, "portal.gate.test", mint(t, "acme", acmeSecret, "warm@acme.com", nil))
					if err == nil && res.status == http.StatusNoContent {
						return
					}
				}
			})
		}
	}
	wg.Wait()
}

// concurrentExchanges fires n exchanges of one token at once, alternating
// between a and b, and wants exactly one success and n-1 replays.
func concurrentExchanges(t *testing.T, a, b *Gateway, n int) {
	t.Helper()
	tok := mint(t, "acme", acmeSecret, "jane@acme.com", nil)
	clients := map[*Gateway]*http.Client{a: a.Client(), b: b.Client()}
	results := make([]exchangeResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		g := a
		if i%2 == 1 {
			g = b
		}
		wg.Go(func() {
			<-start
			results[i], errs[i] = doExchange(clients[g], g, "portal.gate.test", tok)
		})
	}
	close(start)
	wg.Wait()
	wantOneExchange(t, results, errs)
}

// signout posts a sign-out with the cookie and returns the status.
func signout(t *testing.T, client *http.Client, g *Gateway, ck *http.Cookie) int {
	t.Helper()
	req, _ := http.NewRequest("POST", g.URL("portal.gate.test", "/.embed/signout"), nil)
	req.AddCookie(ck)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// readmeACL is the README's ACL line for the embedgate user, with the
// password filled in: the test proves the documented line, not a copy.
func readmeACL(t *testing.T, password string) []any {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "ACL SETUSER embedgate ") {
			continue
		}
		var args []any
		for _, f := range strings.Fields(line)[1:] {
			args = append(args, strings.Replace(f, ">PASSWORD", ">"+password, 1))
		}
		return append([]any{"ACL"}, args...)
	}
	t.Fatal("no ACL SETUSER embedgate line in README.md")
	return nil
}

// A single node over TLS, which requires a client certificate, with the
// README's ACL user and the default user off.
func TestRedisTLSWithACLUser(t *testing.T) {
	files := replaytest.NewTLSFiles(t)
	srv := replaytest.StartRedisWith(t, replaytest.RedisOptions{TLS: files})
	cfg, err := files.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr(), TLSConfig: cfg})
	defer admin.Close()
	ctx := context.Background()
	password := rand.Text()
	if err := admin.Do(ctx, readmeACL(t, password)...).Err(); err != nil {
		t.Fatalf("the README's ACL line: %v", err)
	}
	if err := admin.Do(ctx, "ACL", "SETUSER", "default", "off").Err(); err != nil {
		t.Fatal(err)
	}
	url := "rediss://embedgate:" + password + "@" + srv.Addr()
	block := "tls {\n\t\t\t\tca " + files.CA + "\n\t\t\t\tcert " + files.ClientCert + "\n\t\t\t\tkey " + files.ClientKey +
		"\n\t\t\t\tserver_name " + replaytest.ServerName + "\n\t\t\t}"
	// 1s, not the default: on two shared cores, 100 concurrent HTTPS
	// exchanges leave the gateways and a single-threaded TLS Redis
	// starved for CPU past 150ms (the same burst without TLS, and alone
	// with TLS, takes well under it); single use is what is tested here.
	timeout := "1s"
	if raceBinary {
		timeout = storeTimeout()
	}
	p := startPairTimeout(t, url, "embedgate:", block, timeout)
	checkPair(t, "TLS with a client certificate and the README's ACL user", p)
	for _, g := range []*Gateway{p.A, p.B} {
		logs := g.Logs()
		if strings.Contains(logs, password) {
			t.Fatal("the Redis password is in the logs")
		}
		for _, bad := range []string{"NOPERM", "revocations not loaded", "Redis unavailable"} {
			if strings.Contains(logs, bad) {
				t.Fatalf("%q in the logs:\n%s", bad, logs)
			}
		}
	}
}

func TestSentinelTwoInstances(t *testing.T) {
	s := replaytest.StartSentinel(t, replaytest.SentinelOptions{})
	checkPair(t, "Sentinel", startPair(t, s.URL(), "eg-sentinel:", ""))
}

func TestClusterThreeMastersTwoInstances(t *testing.T) {
	c := replaytest.StartCluster(t, replaytest.ClusterOptions{})
	checkPair(t, "Cluster", startPair(t, c.URL(), "eg-cluster:", ""))
}

// Item 4 end to end: a claim that timed out (Redis paused past the store
// timeout, then applying it) answers 503 with Retry-After, and a client
// that retries the same token after it gets a session, on the other
// instance; the token is still single-use afterwards.
func TestRedisRetryAfter503SameToken(t *testing.T) {
	srv := replaytest.StartRedis(t)
	p := startPair(t, srv.URL(), "eg-retry:", "")
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	pause := 400 * time.Millisecond
	if raceBinary {
		pause = 3 * time.Second // past the race build's 2s timeout
	}
	tok := mint(t, "acme", acmeSecret, "jane@acme.com", nil)
	if err := admin.Do(context.Background(), "CLIENT", "PAUSE", pause.Milliseconds(), "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	res, err := doExchange(p.A.Client(), p.A, "portal.gate.test", tok)
	if err != nil {
		t.Fatal(err)
	}
	if res.status != http.StatusServiceUnavailable || res.description != "store_unavailable" || res.retryAfter != "1" {
		t.Fatalf("exchange during the pause: %d %q Retry-After %q", res.status, res.description, res.retryAfter)
	}
	time.Sleep(pause + time.Second) // the client honours Retry-After: 1
	res, err = doExchange(p.B.Client(), p.B, "portal.gate.test", tok)
	if err != nil {
		t.Fatal(err)
	}
	if res.status != http.StatusNoContent || res.cookie == nil {
		t.Fatalf("retry of the same token after the 503: %d %q, want a session", res.status, res.description)
	}
	for _, g := range []*Gateway{p.A, p.B} {
		if res, _ := doExchange(g.Client(), g, "portal.gate.test", tok); res.status != 401 || res.description != "replayed" {
			t.Fatalf("a third use: %d %q, want 401 replayed", res.status, res.description)
		}
	}
}

// wantOneExchange checks the answers to one token sent many times at once:
// exactly one exchange (204), every other answer 401 replayed.
func wantOneExchange(t *testing.T, results []exchangeResult, errs []error) {
	t.Helper()
	ok, replayed := 0, 0
	for i, r := range results {
		switch {
		case errs[i] != nil:
			t.Errorf("request %d: %v", i, errs[i])
		case r.status == http.StatusNoContent:
			ok++
		case r.status == http.StatusUnauthorized && r.description == "replayed":
			replayed++
		default:
			t.Errorf("request %d: %d %q", i, r.status, r.description)
		}
	}
	if ok != 1 || replayed != len(results)-1 {
		t.Fatalf("%d successes and %d replays, want 1 and %d", ok, replayed, len(results)-1)
	}
}
