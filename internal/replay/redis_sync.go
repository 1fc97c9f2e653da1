package replay

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Tuning of the goroutine that keeps the mirror current. None of it is on
// the request path.
const (
	// healthInterval: the subscription is checked end to end this often:
	// a probe is published through the request-path client (which always
	// talks to the current master) and must come back on the subscription
	// within the next interval. A subscription left on a demoted master, or
	// silently dropped, is so replaced (and resynced) within two intervals.
	healthInterval = time.Second
	// fastProbe: for fastFor after a master change the check runs this
	// often: a client's pool and its Sentinel may move a moment after the
	// subscription did (each client asks one sentinel, and sentinels learn
	// of a switch at slightly different times), and the subscription must
	// follow within a second of the pool.
	fastProbe     = 200 * time.Millisecond
	fastFor       = 5 * time.Second
	minBackoff    = 50 * time.Millisecond
	maxBackoff    = time.Second
	resyncTimeout = 30 * time.Second
	policyTimeout = 5 * time.Second
	sweepInterval = time.Minute
	scanCount     = 500
)

// probeSID starts the session id of a probe announcement. Probes are
// announcements of a revocation that cannot match a session (session ids
// hold no ':') for 1ms: other instances skip them, and older versions
// apply them harmlessly.
const probeSID = "probe:"

var errStale = errors.New("a probe published through the client did not come back on the subscription in time")

// run keeps the subscription alive until ctx ends: subscribe, load every
// revocation, apply announcements; on any failure, back off and start over.
// A master switch announced by the sentinels cuts the wait short.
func (r *Redis) run(ctx context.Context) {
	defer close(r.done)
	delay := minBackoff
	lastSweep := time.Now()
	rewrite := false // the next subscription follows a lost one: write recent revocations again
	for {
		synced, err := r.follow(ctx, &lastSweep, rewrite)
		if ctx.Err() != nil {
			return
		}
		kicked := r.kicked.Swap(false)
		switch {
		case kicked:
			r.report(Event{Kind: EventMasterSwitched})
		case errors.Is(err, errStale):
			r.report(Event{Kind: EventSubscriptionStale, Err: err})
		case synced:
			r.report(Event{Kind: EventSubscriptionLost, Err: err})
		default:
			r.lastErr.Store(&err)
		}
		rewrite = rewrite || synced || kicked
		if synced || kicked {
			delay = minBackoff
		}
		r.sweepIfDue(&lastSweep)
		if kicked {
			select { // this kick is handled
			case <-r.kicks:
			default:
			}
			continue
		}
		switched, ok := pause(ctx, delay, r.kicks)
		if !ok {
			return
		}
		if switched {
			r.kicked.Store(false)
			r.report(Event{Kind: EventMasterSwitched})
			rewrite = true
		}
		delay = min(delay*2, maxBackoff)
	}
}

// kick moves the subscription at once (a master switch).
func (r *Redis) kick() {
	r.kicked.Store(true)
	select {
	case r.kicks <- struct{}{}:
	default:
	}
	r.closeSubscription()
}

// follow runs one subscription until it fails. go-redis re-dials and
// re-subscribes by itself after some errors; either way every (re)subscribe
// is confirmed by a "subscribe" message, and that is when the mirror is
// fully reloaded, as announcements sent while disconnected are lost.
// synced reports whether this subscription got as far as a load.
func (r *Redis) follow(ctx context.Context, lastSweep *time.Time, rewrite bool) (synced bool, err error) {
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
	p := &prober{}
	if rewrite {
		p.fastUntil = time.Now().Add(fastFor)
	}
	// A periodic reload in progress ends with this subscription.
	reloadCtx, stopReload := context.WithCancel(ctx)
	defer func() {
		stopReload()
		p.reload.wait()
	}()
	var lastResync, rewriteAgain, lastUnwritten time.Time
	incomplete, retryAfter := false, healthInterval
	for {
		msg, err := ps.ReceiveTimeout(ctx, p.wait())
		switch {
		case err != nil && ctx.Err() != nil:
			return synced, ctx.Err()
		case err != nil && !isTimeout(err):
			return synced, err
		case err == nil:
			switch m := msg.(type) {
			case *redis.Subscription:
				if m.Kind != "subscribe" {
					continue
				}
				if rewrite && !synced {
					// Once more a little later: a client whose pool had
					// not moved yet may have written to the old master in
					// the meantime.
					rewriteAgain = time.Now().Add(2 * healthInterval)
				}
				incomplete = !r.load(ctx, rewrite && !synced, false)
				synced, lastResync, retryAfter = true, time.Now(), healthInterval
				p.reload.restart(r)
				p.subscribed, p.returned, p.confirmed = true, false, false
				p.lastSent = time.Time{} // probe at once
			case *redis.Message:
				r.applyAnnouncement(m.Payload, p)
				// A failure already reported (incomplete) is not reported again.
				if rewrite && !r.reloadOnceProbeReturned(ctx, p, incomplete) {
					incomplete = true
				}
			case *redis.Pong:
				p.pinged = time.Time{}
			}
		}
		if synced && !incomplete && !r.reloadStep(reloadCtx, &p.reload) {
			incomplete, lastResync, retryAfter = true, time.Now(), healthInterval
		}
		if incomplete && time.Since(lastResync) >= retryAfter {
			// Backing off: a Cluster master that stays down fails every try.
			incomplete, lastResync = !r.load(ctx, false, true), time.Now()
			retryAfter = min(retryAfter*2, resyncTimeout)
		}
		if !rewriteAgain.IsZero() && time.Now().After(rewriteAgain) {
			rewriteAgain = time.Time{}
			if n := r.rewriteRecent(ctx); n > 0 {
				r.report(Event{Kind: EventRewritten, Entries: n})
			}
		}
		if err := r.check(ctx, ps, p); err != nil {
			return synced, err
		}
		if time.Since(lastUnwritten) >= healthInterval && r.hasUnwritten() {
			lastUnwritten = time.Now()
			r.writeUnwrittenReport(ctx)
		}
		r.sweepIfDue(lastSweep)
	}
}

