package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// keyRetries: a key whose read failed (a node restarting, a redirect
// loop during a migration) is read again this many times, a moment apart,
// before the resync counts it as unread.
const keyRetries = 3

// loadCounts counts one resync pass; node scans run concurrently.
type loadCounts struct {
	n, bad atomic.Int64
	gap    *gapSet // when set, notes the entries the mirror did not have
	seen   *keySet // every key listed, by any pass
}

// resync merges every revocation key into the mirror and returns how many
// it read. With gap set, it notes there the keys of entries the mirror did
// not have. Keys are found by SCAN on each node (every master of a Cluster)
// and read through the client, which follows Cluster redirections: during
// a slot migration a key listed by one node may already live on another.
// What cannot be read is retried; what still fails makes the error, and
// everything else is applied regardless.
func (r *Redis) resync(ctx context.Context, gap *gapSet) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, resyncTimeout)
	defer cancel()
	held, seen := r.mirror.held(), &keySet{}
	n, err := r.resyncInto(ctx, gap, seen)
	if err == nil {
		if restored := r.restoreMissing(ctx, held, seen); restored > 0 {
			r.report(Event{Kind: EventRestored, Entries: restored})
		}
	}
	return n, err
}

// resyncInto is resync's load, noting in seen every key it listed.
func (r *Redis) resyncInto(ctx context.Context, gap *gapSet, seen *keySet) (int64, error) {
	cc, isCluster := r.client.(*redis.ClusterClient)
	if !isCluster {
		c := &loadCounts{gap: gap, seen: seen}
		err := r.scanNode(ctx, r.client, c)
		r.reportBad(c)
		return c.n.Load(), err
	}
	// Two passes: a key moved by a migration between two nodes while both
	// are scanned can be missed by both scans. By the second pass it sits
	// at its new place (a migration moves a key once), where that pass finds
	// it.
	var c *loadCounts
	var errs []error
	for range 2 {
		c = &loadCounts{gap: gap, seen: seen}
		if err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return r.scanNode(ctx, node, c)
		}); err != nil {
			errs = append(errs, err)
		}
	}
	r.reportBad(c)
	return c.n.Load(), errors.Join(errs...)
}

func (r *Redis) reportBad(c *loadCounts) {
	if b := c.bad.Load(); b > 0 {
		r.report(Event{Kind: EventMalformedKeys, Entries: int(b)})
	}
}

// scanNode lists the revocation keys on node and loads them.
func (r *Redis) scanNode(ctx context.Context, node redis.Cmdable, c *loadCounts) error {
	match := globEscape(r.prefix) + "rev:*"
	var cursor uint64
	var unread []error
	for {
		keys, next, err := node.Scan(ctx, cursor, match, scanCount).Result()
		if err != nil {
			return errors.Join(append(unread, err)...)
		}
		if len(keys) > 0 {
			c.seen.add(keys)
			if err := r.loadKeys(ctx, keys, c); err != nil {
				unread = append(unread, err)
			}
		}
		if cursor = next; cursor == 0 {
			return errors.Join(unread...)
		}
	}
}

// loadKeys reads the values and remaining lifetimes of keys in one round
// trip (per node) and applies them; keys that failed are read again, up to
// keyRetries times.
func (r *Redis) loadKeys(ctx context.Context, keys []string, c *loadCounts) error {
	var err error
	for attempt := 0; len(keys) > 0; attempt++ {
		if attempt > 0 {
			if attempt > keyRetries {
				return fmt.Errorf("%d revocation keys unread: %w", len(keys), err)
			}
			if _, ok := pause(ctx, time.Duration(attempt)*100*time.Millisecond, nil); !ok {
				return fmt.Errorf("%d revocation keys unread: %w", len(keys), ctx.Err())
			}
		}
		keys, err = r.loadOnce(ctx, keys, c)
	}
	return nil
}

// loadOnce reads keys through the client and returns those whose read
// failed, with the first such error.
func (r *Redis) loadOnce(ctx context.Context, keys []string, c *loadCounts) ([]string, error) {
	pipe := r.client.Pipeline()
	gets := make([]*redis.StringCmd, len(keys))
	ttls := make([]*redis.DurationCmd, len(keys))
	for i, k := range keys {
		gets[i] = pipe.Get(ctx, k)
		ttls[i] = pipe.PTTL(ctx, k)
	}
	_, _ = pipe.Exec(ctx)
	var failed []string
	var first error
	for i, k := range keys {
		value, err := gets[i].Result()
		if errors.Is(err, redis.Nil) { // expired between SCAN and GET
			continue
		}
		ttl, terr := ttls[i].Result()
		if err == nil {
			err = terr
		}
		if err != nil {
			failed = append(failed, k)
			if first == nil {
				first = err
			}
			continue
		}
		switch {
		case ttl == -1: // no expiry: not written by us; honour it for the longest
			ttl = maxTTL
		case ttl <= 0:
			continue
		}
		var e revEntry
		if json.Unmarshal([]byte(value), &e) != nil || !e.valid() {
			c.bad.Add(1)
			continue
		}
		if r.apply(e, max(ttl.Milliseconds(), 1)) && c.gap != nil {
			c.gap.add(k)
		}
		c.n.Add(1)
	}
	return failed, first
}

// globEscape quotes SCAN MATCH metacharacters in a literal prefix.
func globEscape(s string) string {
	if !containsGlob(s) {
		return s
	}
	out := make([]rune, 0, len(s)+4)
	for _, c := range s {
		if isGlob(c) {
			out = append(out, '\\')
		}
		out = append(out, c)
	}
	return string(out)
}

func containsGlob(s string) bool {
	for _, c := range s {
		if isGlob(c) {
			return true
		}
	}
	return false
}

func isGlob(c rune) bool { return c == '*' || c == '?' || c == '[' || c == ']' || c == '\\' }
