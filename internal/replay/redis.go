package replay

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
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
)

// claimMarker is the value of a used-jti key; only its presence matters.
const claimMarker = "1"

// RedisConfig configures NewRedis.
type RedisConfig struct {
	// URL names the server. redis://[user:password@]host:port[/db],
	// rediss:// for TLS and unix:///path?db=N as go-redis parses them;
	// redis+sentinel:// (rediss+sentinel://) with ?master_name=NAME and
	// more sentinels as &addr=host:port; redis+cluster:// (rediss+cluster://)
	// with more seed nodes as ?addr=host:port.
	URL string
	// KeyPrefix starts every key and the pub/sub channel; instances that
	// share state use the same prefix. Default DefaultRedisKeyPrefix.
	KeyPrefix string
	// Timeout bounds each command on the request path. Default
	// DefaultRedisTimeout.
	Timeout time.Duration
	// StartWait bounds how long NewRedis waits for the revocation mirror's
	// first load before returning anyway. Default DefaultRedisStartWait.
	StartWait time.Duration
	// Now is the clock for revocation expiries; nil means time.Now.
	Now func() time.Time
	// Logger receives state changes (outage, recovery, resync) and the
	// maxmemory-policy warning; nil discards them. Nothing logged holds a
	// password, token id or session id.
	Logger *slog.Logger
}

// Redis is a Store and Revocations shared by every gateway instance that
// uses the same Redis and key prefix. Claim and Revoke are one round trip
// each; Revoked reads a local mirror kept current over pub/sub, so the
// per-request session check never waits on Redis.
type Redis struct {
	client  redis.UniversalClient
	target  string // URL without secrets, for logs and the admin API
	prefix  string
	channel string
	origin  string // random id of this instance, to skip its own announcements
	timeout time.Duration
	now     func() time.Time
	log     *slog.Logger
	mirror  *mirror

	errors  atomic.Uint64
	healthy atomic.Bool // last request-path command succeeded

	cancel    context.CancelFunc
	done      chan struct{}
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
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultRedisKeyPrefix
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultRedisTimeout
	}
	if cfg.StartWait <= 0 {
		cfg.StartWait = DefaultRedisStartWait
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	client, target, err := newRedisClient(cfg.URL)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	r := &Redis{
		client:  client,
		target:  target,
		prefix:  cfg.KeyPrefix,
		channel: cfg.KeyPrefix + "revocations",
		origin:  rand.Text(),
		timeout: cfg.Timeout,
		now:     cfg.Now,
		log:     cfg.Logger.With("redis", target, "key_prefix", cfg.KeyPrefix),
		mirror:  newMirror(cfg.Now),
		cancel:  cancel,
		done:    make(chan struct{}),
		synced:  make(chan struct{}),
	}
	r.healthy.Store(true)
	go r.run(runCtx)

	wait := time.NewTimer(cfg.StartWait)
	defer wait.Stop()
	select {
	case <-r.synced:
	case <-wait.C:
		r.log.Error("revocations not loaded from Redis yet; sessions revoked elsewhere are accepted here until they are",
			"waited", cfg.StartWait.String())
	case <-ctx.Done():
	}
	return r, nil
}

// Close stops the mirror's goroutine and closes the client. It is
// idempotent.
func (r *Redis) Close() error {
	var err error
	r.closeOnce.Do(func() {
		r.cancel()
		r.psMu.Lock()
		if r.ps != nil {
			_ = r.ps.Close() // unblocks a pending receive
		}
		r.psMu.Unlock()
		<-r.done
		err = r.client.Close()
	})
	return err
}

// Errors is the number of request-path commands (Claim, Revoke, RevokeAll)
// that failed since start: the outage counter for metrics.
func (r *Redis) Errors() uint64 { return r.errors.Load() }

// Target is the Redis URL with its password removed.
func (r *Redis) Target() string { return r.target }

// KeyPrefix is the prefix of every key and of the channel.
func (r *Redis) KeyPrefix() string { return r.prefix }

// Synced is closed once the mirror has been loaded from Redis.
func (r *Redis) Synced() <-chan struct{} { return r.synced }