// reloadOnceProbeReturned loads the mirror again when the first probe of
// a new subscription after a lost one or a master switch has come back,
// and reports whether all is loaded. The load at subscribe time read
// through the pool, which a failover may have left on the old master (the
// subscription moves first), and missed what other instances wrote on the
// new one meanwhile; a returned probe shows that the pool now reaches the
// server the subscription listens on. A failed load is reported as
// EventResyncIncomplete unless quiet (one is already in progress). A
// successful one reports nothing: it leaves incomplete as it was, so after
// an incomplete load at subscribe time the backed-off retry still runs and
// is the one that reports EventResynced.
func (r *Redis) reloadOnceProbeReturned(ctx context.Context, p *prober, quiet bool) bool {
	if !p.returned || p.confirmed {
		return true
	}
	p.confirmed = true
	n, err := r.resync(ctx, nil)
	if err != nil {
		r.resyncFailed(err, n, !quiet)
		return false
	}
	return true
}

// resyncFailed records a failed load of the mirror for EventNotLoaded and,
// when report is set, reports it with the entries it did load.
func (r *Redis) resyncFailed(err error, loaded int64, report bool) {
	r.lastErr.Store(&err)
	if report {
		r.report(Event{Kind: EventResyncIncomplete, Err: err, Entries: int(loaded)})
	}
}

// load resyncs the mirror (writing recent revocations again first when
// rewrite is set) and reports whether it read everything; an incomplete
// load is reported once, not again when a retry is incomplete too.
func (r *Redis) load(ctx context.Context, rewrite, retry bool) bool {
	r.writeUnwrittenReport(ctx)
	if rewrite {
		if n := r.rewriteRecent(ctx); n > 0 {
			r.report(Event{Kind: EventRewritten, Entries: n})
		}
	}
	n, err := r.resync(ctx, nil)
	if err != nil {
		r.resyncFailed(err, n, !retry)
		return false
	}
	select {
	case <-r.synced:
		r.report(Event{Kind: EventResynced, Entries: int(n)})
	default:
		r.report(Event{Kind: EventLoaded, Entries: int(n)})
	}
	// Before r.synced closes, so that at start the warning comes with the
	// config load that caused it; after a reconnect too, as a failover may
	// land on a differently configured node.
	r.checkPolicy(ctx)
	r.syncOnce.Do(func() { close(r.synced) })
	return true
}

// prober is the state of one subscription's end-to-end check.
type prober struct {
	fastUntil  time.Time // probe every fastProbe until then
	subscribed bool
	lastSent   time.Time // last probe published
	pending    string    // the probe's announcement body, until it comes back
	returned   bool      // a probe of this subscription came back
	confirmed  bool      // the mirror was loaded again after that
	pinged     time.Time // a PING sent on the subscription, until its PONG
	reload     reloader  // the periodic full reload
}

// every is the probe period, which is also the time a probe has to come back.
func (p *prober) every() time.Duration {
	if time.Now().Before(p.fastUntil) {
		return fastProbe
	}
	return healthInterval
}

// wait is how long the next receive may block.
func (p *prober) wait() time.Duration {
	if !p.subscribed {
		return healthInterval
	}
	every := p.every()
	return max(10*time.Millisecond, min(every, time.Until(p.lastSent.Add(every))))
}

