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
//		leeway <duration>                   # default 30s
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
//			audience <string>               # default: the request's origin
//			ttl <duration>                  # default 5m, at most 1h
//			key <pem-file> [<kid>]          # ES256/EdDSA; repeat to rotate: the first signs
//		}
//		store memory                        # default
//		store redis <url> {                 # cluster mode
//			key_prefix <prefix>             # default "embedgate:"
//			timeout <duration>              # per command, default 150ms
//			replicas <n>                    # wait for n replica acks per write, default 0
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
	for d.NextBlock(0) {
		switch d.Val() {
		case "tenant":
			t, err := parseTenant(d)
			if err != nil {
				return err
			}
			h.Tenants = append(h.Tenants, t)
		case "session_key":
			keys := d.RemainingArgs()
			if len(keys) == 0 {
				return d.ArgErr()
			}
			h.SessionKeys = append(h.SessionKeys, keys...)
		case "session_ttl", "idle_timeout", "max_token_age", "leeway":
			if err := parseDuration(d, h.durationField(d.Val())); err != nil {
				return err
			}
		case "cookie_name", "prefix", "token_param", "tenants_file":
			if err := oneArg(d, h.stringField(d.Val())); err != nil {
				return err
			}
		case "inject_bridge", "caddy_errors", "metrics_per_tenant":
			flag := h.flagField(d.Val())
			if d.NextArg() {
				return d.ArgErr()
			}
			*flag = true
		case "forward_claim":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("forward_claim takes <claim.path> <Header-Name>")
			}
			h.ForwardClaims = append(h.ForwardClaims, ForwardClaim{Claim: args[0], Header: args[1]})
		case "store":
			st, err := parseStore(d)
			if err != nil {
				return err
			}
			h.Store = st
		case "require":
			rq, err := parseRequire(d)
			if err != nil {
				return err
			}
			h.Require = append(h.Require, rq)
		case "assertion":
			if h.Assertion != nil {
				return d.Errf("assertion given twice")
			}
			a, err := parseAssertion(d)
			if err != nil {
				return err
			}
			h.Assertion = a
		default:
			return d.Errf("unrecognized subdirective %q", d.Val())
		}
	}
	return nil
}

// stringField is the field a one-argument subdirective sets.
func (h *Handler) stringField(name string) *string {
	return map[string]*string{"cookie_name": &h.CookieName, "prefix": &h.Prefix, "token_param": &h.TokenParam,
		"tenants_file": &h.TenantsFile}[name]
}

// flagField is the field a subdirective without arguments turns on.
func (h *Handler) flagField(name string) *bool {
	return map[string]*bool{"inject_bridge": &h.InjectBridge, "caddy_errors": &h.CaddyErrors,
		"metrics_per_tenant": &h.MetricsPerTenant}[name]
}

