package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/embedgate/embedgate/internal/replay/replaytest"
	"github.com/embedgate/embedgate/internal/token"
)

// cluster is two embedgate instances on one Redis, sharing Caddy's storage
// directory (and so the generated session key), as behind a load balancer.
type cluster struct {
	A, B   *Gateway
	Redis  *replaytest.RedisServer
	rdb    *redis.Client
	prefix string
	up     *Upstream
}

const clusterPrefix = "eg-e2e:"

// startCluster starts Redis and two gateways on coreSite with a Redis store
// whose URL comes from {env.*}; extra adds embed_session options.
func startCluster(t *testing.T, extra string) *cluster {
	t.Helper()
	srv := replaytest.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	up := newUpstream(t, nil)
	// The default per-command timeout; a race-built gateway is several times
	// slower, and 100 concurrent exchanges per instance would then queue for
	// pooled connections past it and fail closed (503), which is not what
	// these tests are about.
	timeout := "150ms"
	if raceBinary {
		timeout = "2s"
	}
	store := "store redis {env.EMBEDGATE_REDIS_URL} {\n\t\t\tkey_prefix " + clusterPrefix + "\n\t\t\ttimeout " + timeout + "\n\t\t}\n\t\t" + extra
	env := append(append([]string(nil), coreEnv...), "EMBEDGATE_REDIS_URL="+srv.URL())
	data := map[string]any{"Upstream": up.Listener.Addr().String(), "Extra": store}
	a := startGateway(t, coreSite, data, GatewayOptions{Env: env})
	b := startGateway(t, coreSite, data, GatewayOptions{Env: env, Dir: a.Dir})
	return &cluster{A: a, B: b, Redis: srv, rdb: rdb, prefix: clusterPrefix, up: up}
}

// exchangeResult is one exchange's status, error_description, Retry-After
// and session cookie.
type exchangeResult struct {
	status      int
	description string
	retryAfter  string
	cookie      *http.Cookie
}