// check publishes a probe every healthInterval through the request-path
// client and fails the subscription when the previous one has not come
// back: it then listens where announcements no longer arrive. When the
// probe cannot be published (Redis unreachable), a PING on the subscription
// checks the connection instead, as before the subscription was
// confirmed.
func (r *Redis) check(ctx context.Context, ps *redis.PubSub, p *prober) error {
	now := time.Now()
	if !p.pinged.IsZero() && now.Sub(p.pinged) > healthInterval {
		return errors.New("subscription did not answer a ping")
	}
	every := p.every()
	if p.subscribed && p.pending != "" && now.Sub(p.lastSent) > every {
		return errStale
	}
	if now.Sub(p.lastSent) < every || p.pending != "" {
		return nil
	}
	p.lastSent = now
	if p.subscribed {
		body := `{"sid":"` + probeSID + rand.Text() + `"}`
		cctx, cancel := context.WithTimeout(ctx, every/2)
		err := r.client.Publish(cctx, r.channel, "1 "+r.origin+" "+body).Err()
		cancel()
		if err == nil {
			p.pending = body
			return nil
		}
	}
	if p.pinged.IsZero() {
		if err := ps.Ping(ctx); err != nil {
			return err
		}
		p.pinged = now
	}
	return nil
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
// channel, unless this instance sent it (then it may be the probe p waits
// for) or it is a probe.
func (r *Redis) applyAnnouncement(payload string, p *prober) {
	ttlText, rest, ok1 := strings.Cut(payload, " ")
	origin, value, ok2 := strings.Cut(rest, " ")
	if origin == r.origin {
		if value == p.pending {
			p.pending, p.returned = "", true
		}
		return
	}
	ttl, err := strconv.ParseInt(ttlText, 10, 64)
	var e revEntry
	if !ok1 || !ok2 || err != nil || ttl <= 0 || json.Unmarshal([]byte(value), &e) != nil || !e.valid() {
		r.report(Event{Kind: EventMalformedAnnouncement})
		return
	}
	if strings.HasPrefix(e.SID, probeSID) {
		return
	}
	r.apply(e, ttl)
	p.reload.announced(r, e)
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
			r.report(Event{Kind: EventPolicyUnknown, Err: err})
		}
		return
	}
	if policy == r.lastPolicy {
		return
	}
	r.lastPolicy = policy
	if policy != "noeviction" {
		r.report(Event{Kind: EventPolicyEvicts, Policy: policy})
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// watchSentinels follows the sentinels' +switch-master announcements for
// this master and moves the subscription at once. go-redis moves its pooled
// connections on the same announcement, but not pub/sub ones, and the
// demoted master may stay up (and keep a PING answered) indefinitely.
func (r *Redis) watchSentinels(ctx context.Context) {
	defer close(r.watchDone)
	opt := r.sentinel
	for i := 0; ctx.Err() == nil; i++ {
		sc := redis.NewSentinelClient(&redis.Options{
			Addr: opt.SentinelAddrs[i%len(opt.SentinelAddrs)], Username: opt.SentinelUsername, Password: opt.SentinelPassword,
			TLSConfig: opt.TLSConfig, DialTimeout: 2 * time.Second, MaxRetries: -1,
		})
		err := r.watchSentinel(ctx, sc, opt.MasterName)
		_ = sc.Close()
		if ctx.Err() != nil {
			return
		}
		r.lastWatchErr(err)
		if _, ok := pause(ctx, maxBackoff, nil); !ok {
			return
		}
	}
}

// watchSentinel follows one sentinel until it fails.
func (r *Redis) watchSentinel(ctx context.Context, sc *redis.SentinelClient, master string) error {
	ps := sc.Subscribe(ctx, "+switch-master")
	defer ps.Close()
	// The receive below waits out its timeout whatever ctx does: Close
	// unblocks it.
	defer context.AfterFunc(ctx, func() { _ = ps.Close() })()
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, healthInterval)
		switch {
		case err != nil && isTimeout(err) && !pinged:
			if err := ps.Ping(ctx); err != nil {
				return err
			}
			pinged = true
			continue
		case err != nil && isTimeout(err):
			return errors.New("sentinel did not answer a ping")
		case err != nil:
			return err
		}
		pinged = false
		// "<master name> <old ip> <old port> <new ip> <new port>"
		if m, ok := msg.(*redis.Message); ok && strings.HasPrefix(m.Payload, master+" ") {
			r.kick()
		}
	}
}

// lastWatchErr records a sentinel watch failure as a start cause, when
// nothing else failed.
func (r *Redis) lastWatchErr(err error) {
	if err != nil && r.lastErr.Load() == nil {
		err = fmt.Errorf("sentinel: %w", err)
		r.lastErr.Store(&err)
	}
}