// durationField is the field a duration subdirective sets.
func (h *Handler) durationField(name string) *caddy.Duration {
	return map[string]*caddy.Duration{"session_ttl": &h.SessionTTL, "idle_timeout": &h.IdleTimeout,
		"max_token_age": &h.MaxTokenAge, "leeway": &h.Leeway}[name]
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
	for d.NextBlock(1) {
		switch d.Val() {
		case "key":
			secret, kid, err := keyArgs(d, fmt.Sprintf("tenant %q", t.ID), "secret")
			if err != nil {
				return t, err
			}
			t.Keys = append(t.Keys, tenant.SecretConfig{Secret: secret, KID: kid})
		case "public_key":
			file, kid, err := keyArgs(d, fmt.Sprintf("tenant %q", t.ID), "pem-file")
			if err != nil {
				return t, err
			}
			t.PublicKeys = append(t.PublicKeys, tenant.PublicKeyConfig{File: file, KID: kid})
		case "frame_ancestors":
			args, err := someArgs(d, t.ID, "origin")
			if err != nil {
				return t, err
			}
			t.FrameAncestors = append(t.FrameAncestors, args...)
		case "hosts":
			args, err := someArgs(d, t.ID, "host")
			if err != nil {
				return t, err
			}
			t.Hosts = append(t.Hosts, args...)
		case "login_url":
			if err := oneArg(d, &t.LoginURL); err != nil {
				return t, err
			}
		case "api_key":
			args := d.RemainingArgs()
			if len(args) != 1 {
				return t, d.Errf("tenant %q: api_key takes <sha256-hex> (repeat the line to list several)", t.ID)
			}
			t.APIKeys = append(t.APIKeys, args[0])
		case "jwks":
			if t.JWKS != "" {
				return t, d.Errf("tenant %q: jwks given twice", t.ID)
			}
			if err := oneArg(d, &t.JWKS); err != nil {
				return t, err
			}
		case "login_state":
			if err := parseLoginState(d, &t); err != nil {
				return t, err
			}
		case "subject_issuer":
			si, err := parseSubjectIssuer(d, t.ID)
			if err != nil {
				return t, err
			}
			t.SubjectIssuers = append(t.SubjectIssuers, si)
		default:
			return t, d.Errf("tenant %q: unrecognized subdirective %q", t.ID, d.Val())
		}
	}
	return t, nil
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

// someArgs reads a tenant's list line: one <what> or more.
func someArgs(d *caddyfile.Dispenser, tenantID, what string) ([]string, error) {
	name := d.Val()
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, d.Errf("tenant %q: %s needs at least one %s", tenantID, name, what)
	}
	return args, nil
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
		if d.NextArg() {
			return nil, d.ArgErr()
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
		for d.NextBlock(1) {
			switch d.Val() {
			case "key_prefix":
				if err := oneArg(d, &sc.KeyPrefix); err != nil {
					return nil, err
				}
			case "timeout":
				if err := parseDuration(d, &sc.Timeout); err != nil {
					return nil, err
				}
			case "replicas":
				var n string
				if err := oneArg(d, &n); err != nil {
					return nil, err
				}
				v, err := strconv.Atoi(n)
				if err != nil || v < 0 {
					return nil, d.Errf("store redis: replicas %q: want a number of replicas, 0 or more", n)
				}
				sc.Replicas = v
			case "tls":
				st, err := parseStoreTLS(d)
				if err != nil {
					return nil, err
				}
				sc.TLS = st
			default:
				return nil, d.Errf("store redis: unrecognized subdirective %q", d.Val())
			}
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
	if d.NextArg() {
		return nil, d.Errf("assertion takes no arguments, only a block")
	}
	a := &AssertionConfig{}
	for d.NextBlock(1) {
		switch d.Val() {
		case "header":
			if err := oneArg(d, &a.Header); err != nil {
				return nil, err
			}
		case "audience":
			if err := oneArg(d, &a.Audience); err != nil {
				return nil, err
			}
		case "ttl":
			if err := parseDuration(d, &a.TTL); err != nil {
				return nil, err
			}
		case "key":
			file, kid, err := keyArgs(d, "assertion", "pem-file")
			if err != nil {
				return nil, err
			}
			a.Keys = append(a.Keys, AssertionKey{File: file, KID: kid})
		default:
			return nil, d.Errf("assertion: unrecognized subdirective %q", d.Val())
		}
	}
	return a, nil
}

// parseStoreTLS reads the tls block of store redis.
func parseStoreTLS(d *caddyfile.Dispenser) (*StoreTLS, error) {
	if d.NextArg() {
		return nil, d.Errf("store redis: tls takes a block, no arguments")
	}
	st := &StoreTLS{}
	for d.NextBlock(2) {
		field := map[string]*string{"ca": &st.CA, "cert": &st.Cert, "key": &st.Key, "server_name": &st.ServerName}[d.Val()]
		if field == nil {
			return nil, d.Errf("store redis: tls: unrecognized subdirective %q", d.Val())
		}
		if *field != "" {
			return nil, d.Errf("store redis: tls: %s given twice", d.Val())
		}
		if err := oneArg(d, field); err != nil {
			return nil, err
		}
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
