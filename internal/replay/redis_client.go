package replay

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// clientSpec is a client built from a URL, and what else the store needs
// to know about the deployment.
type clientSpec struct {
	client redis.UniversalClient
	target string // the URL without secrets, for display
	// sentinel is set for a Sentinel-managed master: the store watches the
	// sentinels for master switches with the same options.
	sentinel *redis.FailoverOptions
	// db is the database number the keys live in (0 on a Cluster): Redis
	// pub/sub ignores it, so the channel must carry it (revocationChannel).
	db int
}

// newRedisClient builds a client for a single server, a Sentinel-managed
// master or a Cluster from the URL. tlsConfig, when set, replaces the TLS
// settings the URL implies (it needs a rediss scheme). Errors never repeat
// the URL: it may hold a password.
func newRedisClient(raw string, tlsConfig *tls.Config) (clientSpec, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || rest == "" {
		return clientSpec{}, errors.New("redis url: want redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://")
	}
	base, mode, _ := strings.Cut(strings.ToLower(scheme), "+")
	if base != "redis" && base != "rediss" && !(base == "unix" && mode == "") {
		return clientSpec{}, fmt.Errorf("redis url: unknown scheme %q (want redis, rediss, unix, redis+sentinel, redis+cluster)", scheme)
	}
	// skip_verify is taken out here: go-redis knows it for single servers
	// and Sentinel but refuses it on a Cluster URL.
	plain, skipVerify, err := takeSkipVerify(base + "://" + rest)
	if err != nil {
		return clientSpec{}, hideSecrets(raw, err)
	}
	if (skipVerify || tlsConfig != nil) && base != "rediss" {
		return clientSpec{}, errors.New("redis url: TLS settings (tls, skip_verify) need a rediss:// (rediss+sentinel://, rediss+cluster://) url")
	}
	rules := clientRules{tlsConfig: tlsConfig, skipVerify: skipVerify}
	spec := clientSpec{target: RedactURL(raw)}
	switch mode {
	case "":
		var opt *redis.Options
		if spec.client, opt, err = singleMode.build(plain, rules); err == nil {
			spec.db = opt.DB
		}
	case "sentinel":
		if spec.client, spec.sentinel, err = sentinelMode.build(plain, rules); err == nil {
			spec.db = spec.sentinel.DB
		}
	case "cluster":
		spec.client, _, err = clusterMode.build(plain, rules)
	default:
		return clientSpec{}, fmt.Errorf("redis url: unknown scheme %q (want redis, rediss, unix, redis+sentinel, redis+cluster)", scheme)
	}
	if err != nil {
		return clientSpec{}, hideSecrets(raw, err)
	}
	return spec, nil
}

// CheckURL checks a Redis URL (and that tlsConfig, when set, goes with a
// rediss scheme) as NewRedis does, without connecting. Errors never repeat
// the URL.
func CheckURL(raw string, tlsConfig *tls.Config) error {
	spec, err := newRedisClient(raw, tlsConfig)
	if err != nil {
		return err
	}
	return spec.client.Close()
}

// unparsableURL is what RedactURL shows of a URL it cannot parse.
const unparsableURL = "(unparsable url)"

// SameServer reports whether two store URLs name the same servers,
// database, user and options, whatever their passwords: a config reload
// that only rotates a password still talks to the same Redis.
func SameServer(a, b string) bool {
	if a == b {
		return true
	}
	ra := RedactURL(a)
	return ra != unparsableURL && ra == RedactURL(b)
}

// errURLSyntax replaces a parse error that may quote part of a password.
var errURLSyntax = errors.New("redis url: cannot be parsed (percent-encode any '/', '?', '#', '&', '%' or '@' in the user name or password)")

// hideSecrets is err, or errURLSyntax when err is a parse error (which
// quotes pieces of the URL: a port, a path, an option name) and the URL may
// hold a password: a '/', '?' or '#' left unescaped in a password moves
// the rest of it out of the userinfo, into what the error quotes.
func hideSecrets(raw string, err error) error {
	if _, ok := errors.AsType[*urlParseError](err); ok && mayHoldSecret(raw) {
		return errURLSyntax
	}
	return err
}