func doExchange(client *http.Client, g *Gateway, host, tok string) (exchangeResult, error) {
	req, _ := http.NewRequest("POST", g.URL(host, "/.embed/exchange"), strings.NewReader(`{"token":"`+tok+`"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return exchangeResult{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e struct {
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(body, &e)
	res := exchangeResult{status: resp.StatusCode, description: e.Description, retryAfter: resp.Header.Get("Retry-After")}
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-embed_session" && c.Value != "" {
			res.cookie = c
		}
	}
	return res, nil
}

func mustExchange(t *testing.T, g *Gateway, host, tok string) *http.Cookie {
	t.Helper()
	res, err := doExchange(g.Client(), g, host, tok)
	if err != nil {
		t.Fatal(err)
	}
	if res.status != http.StatusNoContent || res.cookie == nil {
		t.Fatalf("exchange: %d %q\n%s", res.status, res.description, g.Logs())
	}
	return res.cookie
}

// waitRefused polls g with the cookie until the session is refused and
// returns how long that took after since; it fails the test past within.
func waitRefused(t *testing.T, g *Gateway, host string, c *http.Cookie, since time.Time, within time.Duration) time.Duration {
	t.Helper()
	client := g.Client()
	for {
		req, _ := http.NewRequest("GET", g.URL(host, "/.embed/session"), nil)
		req.AddCookie(c)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		took := time.Since(since)
		if resp.StatusCode == http.StatusUnauthorized {
			return took
		}
		if took > within {
			t.Fatalf("session still accepted %v later (status %d)", took, resp.StatusCode)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Proof 1, 2, 4 and the admin revoke: replay is refused across instances,
// sessions move between them, and sign-out and revocation reach the other
// instance within a second.
func TestClusterReplaySessionsAndRevocation(t *testing.T) {
	c := startCluster(t, "")

	t.Run("OneTokenTwoInstances200Concurrent", func(t *testing.T) {
		tok := mint(t, "acme", acmeSecret, "jane@acme.com", nil)
		clients := map[*Gateway]*http.Client{c.A: c.A.Client(), c.B: c.B.Client()}
		const n = 200
		results := make([]exchangeResult, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			g := c.A
			if i%2 == 1 {
				g = c.B
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[i], errs[i] = doExchange(clients[g], g, "portal.gate.test", tok)
			}()
		}
		began := time.Now()
		close(start)
		wg.Wait()
		wantOneExchange(t, results, errs)
		t.Logf("200 concurrent exchanges of one token over two instances: 1 success, 199 replayed, in %v", time.Since(began))
	})

	t.Run("SessionFromAAcceptedOnB", func(t *testing.T) {
		ck := mustExchange(t, c.A, "portal.gate.test", mint(t, "acme", acmeSecret, "jane@acme.com", nil))
		r, body := get(t, c.B, "portal.gate.test", "/deals", nil, ck)
		if r.StatusCode != 200 || !strings.Contains(body, "jane@acme.com") {
			t.Fatalf("session of A on B: %d %s", r.StatusCode, body)
		}
	})

	t.Run("SignoutOnAReachesB", func(t *testing.T) {
		ck := mustExchange(t, c.A, "portal.gate.test", mint(t, "acme", acmeSecret, "jane@acme.com", nil))
		if r, _ := get(t, c.B, "portal.gate.test", "/x", nil, ck); r.StatusCode != 200 {
			t.Fatalf("before sign-out, on B: %d", r.StatusCode)
		}
		began := time.Now()
		req, _ := http.NewRequest("POST", c.A.URL("portal.gate.test", "/.embed/signout"), nil)
		req.AddCookie(ck)
		resp, err := c.A.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("signout: %d", resp.StatusCode)
		}
		took := waitRefused(t, c.B, "portal.gate.test", ck, began, time.Second)
		t.Logf("sign-out on A refused on B %v after the sign-out request was sent", took)
	})

	t.Run("AdminRevokeTenantOnAReachesB", func(t *testing.T) {
		acme := mustExchange(t, c.B, "portal.gate.test", mint(t, "acme", acmeSecret, "bob@acme.com", nil))
		globex := mustExchange(t, c.B, "globex.gate.test", mint(t, "globex", globexSecret, "ann@globex.test", nil))

		if code, body := adminRevoke(t, c.A, `{"subject":"x"}`); code != http.StatusBadRequest {
			t.Fatalf("revoke without tenant: %d %s", code, body)
		}
		began := time.Now()
		code, body := adminRevoke(t, c.A, `{"tenant":"acme"}`)
		if code != http.StatusOK {
			t.Fatalf("revoke: %d %s", code, body)
		}
		var resp struct {
			Tenant string `json:"tenant"`
			Until  string `json:"revoked_until"`
			Stores []struct {
				Type, Redis, KeyPrefix string
			} `json:"stores"`
		}
		if err := json.Unmarshal([]byte(body), &resp); err != nil || resp.Tenant != "acme" || len(resp.Stores) != 1 ||
			resp.Stores[0].Type != "redis" || resp.Stores[0].Redis != c.Redis.URL() {
			t.Fatalf("revoke response: %s", body)
		}
		took := waitRefused(t, c.B, "portal.gate.test", acme, began, time.Second)
		t.Logf("admin revoke on A refused the tenant's session on B %v later", took)
		if r, _ := get(t, c.B, "globex.gate.test", "/x", nil, globex); r.StatusCode != 200 {
			t.Fatalf("another tenant's session was revoked: %d", r.StatusCode)
		}
		// Sessions carry whole-second issue times, so one issued in the
		// revocation's second is covered too: a new one from the next
		// second on is not.
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
		fresh := mustExchange(t, c.B, "portal.gate.test", mint(t, "acme", acmeSecret, "bob@acme.com", nil))
		if r, _ := get(t, c.A, "portal.gate.test", "/x", nil, fresh); r.StatusCode != 200 {
			t.Fatalf("a session issued after the revocation is refused: %d", r.StatusCode)
		}
	})
}

func adminRevoke(t *testing.T, g *Gateway, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/embed_session/revoke", g.AdminPort), "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Proof 3: with Redis down, exchanges fail closed (503, Retry-After,
// store_unavailable) and existing sessions keep working; with Redis back on
// the same address, exchanges recover without restarting Caddy.
func TestClusterRedisOutage(t *testing.T) {
	c := startCluster(t, "")
	ck := mustExchange(t, c.A, "portal.gate.test", mint(t, "acme", acmeSecret, "jane@acme.com", nil))

	c.Redis.Stop()
	for i, g := range []*Gateway{c.A, c.B, c.A, c.B} {
		began := time.Now()
		res, err := doExchange(g.Client(), g, "portal.gate.test", mint(t, "acme", acmeSecret, "jane@acme.com", nil))
		if err != nil {
			t.Fatal(err)
		}
		if res.status != http.StatusServiceUnavailable || res.description != "store_unavailable" || res.retryAfter == "" || res.cookie != nil {
			t.Fatalf("exchange %d during the outage: %d %q Retry-After %q cookie %v", i, res.status, res.description, res.retryAfter, res.cookie != nil)
		}
		if took := time.Since(began); took > 2*time.Second {
			t.Fatalf("a refused exchange took %v", took)
		}
		for _, g := range []*Gateway{c.A, c.B} {
			if r, _ := get(t, g, "portal.gate.test", "/x", nil, ck); r.StatusCode != 200 {
				t.Fatalf("existing session during the outage: %d", r.StatusCode)
			}
		}
	}
	c.A.WaitLog(t, "Redis unavailable")
	c.A.WaitLog(t, `"reason":"store_unavailable"`)

	c.Redis.Start()
	for _, g := range []*Gateway{c.A, c.B} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			res, err := doExchange(g.Client(), g, "portal.gate.test", mint(t, "acme", acmeSecret, "jane@acme.com", nil))
			if err != nil {
				t.Fatal(err)
			}
			if res.status == http.StatusNoContent {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no recovery 10s after Redis came back: %d %q", res.status, res.description)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Sign-outs work again and reach the other instance (its subscription
	// reconnected by itself).
	fresh := mustExchange(t, c.A, "portal.gate.test", mint(t, "acme", acmeSecret, "jane@acme.com", nil))
	deadline := time.Now().Add(5 * time.Second)
	for {
		req, _ := http.NewRequest("POST", c.A.URL("portal.gate.test", "/.embed/signout"), nil)
		req.AddCookie(fresh)
		resp, err := c.A.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusNoContent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("signout after recovery: %d", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitRefused(t, c.B, "portal.gate.test", fresh, time.Now(), 3*time.Second)
}

// Proof 5: a replay entry lives as long as the token could verify on any
// instance, whatever each one's leeway (exp + 2·MaxLeeway, ten minutes),
// and no longer: Redis holds it with that deadline, so it cannot grow
// without bound. The token stops verifying long before the entry goes.
func TestClusterReplayKeysExpire(t *testing.T) {
	c := startCluster(t, "max_token_age 2s\n\t\tleeway 1s")
	const jti = "e2e-expiring-jti-0001"
	now := time.Now()
	exp := now.Unix() + 2
	tok := mint(t, "acme", acmeSecret, "jane@acme.com", map[string]any{
		"jti": jti, "iat": now.Unix(), "exp": exp,
	})
	mustExchange(t, c.A, "portal.gate.test", tok)
	key := c.prefix + "jti:acme:" + jti
	ctx := context.Background()
	// Redis's own deadline for the key: exp + 2·MaxLeeway, rounded up to
	// a second (an instance with the largest leeway, its clock that far
	// behind, still takes the token until then).
	window := int64(2 * token.MaxLeeway / time.Second)
	at, err := c.rdb.ExpireTime(ctx, key).Result()
	if err != nil || int64(at/time.Second) < exp+window || int64(at/time.Second) > exp+window+2 {
		t.Fatalf("EXPIRETIME %s = %v (%v), want exp + %ds (%d), rounded up", key, int64(at/time.Second), err, window, exp+window)
	}
	if res, _ := doExchange(c.B.Client(), c.B, "portal.gate.test", tok); res.status != 401 || res.description != "replayed" {
		t.Fatalf("replay on B within the window: %d %q", res.status, res.description)
	}
	// Past exp + leeway the token no longer verifies, and the entry that
	// guards it is still there.
	time.Sleep(time.Until(time.Unix(exp+2, 0)))
	if res, _ := doExchange(c.B.Client(), c.B, "portal.gate.test", tok); res.status != 401 || res.description != "expired" {
		t.Fatalf("after exp + leeway: %d %q, want 401 expired", res.status, res.description)
	}
	if ttl, err := c.rdb.PTTL(ctx, key).Result(); err != nil || ttl <= 0 {
		t.Fatalf("PTTL %s = %v (%v): gone while an instance with a larger leeway could still take the token", key, ttl, err)
	}
}

func containsSuffix(keys []string, suffix string) bool {
	for _, k := range keys {
		if strings.HasSuffix(k, suffix) {
			return true
		}
	}
	return false
}
