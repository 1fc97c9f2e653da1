package caddymodule

import (
	"context"
	"crypto/tls"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"

	"github.com/embedgate/embedgate/internal/replay"
)

// Store defaults and limits, as documented on StoreConfig.
const (
	DefaultRedisKeyPrefix = replay.DefaultRedisKeyPrefix
	DefaultRedisTimeout   = replay.DefaultRedisTimeout
	// maxRedisTimeout: the exchange gives the store 5s in all; a longer
	// per-command timeout would never apply.
	maxRedisTimeout = 5 * time.Second
	// reload_interval's bounds: each reload SCANs the whole database, so
	// not more often than every 10s; a gap it closes is open that long,
	// so not less often than hourly.
	minReloadInterval = 10 * time.Second
	maxReloadInterval = time.Hour
)

// StoreConfig selects where single-use token ids and revocations live.
type StoreConfig struct {
	// Type is "memory" (this process only) or "redis" (shared by every
	// instance configured with the same Redis and key prefix).
	// Default: memory.
	Type string `json:"type,omitempty"`

	// URL is the Redis server, for type redis (required there):
	// redis://[user:password@]host:port[/db], rediss:// for TLS,
	// unix:///path?db=N, redis+sentinel://host:port?master_name=NAME (more
	// sentinels as &addr=host:port) or redis+cluster://host:port (more seed
	// nodes as ?addr=host:port). {env.*} and {file.*} placeholders are
	// resolved when the config loads, so the password can stay out of it.
	URL string `json:"url,omitempty"`

	// KeyPrefix starts every Redis key and the revocation channel; the
	// instances of one deployment use the same prefix.
	// Default: "embedgate:".
	KeyPrefix string `json:"key_prefix,omitempty"`

	// Timeout bounds each Redis command made while serving a request
	// (claiming a token, signing out); past it the request fails closed
	// with 503. At most 5s. Default: 150ms.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// Replicas makes each claim (and each sign-out and revocation) wait
	// until this many replicas have acknowledged it (WAIT after the write),
	// for at most a third of timeout; when fewer do, the request fails
	// closed with 503 store_unavailable. 0 to 16. Default: 0, no waiting
	// (Redis replication is asynchronous).
	Replicas int `json:"replicas,omitempty"`

	// ReloadInterval is how often each instance reloads every revocation
	// from Redis beside the pub/sub subscription, which closes gaps no
	// health check sees (an instance that missed a master switch). Each
	// reload SCANs the whole database. 10s to 1h. Default: 1m.
	ReloadInterval caddy.Duration `json:"reload_interval,omitempty"`

	// TLS configures TLS to Redis, for rediss:// (rediss+sentinel://,
	// rediss+cluster://) URLs: the same settings for a single server, the
	// sentinels and data nodes, and every Cluster node. Default: the
	// system roots, no client certificate.
	TLS *StoreTLS `json:"tls,omitempty"`
}

// StoreTLS names the PEM files for TLS to Redis. The files are read when
// the config loads; a reload picks up renewed files. {env.*} accepted in
// the names (resolvePath).
type StoreTLS struct {
	// CA is a PEM file of the CAs that sign the servers' certificates.
	// Default: the system roots.
	CA string `json:"ca,omitempty"`
	// Cert is a PEM client certificate, for servers that require one
	// (tls-auth-clients yes); it needs Key. Default: none.
	Cert string `json:"cert,omitempty"`
	// Key is the PEM private key of Cert. Default: none.
	Key string `json:"key,omitempty"`
	// ServerName is the name checked in the servers' certificates.
	// Default: the URL's host.
	ServerName string `json:"server_name,omitempty"`
}

// statePool keeps replay and revocation state across config reloads: a token
// used before `embedgate reload` stays used after it, and a Redis client and
// its revocation mirror are reused rather than reconnected and reloaded.
// The admin revoke route finds the running stores here.
var statePool = caddy.NewUsagePool()

// pooledStore is a statePool value.
type pooledStore interface {
	caddy.Destructor
	parts() (replay.Store, replay.Revocations)
	// info describes the store for the admin API, without secrets.
	info() storeInfo
}

// storeInfo is a store as the admin API reports it.
type storeInfo struct {
	Type      string `json:"type"`
	Redis     string `json:"redis,omitempty"` // URL without its password
	KeyPrefix string `json:"key_prefix,omitempty"`
}

