package replay

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/embedgate/embedgate/internal/reason"
)

// Defaults for RedisConfig.
const (
	DefaultRedisKeyPrefix = "embedgate:"
	DefaultRedisTimeout   = 150 * time.Millisecond
	// DefaultRedisStartWait bounds how long NewRedis waits for the first
	// load of the revocation mirror.
	DefaultRedisStartWait = 3 * time.Second
	// DefaultRedisReloadEvery is how often the mirror is reloaded in full
	// while the subscription is healthy.
	DefaultRedisReloadEvery = time.Minute
	// MaxRedisReplicas bounds RedisConfig.Replicas.
	MaxRedisReplicas = 16
)

// RedisConfig configures NewRedis.
type RedisConfig struct {
	// URL names the server. redis://[user:password@]host:port[/db],
	// rediss:// for TLS and unix:///path?db=N as go-redis parses them;
	// redis+sentinel:// (rediss+sentinel://) with ?master_name=NAME and
	// more sentinels as &addr=host:port (the URL's user and password are
	// the sentinels'; the data nodes' go in &username= and &password=);
	// redis+cluster:// (rediss+cluster://) with more seed nodes as
	// ?addr=host:port. ?skip_verify=true turns certificate checks off on
	// every rediss form.
	URL string
	// TLS, when set, is the TLS config for every connection (data nodes and
	// sentinels); the URL must be a rediss one. Its empty ServerName
	// becomes the URL's host. See RedisTLS.Load.
	TLS *tls.Config
	// KeyPrefix starts every key and the pub/sub channel (which also names
	// the database when it is not 0: revocationChannel); instances that
	// share state use the same prefix. Default DefaultRedisKeyPrefix.
	KeyPrefix string
	// Timeout bounds each command on the request path. Default
	// DefaultRedisTimeout.
	Timeout time.Duration
	// Replicas, when positive, makes each claim and revocation wait (WAIT)
	// until that many replicas acknowledged it, for at most a third of
	// Timeout (Redis ends a WAIT up to 100ms late, its timer tick); when
	// fewer do, the call fails as store_unavailable. Default
	// 0: no waiting (replication is asynchronous).
	Replicas int
	// StartWait bounds how long NewRedis waits for the revocation mirror's
	// first load before returning anyway. Default DefaultRedisStartWait.
	StartWait time.Duration
	// ReloadEvery is how often the whole mirror is reloaded from Redis
	// while the subscription looks healthy (with up to a tenth of jitter,
	// so that instances do not scan in step). It closes gaps no probe can
	// see: a subscription left on a demoted master hears the new master's
	// announcements again once it replicates from it, and what was
	// published in between is lost. Default DefaultRedisReloadEvery.
	ReloadEvery time.Duration
	// Seed is a store on the same Redis and KeyPrefix (the one a config
	// reload replaces, say for a new timeout or renewed TLS files) whose
	// revocations the new mirror starts with: until its first load, which
	// waits for Redis, it must not take sessions the old one refused.
	// Default: none.
	Seed *Redis
	// Now is the clock for revocation expiries; nil means time.Now.
	Now func() time.Time
	// Report receives state changes (outage, recovery, resync) and the
	// maxmemory-policy warnings, from the store's goroutines; nil discards
	// them. It must not block.
	Report func(Event)
}

// Redis is a Store and Revocations shared by every gateway instance that
// uses the same Redis and key prefix. Claim and Revoke are one round trip
// each; Revoked reads a local mirror kept current over pub/sub, so the
// per-request session check never waits on Redis.
type Redis struct {
	client     redis.UniversalClient
	sentinel   *redis.FailoverOptions // Sentinel deployments only
	target     string                 // URL without secrets, for logs and the admin API
	prefix     string
	channel    string
	origin     string // random id of this instance, to skip its own announcements
	timeout    time.Duration
	replicas   int
	waitMillis int64 // WAIT timeout
	// reloadEvery: the period of the full reload (RedisConfig.ReloadEvery)
	reloadEvery time.Duration
	now         func() time.Time
	report      func(Event)
	mirror      *mirror
	health      *health

	// Claims given back after a failed exchange (redis_claim.go).
	releases     chan release
	releaseFull  atomic.Bool
	releaserDone chan struct{}

	// This instance's recent revocations, written again after a master
	// change (redis_revoke.go).
	recentMu      sync.Mutex
	recent        []recentRevocation
	rewriteWindow time.Duration
	// Revocations Redis did not take, by key, written again until it does
	// (redis_unwritten.go); how many were dropped past maxUnwritten since
	// the last report.
	unwrittenMu      sync.Mutex
	unwritten        map[string]recentRevocation
	unwrittenDropped int

	lastErr atomic.Pointer[error] // the sync goroutine's last failure, for EventNotLoaded
	kicks   chan struct{}         // a master switch: resubscribe now
	kicked  atomic.Bool

	cancel    context.CancelFunc
	done      chan struct{}
	watchDone chan struct{} // closed when the sentinel watcher ended (at once without one)
	synced    chan struct{} // closed after the first full load of the mirror
	syncOnce  sync.Once
	closeOnce sync.Once
	psMu      sync.Mutex
	ps        *redis.PubSub // current subscription, closed by Close to unblock it

	lastPolicy string // maxmemory-policy last seen; only the sync goroutine
}

var (
	_ Store       = (*Redis)(nil)
	_ Revocations = (*Redis)(nil)
)

