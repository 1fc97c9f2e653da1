package caddymodule

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/embedgate/embedgate/internal/tenant"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("embed_session", parseCaddyfile)
	// Authentication runs before anything that serves or proxies content, so
	// a Caddyfile needs no `order` line.
	httpcaddyfile.RegisterDirectiveOrder("embed_session", httpcaddyfile.Before, "basic_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	embed_session [<matcher>] {
//		tenant <id> {
//			key <secret> [<kid>]            # HS256, >= 32 bytes; repeat to rotate
//			public_key <pem-file> [<kid>]   # RS256 / ES256 / EdDSA, by key type
//			frame_ancestors <origin>...
//			hosts <host>...
//			login_url <url>
//			api_key <sha256-hex>            # token API key digest; repeat to rotate
//			jwks <https-url>                # an identity provider's published keys
//			login_state required|optional|off  # token links bound to the browser; default optional
//			subject_issuer <issuer-url> {   # RFC 8693 token exchange at the token API; repeatable
//				jwks <https-url>            # or: public_key <pem-file> [<kid>]; repeatable
//				audience <aud>...           # the access token's aud must contain one of these
//				subject_claim <claim>       # default sub
//				copy_claims <claim>...      # copied into the one-time token
//			}
//		}
//		session_key <secret>...             # >= 32 bytes each; the first seals, all open
//		session_ttl <duration>              # default 8h
//		idle_timeout <duration>             # default 30m
//		max_token_age <duration>            # default 120s
//		leeway <duration>                   # default 30s, at most 5m
//		cookie_name <name>                  # default __Host-embed_session
//		prefix <path>                       # default /.embed
//		token_param <name>                  # default embed_token
//		inject_bridge                       # add bridge.js to the app's HTML; default off
//		caddy_errors                        # 401/403 into the app go to handle_errors; default off
//		forward_claim <claim.path> <Header-Name>
//		require scope <scope>
//		require claim <claim.path> <value>
//		tenants_file <path>                 # JSON {"tenants": [...]}, watched and hot-reloaded
//		metrics_per_tenant                  # tenant label on the metrics; default off
//		assertion                           # signed identity for the app, defaults; or:
//		assertion {
//			header <name>                   # default X-Embed-Assertion
//			audience <string>               # default: the origin served at (listener port)
//			ttl <duration>                  # default 5m, at most 1h
//			key <pem-file> [<kid>]          # ES256/EdDSA; repeat to rotate: the first signs
//		}
//		store memory                        # default
//		store redis <url> {                 # cluster mode
//			key_prefix <prefix>             # default "embedgate:"
//			timeout <duration>              # per command, default 150ms
//			replicas <n>                    # wait for n replica acks per write, default 0
//			reload_interval <duration>      # full reload of revocations, default 1m, 10s to 1h
//			tls { ca|cert|key|server_name <value> }  # for rediss:// urls
//		}
//	}
//
// Secrets accept {env.NAME} and {file.PATH} placeholders, resolved when the
// config is loaded.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	return block{
		str: map[string]*string{"cookie_name": &h.CookieName, "prefix": &h.Prefix, "token_param": &h.TokenParam,
			"tenants_file": &h.TenantsFile},
		dur: map[string]*caddy.Duration{"session_ttl": &h.SessionTTL, "idle_timeout": &h.IdleTimeout,
			"max_token_age": &h.MaxTokenAge, "leeway": &h.Leeway},
		flag: map[string]*bool{"inject_bridge": &h.InjectBridge, "caddy_errors": &h.CaddyErrors,
			"metrics_per_tenant": &h.MetricsPerTenant},
		more: map[string]func(*caddyfile.Dispenser) error{
			"tenant":        add(&h.Tenants, parseTenant),
			"require":       add(&h.Require, parseRequire),
			"forward_claim": add(&h.ForwardClaims, parseForwardClaim),
			"store": func(d *caddyfile.Dispenser) error {
				if h.Store != nil { // the first block's url, replicas or tls would be dropped
					return d.Errf("store given twice")
				}
				return set(&h.Store, parseStore)(d)
			},
			"session_key": func(d *caddyfile.Dispenser) error {
				keys := d.RemainingArgs()
				if len(keys) == 0 {
					return d.ArgErr()
				}
				h.SessionKeys = append(h.SessionKeys, keys...)
				return nil
			},
			"assertion": func(d *caddyfile.Dispenser) error {
				if h.Assertion != nil {
					return d.Errf("assertion given twice")
				}
				return set(&h.Assertion, parseAssertion)(d)
			},
		},
	}.read(d, 0)
}

// block is how one Caddyfile block is read, a line at a time by its first
// word: every block refuses an unknown word, and reads a one-value line,
// the same way. A word is in at most one of the maps.
type block struct {
	where string                     // starts the error for an unknown word
	str   map[string]*string         // exactly one argument
	once  map[string]*string         // exactly one argument, on one line only
	dur   map[string]*caddy.Duration // one positive duration
	flag  map[string]*bool           // no argument: turns it on
	more  map[string]func(*caddyfile.Dispenser) error
}