type memoryState struct{ *replay.Memory }

func (m *memoryState) Destruct() error                           { m.Memory.Close(); return nil }
func (m *memoryState) parts() (replay.Store, replay.Revocations) { return m.Memory, m.Memory }
func (m *memoryState) info() storeInfo                           { return storeInfo{Type: "memory"} }

type redisState struct {
	*replay.Redis
	url string // resolved: seedFor matches stores by it (passwords aside) and the prefix
}

func (r *redisState) Destruct() error                           { return r.Redis.Close() }
func (r *redisState) parts() (replay.Store, replay.Revocations) { return r.Redis, r.Redis }
func (r *redisState) info() storeInfo {
	return storeInfo{Type: "redis", Redis: r.Target(), KeyPrefix: r.KeyPrefix()}
}

// provisionStore returns the configured store, held in statePool under a key
// released by Cleanup. A Redis store is keyed by its resolved URL, prefix,
// timeout, replicas and TLS settings (the files' contents included): a
// reload that keeps them reuses the connected client and its loaded mirror.
func (h *Handler) provisionStore(ctx caddy.Context) (replay.Store, replay.Revocations, error) {
	key, rc, err := h.storePlan()
	if err != nil {
		return nil, nil, err
	}
	construct := func() (caddy.Destructor, error) {
		return &memoryState{Memory: replay.NewMemory(nil)}, nil
	}
	if rc != nil {
		// Found before LoadOrNew: the pool's Range waits on an entry
		// under construction, so construct may not call it.
		seed := seedFor(rc)
		construct = func() (caddy.Destructor, error) {
			routeRedisLogs()
			cfg := *rc
			cfg.Report = storeReporter(replay.RedactURL(cfg.URL), cfg.KeyPrefix)
			cfg.Seed = seed
			r, err := replay.NewRedis(ctx, cfg)
			if err != nil {
				return nil, fmt.Errorf("store redis: %w", err)
			}
			return &redisState{Redis: r, url: cfg.URL}, nil
		}
	}
	v, _, err := statePool.LoadOrNew(key, construct)
	if err != nil {
		return nil, nil, err
	}
	h.pooled = append(h.pooled, key)
	st := v.(pooledStore)
	s, rv := st.parts()
	return s, rv, nil
}

// seedFor is a running store on the same Redis and key prefix as rc, if
// any: a reload that changes another setting (timeout, replicas, renewed
// TLS files, a rotated password) makes a new store, which starts from this
// one's revocations rather than from none while its first load waits for
// Redis (or fails, with a wrong new password).
func seedFor(rc *replay.RedisConfig) *replay.Redis {
	var seed *replay.Redis
	statePool.Range(func(_, v any) bool {
		if rs, ok := v.(*redisState); ok && replay.SameServer(rs.url, rc.URL) && rs.KeyPrefix() == rc.KeyPrefix {
			seed = rs.Redis
			return false
		}
		return true
	})
	return seed
}

// storePlan checks the store config without any network I/O (it reads the
// TLS files): the usage-pool key of the store, and for store redis its
// resolved config (nil for memory).
func (h *Handler) storePlan() (string, *replay.RedisConfig, error) {
	cfg := StoreConfig{Type: "memory"}
	if h.Store != nil {
		cfg = *h.Store
	}
	switch cfg.Type {
	case "", "memory":
		if cfg.URL != "" || cfg.KeyPrefix != "" || cfg.Timeout != 0 || cfg.Replicas != 0 || cfg.ReloadInterval != 0 || cfg.TLS != nil {
			return "", nil, fmt.Errorf("store memory: url, key_prefix, timeout, replicas, reload_interval and tls apply to store redis only")
		}
		return "memory", nil, nil
	case "redis":
		rc, err := redisConfig(cfg)
		if err != nil {
			return "", nil, err
		}
		var tlsDigest string
		if rc.TLS, tlsDigest, err = redisTLS(cfg.TLS, rc.URL); err != nil {
			return "", nil, err
		}
		// The URL is parsed here, before any network I/O (NewRedis parses
		// it again, then dials).
		if err := replay.CheckURL(rc.URL, rc.TLS); err != nil {
			return "", nil, fmt.Errorf("store redis: %w", err)
		}
		key := strings.Join([]string{"redis", rc.URL, rc.KeyPrefix, rc.Timeout.String(), strconv.Itoa(rc.Replicas),
			rc.ReloadEvery.String(), tlsDigest}, "\x00")
		return key, &rc, nil
	}
	return "", nil, fmt.Errorf("store: unknown type %q (want memory or redis)", cfg.Type)
}

