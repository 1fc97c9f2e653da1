package replay

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Tuning of the goroutine that keeps the mirror current. None of it is on
// the request path.
const (
	// healthInterval: an idle subscription is pinged this often, and is
	// declared dead when a ping gets no answer within the next interval, so
	// a silently dropped connection is replaced (and resynced) in ~2s.
	healthInterval = time.Second
	minBackoff     = 50 * time.Millisecond
	maxBackoff     = 2 * time.Second
	resyncTimeout  = 30 * time.Second
	policyTimeout  = 5 * time.Second
	sweepInterval  = time.Minute
	scanCount      = 500
)

// run keeps the subscription alive until ctx ends: subscribe, load every
// revocation, apply announcements; on any failure, back off and start over.
func (r *Redis) run(ctx context.Context) {
	defer close(r.done)
	delay := minBackoff
	lastSweep := time.Now()
	for {
		synced, err := r.follow(ctx, &lastSweep)
		if ctx.Err() != nil {
			return
		}
		if synced {
			delay = minBackoff
			r.log.Warn("lost the revocation subscription; reconnecting, then resyncing", "error", err.Error())
		}
		r.sweepIfDue(&lastSweep)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(delay*2, maxBackoff)
	}
}

// follow runs one subscription until it fails. go-redis re-dials and
// re-subscribes by itself after some errors; either way every (re)subscribe
// is confirmed by a "subscribe" message, and that is when the mirror is
// fully reloaded, as announcements sent while disconnected are lost.
// synced reports whether this subscription got as far as a full load.
func (r *Redis) follow(ctx context.Context, lastSweep *time.Time) (synced bool, err error) {
	ps := r.client.Subscribe(ctx, r.channel)
	r.psMu.Lock()
	r.ps = ps
	r.psMu.Unlock()
	defer func() {
		r.psMu.Lock()
		r.ps = nil
		r.psMu.Unlock()
		_ = ps.Close()
	}()
	if ctx.Err() != nil { // Close ran before r.ps was set
		return false, ctx.Err()
	}
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, healthInterval)
		if err != nil {
			if ctx.Err() != nil {
				return synced, ctx.Err()
			}
			if !isTimeout(err) {
				return synced, err
			}
			if pinged {
				return synced, errors.New("subscription did not answer a ping")
			}
			if err := ps.Ping(ctx); err != nil {
				return synced, err
			}
			pinged = true
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			n, err := r.resync(ctx)
			if err != nil {
				return synced, err
			}
			select {
			case <-r.synced:
				r.log.Info("revocations resynced after a reconnect", "entries", n)
			default:
				r.log.Info("revocations loaded from Redis", "entries", n)
			}
			// Before r.synced closes, so that at start the warning comes
			// with the config load that caused it; after a reconnect too,
			// as a failover may land on a differently configured node.
			r.checkPolicy(ctx)
			synced = true
			r.syncOnce.Do(func() { close(r.synced) })
		case *redis.Message:
			r.applyAnnouncement(m.Payload)
		}
		r.sweepIfDue(lastSweep)
	}
}

// sweepIfDue sweeps the mirror when sweepInterval has passed since
// *lastSweep, and then records the sweep there.
func (r *Redis) sweepIfDue(lastSweep *time.Time) {
	if time.Since(*lastSweep) >= sweepInterval {
		r.mirror.sweep()
		*lastSweep = time.Now()
	}
}

// applyAnnouncement applies "<ttl ms> <origin> <entry JSON>" from the
// channel, unless this instance sent it.
func (r *Redis) applyAnnouncement(payload string) {
	ttlText, rest, ok1 := strings.Cut(payload, " ")
	origin, value, ok2 := strings.Cut(rest, " ")
	if origin == r.origin {
		return
	}
	ttl, err := strconv.ParseInt(ttlText, 10, 64)
	var e revEntry
	if !ok1 || !ok2 || err != nil || ttl <= 0 || json.Unmarshal([]byte(value), &e) != nil || !e.valid() {
		r.log.Warn("ignored a malformed revocation announcement")
		return
	}
	r.apply(e, ttl)
}

func (e revEntry) valid() bool { return e.SID != "" || e.Tenant != "" }

// resync merges every revocation key into the mirror and returns how many
// it read. On a Cluster every master is scanned.
func (r *Redis) resync(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, resyncTimeout)
	defer cancel()
	var n, bad atomic.Int64
	match := globEscape(r.prefix) + "rev:*"
	load := func(ctx context.Context, c redis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, match, scanCount).Result()
			if err != nil {
				return err
			}
			if len(keys) > 0 {
				if err := r.loadKeys(ctx, c, keys, &n, &bad); err != nil {
					return err
				}
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	var err error
	if cc, ok := r.client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return load(ctx, c) })
	} else {
		err = load(ctx, r.client)
	}
	if b := bad.Load(); b > 0 {
		r.log.Warn("ignored malformed revocation keys", "count", b)
	}
	return n.Load(), err
}

// loadKeys reads the values and remaining lifetimes of keys in one round
// trip and applies them.
func (r *Redis) loadKeys(ctx context.Context, c redis.Cmdable, keys []string, n, bad *atomic.Int64) error {
	pipe := c.Pipeline()
	gets := make([]*redis.StringCmd, len(keys))
	ttls := make([]*redis.DurationCmd, len(keys))
	for i, k := range keys {
		gets[i] = pipe.Get(ctx, k)
		ttls[i] = pipe.PTTL(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	for i := range keys {
		value, err := gets[i].Result()
		if err != nil { // expired between SCAN and GET
			continue
		}
		ttl := ttls[i].Val()
		switch {
		case ttl == -1: // no expiry: not written by us; honour it for the longest
			ttl = maxTTL
		case ttl <= 0:
			continue
		}
		var e revEntry
		if json.Unmarshal([]byte(value), &e) != nil || !e.valid() {
			bad.Add(1)
			continue
		}
		r.apply(e, max(ttl.Milliseconds(), 1))
		n.Add(1)
	}
	return nil
}

// checkPolicy warns when Redis may evict keys. Replay keys all carry a TTL,
// so every allkeys-* and volatile-* policy can pick them under memory
// pressure, and an evicted key lets that token be exchanged again. It warns
// again only when the policy changes (a failover to a differently
// configured node).
func (r *Redis) checkPolicy(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, policyTimeout)
	defer cancel()
	res, err := r.client.ConfigGet(ctx, "maxmemory-policy").Result()
	policy := res["maxmemory-policy"]
	if err != nil || policy == "" {
		if r.lastPolicy != "?" {
			r.lastPolicy = "?"
			msg := "could not read Redis maxmemory-policy; make sure it is noeviction, or evicted replay keys let used tokens through again"
			if err != nil {
				r.log.Warn(msg, "error", err.Error())
			} else {
				r.log.Warn(msg)
			}
		}
		return
	}
	if policy == r.lastPolicy {
		return
	}
	r.lastPolicy = policy
	if policy != "noeviction" {
		r.log.Warn("Redis maxmemory-policy is not noeviction: under memory pressure Redis may evict used-token keys "+
			"(each carries a TTL, so allkeys-* and volatile-* policies can all pick them), and an evicted key lets that token "+
			"be exchanged a second time. Set maxmemory-policy noeviction: a full Redis then refuses writes and exchanges fail closed (503).",
			"maxmemory_policy", policy)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// globEscape quotes SCAN MATCH metacharacters in a literal prefix.
func globEscape(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}