// Claim implements Store with SET key marker NX PX ttl. A ttl <= 0 is
// treated as one second, so a key never lacks an expiry nor expires at once.
func (r *Redis) Claim(ctx context.Context, tenant, jti string, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	err := r.client.Do(ctx, "SET", r.jtiKey(tenant, jti), claimMarker, "NX", "PX", ttlMillis(ttl)).Err()
	switch {
	case err == nil:
		r.ok()
		return nil
	case errors.Is(err, redis.Nil): // NX refused: the key exists
		r.ok()
		return reason.Errorf(reason.Replayed, "token id already used for tenant %q", tenant)
	default:
		// The jti is hashed: details are logged, ids are not.
		return r.fail(ctx, err, "claiming token id %s of tenant %q", fingerprint(jti), tenant)
	}
}

// revokeScript writes a revocation key keeping the later expiry (a second,
// shorter revocation must not shorten the first) and announces it in the
// same round trip, so a write is never left unannounced by a lost reply.
// The announcement is "<ttl ms> <origin> <value>".
var revokeScript = redis.NewScript(`
local ttl = tonumber(ARGV[2])
local left = redis.call('PTTL', KEYS[1])
if left > ttl then ttl = left end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('PUBLISH', ARGV[3], string.format('%d', ttl) .. ' ' .. ARGV[4] .. ' ' .. ARGV[1])
return ttl
`)

// revEntry is the value of a revocation key and the body of its
// announcement: a session id, or a cutoff for a tenant (and subject).
type revEntry struct {
	SID     string `json:"sid,omitempty"`
	Tenant  string `json:"tenant,omitempty"`
	Subject string `json:"sub,omitempty"`
	At      int64  `json:"at,omitempty"` // cutoff instant, Unix nanos
}

// Revoke implements Revocations: the session id is written with its
// remaining lifetime and announced to every instance. An until at or before
// now is a no-op.
func (r *Redis) Revoke(ctx context.Context, sessionID string, until time.Time) error {
	d := until.Sub(r.now())
	if d <= 0 {
		return nil
	}
	return r.revoke(ctx, r.sidKey(sessionID), revEntry{SID: sessionID}, d)
}

// RevokeAll implements Revocations: the cutoff (now) is written under
// <prefix>rev:cut:<tenant>:<subject>, kept until the time given, and announced.
func (r *Redis) RevokeAll(ctx context.Context, tenant, subject string, until time.Time) error {
	now := r.now()
	d := until.Sub(now)
	if d <= 0 {
		return nil
	}
	e := revEntry{Tenant: tenant, Subject: subject, At: now.UnixNano()}
	return r.revoke(ctx, r.cutKey(tenant, subject), e, d)
}

func (r *Redis) revoke(ctx context.Context, key string, e revEntry, d time.Duration) error {
	value, err := json.Marshal(e)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	ttl, err := revokeScript.Run(ctx, r.client, []string{key}, string(value), ttlMillis(d), r.channel, r.origin).Int64()
	if err != nil {
		what := "revoking a session"
		if e.SID == "" {
			what = "revoking the sessions of tenant " + strconv.Quote(e.Tenant)
		}
		return r.fail(ctx, err, "%s", what)
	}
	r.ok()
	// Applied here at once: this instance does not wait for its own echo
	// (and ignores it: applied later, it would date the expiry afresh).
	r.apply(e, ttl)
	return nil
}

// Revoked implements Revocations from the local mirror: no I/O.
func (r *Redis) Revoked(s SessionRef) bool { return r.mirror.revoked(s) }

// apply records e in the mirror, expiring ttlMillis from now.
func (r *Redis) apply(e revEntry, ttlMillis int64) {
	until := addNanos(r.now().UnixNano(), time.Duration(ttlMillis)*time.Millisecond)
	if e.SID != "" {
		r.mirror.revokeSession(e.SID, until)
		return
	}
	r.mirror.cut(e.Tenant, e.Subject, time.Unix(0, e.At), until)
}

// ok notes a successful request-path command, logging a recovery once.
func (r *Redis) ok() {
	if r.healthy.CompareAndSwap(false, true) {
		r.log.Info("Redis answers again: exchanges and sign-outs resume")
	}
}

// fail counts a failed request-path command and returns it as
// store_unavailable; the first failure of an outage is logged here, each
// refused request is logged by the caller.
func (r *Redis) fail(ctx context.Context, err error, format string, args ...any) error {
	if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		r.errors.Add(1)
		if r.healthy.CompareAndSwap(true, false) {
			r.log.Error("Redis unavailable: exchanges and sign-outs fail closed (503) until it answers; existing sessions keep working",
				"error", err.Error())
		}
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