// redisTLS reads and checks the TLS files of store redis ({env.*} in their
// names resolved), with no network I/O, and returns the TLS config
// (nil without a tls block) and a digest of the settings for the pool key.
func redisTLS(st *StoreTLS, url string) (*tls.Config, string, error) {
	if st == nil {
		return nil, "", nil
	}
	if !strings.HasPrefix(strings.ToLower(url), "rediss") {
		return nil, "", fmt.Errorf("store redis: tls needs a rediss:// (rediss+sentinel://, rediss+cluster://) url")
	}
	files := replay.RedisTLS{ServerName: st.ServerName}
	for _, f := range []struct {
		name, in string
		out      *string
	}{{"ca", st.CA, &files.CAFile}, {"cert", st.Cert, &files.CertFile}, {"key", st.Key, &files.KeyFile}} {
		var err error
		if *f.out, err = resolvePath(f.in); err != nil {
			return nil, "", fmt.Errorf("store redis: tls %s: %w", f.name, err)
		}
	}
	cfg, digest, err := files.Load()
	if err != nil {
		return nil, "", fmt.Errorf("store redis: %w", err)
	}
	return cfg, digest, nil
}

// redisConfig checks cfg and resolves placeholders in the URL. No error
// repeats the URL: it may hold a password.
func redisConfig(cfg StoreConfig) (replay.RedisConfig, error) {
	url, err := resolveSecret(caddy.NewReplacer(), cfg.URL)
	if err != nil {
		return replay.RedisConfig{}, fmt.Errorf("store redis: url: %w", err)
	}
	if url == "" {
		return replay.RedisConfig{}, fmt.Errorf("store redis: a url is required")
	}
	prefix := cfg.KeyPrefix
	if prefix == "" {
		prefix = DefaultRedisKeyPrefix
	}
	if len(prefix) > 128 || strings.IndexFunc(prefix, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return replay.RedisConfig{}, fmt.Errorf("store redis: key_prefix %q: at most 128 characters, no spaces or control characters", prefix)
	}
	timeout := time.Duration(cfg.Timeout)
	if timeout == 0 {
		timeout = DefaultRedisTimeout
	}
	if timeout < 0 || timeout > maxRedisTimeout {
		return replay.RedisConfig{}, fmt.Errorf("store redis: timeout %s: must be positive and at most %s", timeout, maxRedisTimeout)
	}
	if err := replay.CheckReplicas(cfg.Replicas); err != nil {
		return replay.RedisConfig{}, fmt.Errorf("store redis: %w", err)
	}
	reload := time.Duration(cfg.ReloadInterval)
	if reload == 0 {
		reload = replay.DefaultRedisReloadEvery
	}
	if reload < minReloadInterval || reload > maxReloadInterval {
		return replay.RedisConfig{}, fmt.Errorf("store redis: reload_interval %s: %s to %s", reload, minReloadInterval, maxReloadInterval)
	}
	return replay.RedisConfig{URL: url, KeyPrefix: prefix, Timeout: timeout, Replicas: cfg.Replicas, ReloadEvery: reload}, nil
}

// activeStores returns the stores of every running embed_session handler,
// one per distinct backend.
func activeStores() []pooledStore {
	var out []pooledStore
	seen := map[storeInfo]bool{}
	statePool.Range(func(_, v any) bool {
		if st, ok := v.(pooledStore); ok && !seen[st.info()] {
			seen[st.info()] = true
			out = append(out, st)
		}
		return true
	})
	return out
}

var redisLogsOnce sync.Once

// routeRedisLogs sends go-redis's own messages (dial retries and the like,
// printed to stderr by default) to Caddy's log at Debug: the store logs
// outages and recoveries itself, once each. go-redis has one logger per
// process, so this is set once, here in the adapter.
func routeRedisLogs() {
	redisLogsOnce.Do(func() { redis.SetLogger(redisLogger{}) })
}

type redisLogger struct{}

func (redisLogger) Printf(_ context.Context, format string, v ...any) {
	// caddy.Log() at each call, so the messages follow config reloads.
	caddy.Log().Named("redis").Debug(fmt.Sprintf(format, v...))
}