// mayHoldSecret reports whether a parse error of raw may quote part of a
// secret: a password in the query (an unescaped '&' or '#' splits it into
// what the parser names), or a userinfo that does not stand on its own
// (an unescaped '/', '?' or '#' ends the authority before the last '@'; a
// stray '%' is quoted as a bad escape). A URL whose userinfo is well formed
// keeps the parser's error: it is about the host, database or options.
func mayHoldSecret(raw string) bool {
	if strings.Contains(strings.ToLower(raw), "password") {
		return true
	}
	_, rest, _ := strings.Cut(raw, "://")
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return false
	}
	userinfo := rest[:at]
	if strings.ContainsAny(userinfo, "/?#@") {
		return true
	}
	_, err := url.PathUnescape(userinfo)
	return err != nil
}

// urlParseError marks the errors of urlError.
type urlParseError struct{ err error }

func (e *urlParseError) Error() string { return "redis url: " + e.err.Error() }
func (e *urlParseError) Unwrap() error { return e.err }

// revocationChannel is the pub/sub channel of the deployment whose keys
// start with prefix in database db. Pub/sub is one namespace for a whole
// server, whatever database a client selected: without the number, two
// deployments on one Redis under the same prefix in different databases
// (staging on 1, production on 0) would apply each other's sign-outs.
// Database 0 keeps the name it always had, so instances of older versions
// there still hear each other. The number goes at the end, where no
// prefix can reach: "embedgate:" in database 1 and "embedgate:db1:" in
// database 0 must not share a channel.
func revocationChannel(prefix string, db int) string {
	if db == 0 {
		return prefix + "revocations"
	}
	return prefix + "revocations:db" + strconv.Itoa(db)
}

// clientMode is one kind of deployment as go-redis builds it, with its own
// options type O: the URL parser, where O keeps what clientRules set (the
// types share no interface, hence the pointers), and the client.
type clientMode[O any] struct {
	parse  func(raw string) (*O, error)
	fields func(*O) (contextTimeout *bool, maxRetries *int, tlsConfig **tls.Config)
	client func(*O) redis.UniversalClient
	// replicaReads names the URL option that sends reads to replicas, if
	// one is set (nil: the mode has none).
	replicaReads func(*O) string
}

var (
	singleMode = clientMode[redis.Options]{redis.ParseURL,
		func(o *redis.Options) (*bool, *int, **tls.Config) {
			return &o.ContextTimeoutEnabled, &o.MaxRetries, &o.TLSConfig
		},
		func(o *redis.Options) redis.UniversalClient { return redis.NewClient(o) }, nil}
	// One TLS config for the sentinels and the data nodes, as go-redis uses
	// it for both.
	sentinelMode = clientMode[redis.FailoverOptions]{parseSentinelURL,
		func(o *redis.FailoverOptions) (*bool, *int, **tls.Config) {
			return &o.ContextTimeoutEnabled, &o.MaxRetries, &o.TLSConfig
		},
		func(o *redis.FailoverOptions) redis.UniversalClient { return redis.NewFailoverClient(o) },
		func(o *redis.FailoverOptions) string {
			return firstSet(flag{"replica_only", o.ReplicaOnly}, flag{"use_disconnected_replicas", o.UseDisconnectedReplicas},
				flag{"route_by_latency", o.RouteByLatency}, flag{"route_randomly", o.RouteRandomly})
		}}
	clusterMode = clientMode[redis.ClusterOptions]{redis.ParseClusterURL,
		func(o *redis.ClusterOptions) (*bool, *int, **tls.Config) {
			return &o.ContextTimeoutEnabled, &o.MaxRetries, &o.TLSConfig
		},
		func(o *redis.ClusterOptions) redis.UniversalClient { return redis.NewClusterClient(o) },
		func(o *redis.ClusterOptions) string {
			return firstSet(flag{"read_only", o.ReadOnly}, flag{"route_by_latency", o.RouteByLatency}, flag{"route_randomly", o.RouteRandomly})
		}}
)