// read reads the lines of the block at nesting.
// blockOnly reads a subdirective that takes a block and no arguments:
// an argument is the error noArgs, the block's lines are read by b.
func blockOnly(d *caddyfile.Dispenser, noArgs string, nesting int, b block) error {
	if d.NextArg() {
		return d.Err(noArgs)
	}
	return b.read(d, nesting)
}

func (b block) read(d *caddyfile.Dispenser, nesting int) error {
	for d.NextBlock(nesting) {
		if err := b.line(d); err != nil {
			return err
		}
	}
	return nil
}

func (b block) line(d *caddyfile.Dispenser) error {
	name := d.Val()
	if p, ok := b.str[name]; ok {
		return oneArg(d, p)
	}
	if p, ok := b.once[name]; ok {
		if *p != "" {
			return d.Errf("%s%s given twice", b.where, name)
		}
		return oneArg(d, p)
	}
	if p, ok := b.dur[name]; ok {
		return parseDuration(d, p)
	}
	if p, ok := b.flag[name]; ok {
		if d.NextArg() {
			return d.ArgErr()
		}
		*p = true
		return nil
	}
	if read, ok := b.more[name]; ok {
		return read(d)
	}
	return d.Errf("%sunrecognized subdirective %q", b.where, name)
}

// add is a block line that may repeat: each one read by parse adds a value.
func add[T any](list *[]T, parse func(*caddyfile.Dispenser) (T, error)) func(*caddyfile.Dispenser) error {
	return func(d *caddyfile.Dispenser) error {
		v, err := parse(d)
		if err != nil {
			return err
		}
		*list = append(*list, v)
		return nil
	}
}

// set is a block line whose value, read by parse, is the field's.
func set[T any](field *T, parse func(*caddyfile.Dispenser) (T, error)) func(*caddyfile.Dispenser) error {
	return func(d *caddyfile.Dispenser) error {
		v, err := parse(d)
		if err != nil {
			return err
		}
		*field = v
		return nil
	}
}

func parseForwardClaim(d *caddyfile.Dispenser) (ForwardClaim, error) {
	args := d.RemainingArgs()
	if len(args) != 2 {
		return ForwardClaim{}, d.Errf("forward_claim takes <claim.path> <Header-Name>")
	}
	return ForwardClaim{Claim: args[0], Header: args[1]}, nil
}

func parseTenant(d *caddyfile.Dispenser) (tenant.Config, error) {
	var t tenant.Config
	if !d.NextArg() {
		return t, d.Errf("tenant needs an id")
	}
	t.ID = d.Val()
	if d.NextArg() {
		return t, d.Errf("tenant takes one id, then a block")
	}
	where := fmt.Sprintf("tenant %q", t.ID)
	err := block{
		where: where + ": ",
		str:   map[string]*string{"login_url": &t.LoginURL},
		once:  map[string]*string{"jwks": &t.JWKS},
		more: map[string]func(*caddyfile.Dispenser) error{
			"key": add(&t.Keys, func(d *caddyfile.Dispenser) (tenant.SecretConfig, error) {
				secret, kid, err := keyArgs(d, where, "secret")
				return tenant.SecretConfig{Secret: secret, KID: kid}, err
			}),
			"public_key": add(&t.PublicKeys, func(d *caddyfile.Dispenser) (tenant.PublicKeyConfig, error) {
				file, kid, err := keyArgs(d, where, "pem-file")
				return tenant.PublicKeyConfig{File: file, KID: kid}, err
			}),
			"frame_ancestors": func(d *caddyfile.Dispenser) error { return someArgs(d, t.ID, "origin", &t.FrameAncestors) },
			"hosts":           func(d *caddyfile.Dispenser) error { return someArgs(d, t.ID, "host", &t.Hosts) },
			"api_key": add(&t.APIKeys, func(d *caddyfile.Dispenser) (string, error) {
				args := d.RemainingArgs()
				if len(args) != 1 {
					return "", d.Errf("tenant %q: api_key takes <sha256-hex> (repeat the line to list several)", t.ID)
				}
				return args[0], nil
			}),
			"login_state": func(d *caddyfile.Dispenser) error { return parseLoginState(d, &t) },
			"subject_issuer": add(&t.SubjectIssuers, func(d *caddyfile.Dispenser) (tenant.SubjectIssuerConfig, error) {
				return parseSubjectIssuer(d, t.ID)
			}),
		},
	}.read(d, 1)
	return t, err
}

func parseRequire(d *caddyfile.Dispenser) (Requirement, error) {
	args := d.RemainingArgs()
	switch {
	case len(args) == 2 && args[0] == "scope":
		return Requirement{Scope: args[1]}, nil
	case len(args) == 3 && args[0] == "claim":
		return Requirement{Claim: args[1], Value: args[2]}, nil
	}
	return Requirement{}, d.Errf("require takes: scope <scope> | claim <claim.path> <value>")
}

// keyArgs reads a key line, a tenant's or the assertion's: <what> [<kid>].
// where starts its error.
func keyArgs(d *caddyfile.Dispenser, where, what string) (value, kid string, err error) {
	name := d.Val()
	args := d.RemainingArgs()
	if len(args) < 1 || len(args) > 2 {
		return "", "", d.Errf("%s: %s takes <%s> [<kid>]", where, name, what)
	}
	if len(args) == 2 {
		kid = args[1]
	}
	return args[0], kid, nil
}

