package replay

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/embedgate/embedgate/internal/reason"
)

// A used-jti key holds the id of the claim that took it ("c:" and a random
// id, one per Claim call), or, once that claim was given back, claimFree;
// when the release came before its claim, claimFree, ":" and that claim's
// id, so that this one claim still on its way finds it taken.
const (
	claimPrefix = "c:"
	claimFree   = "free"
)

// claimScript takes a token id: when the key is absent, when it holds this
// very claim (a client library retry of the same call), or when a claim
// that failed was given back (claimFree, or claimFree:<id> of another
// claim). It returns 1 when the id is this claim's, 0 when another claim
// holds it (a replay) or when this claim was given back before it came.
var claimScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then return 1 end
if v == 'free' or (type(v) == 'string' and string.sub(v, 1, 5) == 'free:' and v ~= 'free:' .. ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
`)

// releaseScript gives a claim back after its exchange failed (503), so the
// next exchange of the token succeeds. A key holding that claim becomes
// claimFree. A key that does not exist yet (the claim may still be on its
// way) becomes claimFree:<that claim's id>: the late claim must not take
// it, which would use the token for an exchange that already answered
// 503, but any other claim may. A key held by another claim is left alone:
// that exchange succeeded.
var releaseScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('SET', KEYS[1], 'free', 'KEEPTTL')
  return 1
end
if v == false then
  redis.call('SET', KEYS[1], 'free:' .. ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
`)

// errNotDurable: the write was applied on the master, but fewer replicas
// than RedisConfig.Replicas acknowledged it in time.
var errNotDurable = errors.New("not acknowledged by enough replicas")

// Claim implements Store. The claim is a script that writes this call's
// claim id with SET NX PX ttl (a ttl <= 0 is one second), then, with
// Replicas set, WAITs for the replicas. When the outcome is unknown (a
// timeout: the write may still be applied) or the write is not durable,
// Claim fails closed and the claim is given back in the background, so a
// retry of the same token after the 503 succeeds instead of being refused
// as a replay. Only a claim that made no session is ever given back, so a
// token still makes at most one session.
func (r *Redis) Claim(ctx context.Context, tenant, jti string, ttl time.Duration) error {
	key := r.jtiKey(tenant, jti)
	id := claimPrefix + rand.Text()
	ms := ttlMillis(ttl)
	until := time.Now().Add(time.Duration(ms) * time.Millisecond)
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	took, err := r.durable(ctx, key, claimScript, id, ms)
	if err == nil {
		r.health.succeeded()
		if took == 0 {
			return reason.Errorf(reason.Replayed, "token id already used for tenant %q", tenant)
		}
		return nil
	}
	if outcomeUnknown(err) {
		r.giveBack(key, id, until)
	}
	// The jti is hashed: details are logged, ids are not.
	return r.fail(ctx, err, "claiming token id %s of tenant %q", fingerprint(jti), tenant)
}

// outcomeUnknown reports whether a failed claim may have been applied: a
// lost reply, or a write that is not durable. A Redis error reply means it
// was not.
func outcomeUnknown(err error) bool {
	if errors.Is(err, errNotDurable) {
		return true
	}
	var re redis.Error
	return !errors.As(err, &re)
}

// durable runs script on key and, with Replicas set, WAITs for the
// replicas on the same connection (WAIT counts that connection's writes).
// It returns the script's integer result; a result of 0 means the script
// wrote nothing, so nothing needs acknowledging.
func (r *Redis) durable(ctx context.Context, key string, script *redis.Script, args ...any) (int64, error) {
	if r.replicas == 0 {
		return script.Run(ctx, r.client, []string{key}, args...).Int64()
	}
	var conn redis.Cmdable = r.client
	cc, isCluster := r.client.(*redis.ClusterClient)
	if isCluster {
		// WAIT has no key: run both on the key's master directly.
		node, err := cc.MasterForKey(ctx, key)
		if err != nil {
			return 0, err
		}
		conn = node
	}
	asking := false
	for redirects := 0; ; redirects++ {
		res, acked, err := r.runAndWait(ctx, conn, asking, key, script, args)
		if isCluster && redirects < 2 && err != nil {
			if next, ask, ok := redirect(ctx, cc, err); ok {
				conn, asking = next, ask
				continue
			}
		}
		switch {
		case err != nil:
			return 0, err
		case res != 0 && acked < int64(r.replicas):
			return res, fmt.Errorf("%w: %d of %d within %dms", errNotDurable, acked, r.replicas, r.waitMillis)
		}
		return res, nil
	}
}