// flag is a boolean URL option as parsed.
type flag struct {
	name string
	set  bool
}

// firstSet is the name of the first flag set, or "".
func firstSet(flags ...flag) string {
	for _, f := range flags {
		if f.set {
			return f.name
		}
	}
	return ""
}

// build parses the URL, applies the rules every mode shares and makes the
// client; it returns the options too (the sentinel watcher reuses them).
func (m clientMode[O]) build(plain string, rules clientRules) (redis.UniversalClient, *O, error) {
	opt, err := m.parse(plain)
	if err != nil {
		return nil, nil, urlError(err)
	}
	// A replica may lag its master: a used token it has not seen yet
	// claims again, and a reload misses revocations it lacks.
	if m.replicaReads != nil {
		if name := m.replicaReads(opt); name != "" {
			return nil, nil, fmt.Errorf("redis url: %s is not supported: the store reads and writes on the master only (a replica may lag it)", name)
		}
	}
	rules.apply(m.fields(opt))
	return m.client(opt), opt, nil
}

// parseSentinelURL is go-redis's parser, refusing a URL without the master
// the sentinels are asked about.
func parseSentinelURL(raw string) (*redis.FailoverOptions, error) {
	opt, err := redis.ParseFailoverURL(raw)
	if err == nil && opt.MasterName == "" {
		return nil, errors.New("a sentinel url needs ?master_name=")
	}
	return opt, err
}

// clientRules are the settings every client mode gets.
type clientRules struct {
	tlsConfig  *tls.Config
	skipVerify bool
}

func (c clientRules) apply(contextTimeout *bool, maxRetries *int, tlsConfig **tls.Config) {
	// Request-path commands carry their own deadline (the store timeout):
	// honour it on the socket, not only while waiting.
	*contextTimeout = true
	// No retries: a revocation retried after a lost reply would be
	// announced twice; claims are safe to retry (claimScript) but gain
	// nothing within a 150ms budget. Cluster redirections (MOVED/ASK) are
	// followed regardless.
	*maxRetries = -1
	*tlsConfig = mergeTLS(*tlsConfig, c.tlsConfig, c.skipVerify)
}

// takeSkipVerify removes skip_verify from the URL's query and returns its value.
func takeSkipVerify(raw string) (string, bool, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", false, urlError(err)
	}
	q := u.Query()
	if !q.Has("skip_verify") {
		return raw, false, nil
	}
	v := q.Get("skip_verify")
	skip, err := strconv.ParseBool(v)
	if v == "" {
		skip, err = true, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("redis url: skip_verify %q: want true or false", v)
	}
	q.Del("skip_verify")
	u.RawQuery = q.Encode()
	return u.String(), skip, nil
}

// mergeTLS is the TLS config for a connection: the configured one (ca,
// cert, key, server_name) over the one go-redis derived from the URL, which
// holds the URL's host as server name.
func mergeTLS(parsed, configured *tls.Config, skipVerify bool) *tls.Config {
	if parsed == nil && configured == nil {
		return nil
	}
	out := &tls.Config{MinVersion: tls.VersionTLS12}
	if configured != nil {
		out = configured.Clone()
	}
	if out.ServerName == "" && parsed != nil {
		out.ServerName = parsed.ServerName
	}
	if skipVerify {
		out.InsecureSkipVerify = true
	}
	return out
}

// urlError drops the URL that url.Parse puts in its errors.
func urlError(err error) error {
	// url.Error repeats the URL, which may hold a password: keep its cause.
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	return &urlParseError{err}
}

// RedactURL is a Redis URL without its password, in the userinfo or a query value.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.User == nil && strings.Contains(raw, "@")) {
		// An '@' outside the userinfo: a password with an unescaped '/',
		// '?' or '#' ends the authority early.
		return unparsableURL
	}
	if u.Fragment != "" { // a '#' in a password left unescaped
		u.Fragment, u.RawFragment = "xxxxx", ""
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			if strings.Contains(strings.ToLower(k), "password") {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}
