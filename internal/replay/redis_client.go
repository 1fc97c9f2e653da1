package replay

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// newRedisClient builds a client for a single server, a Sentinel-managed
// master or a Cluster from the URL, and returns it with the URL's secrets
// removed for display. Errors never repeat the URL: it may hold a password.
func newRedisClient(raw string) (redis.UniversalClient, string, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || rest == "" {
		return nil, "", errors.New("redis url: want redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://")
	}
	base, mode, _ := strings.Cut(strings.ToLower(scheme), "+")
	plain := base + "://" + rest
	target := redactURL(raw)
	switch mode {
	case "":
		opt, err := redis.ParseURL(plain)
		if err != nil {
			return nil, "", urlError(err)
		}
		// Request-path commands carry their own deadline (the store
		// timeout): honour it on the socket, not only while waiting.
		opt.ContextTimeoutEnabled = true
		// No retries: a SET NX whose reply was lost but which did apply
		// would, retried, report the token's first use as a replay.
		opt.MaxRetries = -1
		return redis.NewClient(opt), target, nil
	case "sentinel":
		opt, err := redis.ParseFailoverURL(plain)
		if err != nil {
			return nil, "", urlError(err)
		}
		if opt.MasterName == "" {
			return nil, "", errors.New("redis url: a sentinel url needs ?master_name=")
		}
		opt.ContextTimeoutEnabled = true
		opt.MaxRetries = -1
		return redis.NewFailoverClient(opt), target, nil
	case "cluster":
		opt, err := redis.ParseClusterURL(plain)
		if err != nil {
			return nil, "", urlError(err)
		}
		opt.ContextTimeoutEnabled = true
		// Cluster redirections (MOVED/ASK) are followed regardless; only
		// network retries are turned off, for the reason above.
		opt.MaxRetries = -1
		return redis.NewClusterClient(opt), target, nil
	default:
		return nil, "", fmt.Errorf("redis url: unknown scheme %q (want redis, rediss, unix, redis+sentinel, redis+cluster)", scheme)
	}
}

// urlError drops the URL that url.Parse puts in its errors.
func urlError(err error) error {
	// url.Error repeats the URL, which may hold a password: keep its cause.
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	return fmt.Errorf("redis url: %w", err)
}

// redactURL is raw without its password, in the userinfo or a query value.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
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