// someArgs reads a tenant's list line, one <what> or more, onto list.
func someArgs(d *caddyfile.Dispenser, tenantID, what string, list *[]string) error {
	name := d.Val()
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.Errf("tenant %q: %s needs at least one %s", tenantID, name, what)
	}
	*list = append(*list, args...)
	return nil
}

func oneArg(d *caddyfile.Dispenser, dst *string) error {
	name := d.Val()
	args := d.RemainingArgs()
	if len(args) != 1 {
		return d.Errf("%s takes exactly one argument", name)
	}
	*dst = args[0]
	return nil
}

func parseDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%s: %v", name, err)
	}
	if dur <= 0 {
		return d.Errf("%s: must be positive, got %s", name, dur)
	}
	*dst = caddy.Duration(dur)
	return nil
}

// parseStore reads:
//
//	store memory
//	store redis <url> {
//		key_prefix <prefix>     # default embedgate:
//		timeout <duration>      # per command, default 150ms
//		replicas <n>            # wait for n replicas per write, default 0
//		reload_interval <dur>   # full reload of revocations, default 1m
//		tls {                   # for rediss:// urls
//			ca <pem-file>
//			cert <pem-file>
//			key <pem-file>
//			server_name <name>
//		}
//	}
func parseStore(d *caddyfile.Dispenser) (*StoreConfig, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	switch typ := d.Val(); typ {
	case "memory":
		if d.NextArg() { // not ArgErr, which quotes the argument: it may be a Redis URL with its password
			return nil, d.Errf("store memory takes no arguments (store redis <url> for Redis)")
		}
		for d.NextBlock(1) {
			return nil, d.Errf("store memory takes no options")
		}
		return &StoreConfig{Type: "memory"}, nil
	case "redis":
		args := d.RemainingArgs()
		if len(args) != 1 {
			return nil, d.Errf("store redis takes one <url>, then an optional block")
		}
		sc := &StoreConfig{Type: "redis", URL: args[0]}
		err := block{
			where: "store redis: ",
			str:   map[string]*string{"key_prefix": &sc.KeyPrefix},
			dur:   map[string]*caddy.Duration{"timeout": &sc.Timeout, "reload_interval": &sc.ReloadInterval},
			more: map[string]func(*caddyfile.Dispenser) error{
				"replicas": set(&sc.Replicas, parseReplicas),
				"tls": func(d *caddyfile.Dispenser) error {
					if sc.TLS != nil { // as for a setting given twice in one block
						return d.Errf("store redis: tls given twice")
					}
					return set(&sc.TLS, parseStoreTLS)(d)
				},
			},
		}.read(d, 1)
		if err != nil {
			return nil, err
		}
		return sc, nil
	default:
		if strings.Contains(typ, "://") { // never echo a URL: it may hold a password
			return nil, d.Errf("store: the type comes before the url: store redis <url>")
		}
		return nil, d.Errf("unknown store %q (want memory or redis)", typ)
	}
}

// parseAssertion reads a bare `assertion` line (the defaults) or:
//
//	assertion {
//		header <name>
//		audience <string>
//		ttl <duration>
//		key <pem-file> [<kid>]
//	}
func parseAssertion(d *caddyfile.Dispenser) (*AssertionConfig, error) {
	a := &AssertionConfig{}
	err := blockOnly(d, "assertion takes no arguments, only a block", 1, block{
		where: "assertion: ",
		str:   map[string]*string{"header": &a.Header, "audience": &a.Audience},
		dur:   map[string]*caddy.Duration{"ttl": &a.TTL},
		more: map[string]func(*caddyfile.Dispenser) error{
			"key": add(&a.Keys, func(d *caddyfile.Dispenser) (AssertionKey, error) {
				file, kid, err := keyArgs(d, "assertion", "pem-file")
				return AssertionKey{File: file, KID: kid}, err
			}),
		},
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// parseReplicas reads store redis's replicas line: 0 or more.
func parseReplicas(d *caddyfile.Dispenser) (int, error) {
	var n string
	if err := oneArg(d, &n); err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(n)
	if err != nil || v < 0 {
		return 0, d.Errf("store redis: replicas %q: want a number of replicas, 0 or more", n)
	}
	return v, nil
}

// parseStoreTLS reads the tls block of store redis.
func parseStoreTLS(d *caddyfile.Dispenser) (*StoreTLS, error) {
	st := &StoreTLS{}
	err := blockOnly(d, "store redis: tls takes a block, no arguments", 2, block{
		where: "store redis: tls: ",
		once:  map[string]*string{"ca": &st.CA, "cert": &st.Cert, "key": &st.Key, "server_name": &st.ServerName},
	})
	if err != nil {
		return nil, err
	}
	if *st == (StoreTLS{}) {
		return nil, d.Errf("store redis: tls needs at least one of ca, cert, key, server_name")
	}
	return st, nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Handler)(nil)
)