// NewRedis connects to Redis, starts the goroutine that keeps the
// revocation mirror current, and waits (at most cfg.StartWait, or until ctx
// ends) for the mirror's first load. An unreachable Redis is not an error:
// exchanges fail closed until it answers, and the mirror loads when it does.
// Only a bad configuration is. Call Close to stop.
func NewRedis(ctx context.Context, cfg RedisConfig) (*Redis, error) {
	cfg = redisDefaults(cfg)
	if err := CheckReplicas(cfg.Replicas); err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	spec, err := newRedisClient(cfg.URL, cfg.TLS)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	r := &Redis{
		client:        spec.client,
		sentinel:      spec.sentinel,
		target:        spec.target,
		prefix:        cfg.KeyPrefix,
		channel:       revocationChannel(cfg.KeyPrefix, spec.db),
		origin:        rand.Text(),
		timeout:       cfg.Timeout,
		replicas:      cfg.Replicas,
		waitMillis:    max(1, (cfg.Timeout / 3).Milliseconds()),
		reloadEvery:   cfg.ReloadEvery,
		now:           cfg.Now,
		report:        cfg.Report,
		mirror:        newMirror(cfg.Now),
		health:        newHealth(cfg.Report),
		releases:      make(chan release, maxPendingReleases),
		rewriteWindow: rewriteWindow,
		releaserDone:  make(chan struct{}),
		kicks:         make(chan struct{}, 1),
		cancel:        cancel,
		done:          make(chan struct{}),
		watchDone:     make(chan struct{}),
		synced:        make(chan struct{}),
	}
	if cfg.Seed != nil {
		r.mirror.merge(cfg.Seed.mirror)
		r.adoptPending(cfg.Seed)
	}
	go r.run(runCtx)
	go r.releaser(runCtx)
	if r.sentinel != nil {
		go r.watchSentinels(runCtx)
	} else {
		close(r.watchDone)
	}

	if synced, ok := pause(ctx, cfg.StartWait, r.synced); ok && !synced {
		r.report(Event{Kind: EventNotLoaded, Waited: cfg.StartWait, Err: r.startCause(cfg.StartWait)})
	}
	return r, nil
}

// pause waits d, or less: until ctx ends (ok false) or wake delivers (woken
// true; a nil wake never does). The start wait and every backoff of the
// store wait through it, so that none waits past its context.
func pause(ctx context.Context, d time.Duration, wake <-chan struct{}) (woken, ok bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, false
	case <-wake:
		return true, true
	case <-t.C:
		return false, true
	}
}

// CheckReplicas is the rule for RedisConfig.Replicas.
func CheckReplicas(n int) error {
	if n < 0 || n > MaxRedisReplicas {
		return fmt.Errorf("replicas %d: want 0 to %d", n, MaxRedisReplicas)
	}
	return nil
}

func redisDefaults(cfg RedisConfig) RedisConfig {
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultRedisKeyPrefix
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultRedisTimeout
	}
	if cfg.StartWait <= 0 {
		cfg.StartWait = DefaultRedisStartWait
	}
	if cfg.ReloadEvery <= 0 {
		cfg.ReloadEvery = DefaultRedisReloadEvery
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Report == nil {
		cfg.Report = func(Event) {}
	}
	return cfg
}

// startCause is why the mirror did not load within waited: the sync
// goroutine's last error (a refused connection, an untrusted certificate,
// a wrong password), or that nothing answered at all.
func (r *Redis) startCause(waited time.Duration) error {
	if p := r.lastErr.Load(); p != nil {
		return *p
	}
	return fmt.Errorf("no answer from Redis within %v", waited)
}

// Close stops the store's goroutines and closes the client. Claims still
// waiting to be given back stay used. It is idempotent.
func (r *Redis) Close() error {
	var err error
	r.closeOnce.Do(func() {
		r.cancel()
		r.closeSubscription()
		<-r.done
		<-r.releaserDone
		<-r.watchDone
		r.health.close()
		err = r.client.Close()
	})
	return err
}

// closeSubscription closes the current subscription, which unblocks a
// pending receive.
func (r *Redis) closeSubscription() {
	r.psMu.Lock()
	defer r.psMu.Unlock()
	if r.ps != nil {
		_ = r.ps.Close()
	}
}

// Target is the Redis URL with its password removed.
func (r *Redis) Target() string { return r.target }

// KeyPrefix is the prefix of every key and of the channel.
func (r *Redis) KeyPrefix() string { return r.prefix }

// Synced is closed once the mirror has been loaded from Redis.
func (r *Redis) Synced() <-chan struct{} { return r.synced }

// fail notes a failed request-path command and returns it as
// store_unavailable; the first failure of an outage is reported (health),
// each refused request is logged by the caller.
func (r *Redis) fail(ctx context.Context, err error, format string, args ...any) error {
	if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		r.health.failed(err)
	}
	return reason.Errorf(reason.StoreUnavailable, "redis: "+format+": %v", append(args, err)...)
}

// Key layout. The tenant is escaped so that "a:b"+"c" and "a"+"b:c" cannot
// meet; ordinary tenant ids (no ':' or '%') appear as they are.
func (r *Redis) jtiKey(tenant, jti string) string {
	return r.prefix + "jti:" + escapeSegment(tenant) + ":" + jti
}

func (r *Redis) sidKey(sid string) string { return r.prefix + "rev:sid:" + sid }

func (r *Redis) cutKey(tenant, subject string) string {
	return r.prefix + "rev:cut:" + escapeSegment(tenant) + ":" + subject
}

var segmentEscaper = strings.NewReplacer("%", "%25", ":", "%3A")

func escapeSegment(s string) string {
	if !strings.ContainsAny(s, "%:") {
		return s
	}
	return segmentEscaper.Replace(s)
}

// ttlMillis is d in whole milliseconds, rounded up, within [1ms, maxTTL];
// d <= 0 becomes one second, as in Memory.
func ttlMillis(d time.Duration) int64 {
	if d <= 0 {
		d = time.Second
	}
	d = min(d, maxTTL)
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// fingerprint is a short non-reversible id for a jti in error details.
func fingerprint(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}