// runAndWait pipelines [ASKING,] EVAL and WAIT on one connection.
func (r *Redis) runAndWait(ctx context.Context, conn redis.Cmdable, asking bool, key string, script *redis.Script, args []any) (int64, int64, error) {
	pipe := conn.Pipeline()
	if asking {
		pipe.Do(ctx, "ASKING")
	}
	run := script.Eval(ctx, pipe, []string{key}, args...)
	wait := pipe.Do(ctx, "WAIT", r.replicas, r.waitMillis)
	_, _ = pipe.Exec(ctx)
	res, err := run.Int64()
	if err != nil {
		return 0, 0, err
	}
	acked, err := wait.Int64()
	if err != nil && res != 0 {
		// Applied, durability unknown.
		return res, 0, fmt.Errorf("%w: WAIT: %w", errNotDurable, err)
	}
	return res, acked, nil
}

// redirect turns a MOVED or ASK reply into the master to ask next.
func redirect(ctx context.Context, cc *redis.ClusterClient, err error) (*redis.Client, bool, bool) {
	kind, rest, _ := strings.Cut(err.Error(), " ")
	if kind != "MOVED" && kind != "ASK" {
		return nil, false, false
	}
	_, addr, _ := strings.Cut(rest, " ")
	if kind == "MOVED" {
		cc.ReloadState(ctx)
	}
	var mu sync.Mutex
	var found *redis.Client
	_ = cc.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
		if c.Options().Addr == addr {
			mu.Lock()
			found = c
			mu.Unlock()
		}
		return nil
	})
	return found, kind == "ASK", found != nil
}

// A claim to give back, until its token expires.
type release struct {
	key, id string
	until   time.Time
}

// maxPendingReleases bounds the claims waiting to be given back during an
// outage; past it, those tokens stay used (the client needs a fresh one).
const maxPendingReleases = 10000

// giveBack queues a failed claim for the releaser.
func (r *Redis) giveBack(key, id string, until time.Time) {
	select {
	case r.releases <- release{key: key, id: id, until: until}:
	default:
		if r.releaseFull.CompareAndSwap(false, true) {
			r.report(Event{Kind: EventClaimsNotReturned})
		}
	}
}

// releaser gives queued claims back, in batches of one round trip, retrying
// while Redis does not answer, until each token's expiry or Close.
func (r *Redis) releaser(ctx context.Context) {
	defer close(r.releaserDone)
	for {
		var batch []release
		select {
		case <-ctx.Done():
			return
		case rel := <-r.releases:
			batch = append(batch, rel)
		}
	fill:
		for len(batch) < 100 {
			select {
			case rel := <-r.releases:
				batch = append(batch, rel)
			default:
				break fill
			}
		}
		delay := minBackoff
		for len(batch) > 0 {
			if batch = r.releaseBatch(ctx, batch); len(batch) == 0 {
				break
			}
			if _, ok := pause(ctx, delay, nil); !ok {
				return
			}
			delay = min(delay*2, time.Second)
		}
		if len(r.releases) == 0 {
			r.releaseFull.Store(false)
		}
	}
}

// releaseBatch runs releaseScript for each unexpired claim and returns
// those to try again (no answer).
func (r *Redis) releaseBatch(ctx context.Context, batch []release) []release {
	ctx, cancel := context.WithTimeout(ctx, max(r.timeout, time.Second))
	defer cancel()
	now := time.Now()
	pipe := r.client.Pipeline()
	live := batch[:0]
	var cmds []*redis.Cmd
	for _, rel := range batch {
		left := rel.until.Sub(now)
		if left <= 0 {
			continue
		}
		live = append(live, rel)
		cmds = append(cmds, releaseScript.Eval(ctx, pipe, []string{rel.key}, rel.id, ttlMillis(left)))
	}
	if len(live) == 0 {
		return nil
	}
	_, _ = pipe.Exec(ctx)
	var again []release
	for i, c := range cmds {
		if err := c.Err(); err != nil && outcomeUnknown(err) {
			again = append(again, live[i])
		}
	}
	return again
}
