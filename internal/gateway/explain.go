package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/session"
	"github.com/embedgate/embedgate/internal/tenant"
	"github.com/embedgate/embedgate/internal/token"
)

// Peek is a token decoded for display only, without any check: what an
// operator tool prints before the verdict, even of a token the verifier
// refuses as malformed.
type Peek struct {
	// Header and Payload are the raw JSON of the first two segments; nil
	// when a segment is missing or is not base64url of JSON.
	Header, Payload []byte
	// Claims is Payload when it is a JSON object, numbers as json.Number.
	Claims map[string]any
	// Issuer is the iss claim when it is a string.
	Issuer string
}

// PeekToken decodes raw for display. It is lenient where the verifier is
// strict (padding, duplicate names, trailing bits), so that an operator
// sees what a refused token holds.
func PeekToken(raw string) Peek {
	var p Peek
	parts := strings.Split(raw, ".")
	seg := func(i int) []byte {
		if i >= len(parts) || len(raw) > token.MaxTokenSize {
			return nil
		}
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || !json.Valid(b) {
			return nil
		}
		return b
	}
	p.Header, p.Payload = seg(0), seg(1)
	if p.Payload != nil {
		dec := json.NewDecoder(bytes.NewReader(p.Payload))
		dec.UseNumber()
		if dec.Decode(&p.Claims) == nil {
			p.Issuer, _ = p.Claims["iss"].(string)
		}
	}
	return p
}

// Date reads the NumericDate claim name (iat, nbf, exp) as a time, when it
// is a number of seconds the verifier would accept.
func (p Peek) Date(name string) (time.Time, bool) {
	n, ok := p.Claims[name].(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > 253402300799 {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// headerString is the header member name when it is a string.
func (p Peek) headerString(name string) string {
	var h map[string]any
	if json.Unmarshal(p.Header, &h) != nil {
		return ""
	}
	s, _ := h[name].(string)
	return s
}

// millisecondsHint says that the date claim name reads as a millisecond
// timestamp (JavaScript's Date.now()), with the date it means.
func (p Peek) millisecondsHint(name string) (string, bool) {
	n, ok := p.Claims[name].(json.Number)
	if !ok {
		return "", false
	}
	f, err := n.Float64()
	// Seconds stay under 1e11 until the year 5138; milliseconds of any date
	// after 1973 are above it.
	if err != nil || f < 1e11 || f > 1e14 {
		return "", false
	}
	secs := int64(f / 1000)
	return fmt.Sprintf("%s is %s, which looks like milliseconds: iat, nbf and exp are whole seconds since the epoch (%d is %s); divide by 1000 (Math.floor(Date.now() / 1000))",
		name, n, secs, time.Unix(secs, 0).UTC().Format(time.RFC3339)), true
}

// Explainer verifies a token as the exchange does, without the single-use
// check (the jti is not consumed), and says what a refusal means and how to
// fix it: embed-inspect's verdict. The fix for each reason is written here,
// beside the exchange that gives the reasons.
type Explainer struct {
	// Tenants is the registry to verify against, built as the gateway's is.
	Tenants *tenant.Registry
	// TenantIDs are the tenants an unknown_tenant verdict names, in order
	// (a config's, which may span several registries). Default:
	// Tenants.IDs().
	TenantIDs []string
	// MaxTokenAge and Leeway are the gateway's (Config); zero MaxTokenAge
	// means token.DefaultMaxTokenAge, zero Leeway none.
	MaxTokenAge time.Duration
	Leeway      time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ForwardClaims and Require are the gateway's (Config): the claims a
	// session keeps, which the exchange checks (header-safe values, a
	// session that fits in a cookie).
	ForwardClaims []ForwardClaim
	Require       []Requirement
	// CookieName is the session cookie's; "" means DefaultCookieName.
	CookieName string
}

// Explanation is the verdict on one token.
type Explanation struct {
	// Tenant is the tenant the token's iss names in the registry; nil when
	// none does.
	Tenant *tenant.Tenant
	// Result is the verified token; nil when it is refused.
	Result *token.Result
	// Err is the refusal, with the reason and detail the exchange would
	// answer; nil when the token verifies.
	Err *reason.Error
	// Fix says, on one line, what is wrong and how to fix it; "" when the
	// token verifies.
	Fix string
}

// Line is the verdict on one line: "valid for tenant <id>", or
// "<reason>: <fix>".
func (e Explanation) Line() string {
	switch {
	case e.Err == nil && e.Result != nil:
		return "valid for tenant " + e.Result.Tenant.ID
	case e.Err == nil:
		return "no verdict"
	case e.Fix == "":
		return string(e.Err.Reason)
	}
	return string(e.Err.Reason) + ": " + e.Fix
}

// Explain verifies raw and explains the verdict. ctx bounds the wait for a
// JWKS refresh on an unknown kid, as the request's context does in the
// exchange.
func (x *Explainer) Explain(ctx context.Context, raw string) Explanation {
	v := &token.Verifier{MaxTokenAge: x.MaxTokenAge, Leeway: x.Leeway, Now: x.Now}
	p := PeekToken(raw)
	var e Explanation
	var tenants token.Tenants // a nil registry is no tenant, not a nil map
	if x.Tenants != nil {
		tenants = x.Tenants
		e.Tenant, _ = x.Tenants.ByID(p.Issuer)
	}
	res, err := v.Verify(ctx, raw, tenants, nil)
	if err == nil {
		if err = x.exchangeTokenChecks(res); err != nil {
			// The exchange's own checks of a verified token: the detail
			// says what is wrong and what to change.
			e.Tenant = res.Tenant
			e.Err = reason.Ensure(err, reason.Malformed)
			e.Fix = e.Err.Detail
			return e
		}
		e.Result, e.Tenant = res, res.Tenant
		return e
	}
	e.Err = reason.Ensure(err, reason.Malformed)
	e.Fix = x.fix(e.Err, p, e.Tenant)
	return e
}

// exchangeTokenChecks are the checks the exchange makes of a verified token
// that need no request (no origin, cookie or store): its allowed_origins
// must share an origin with the tenant's frame_ancestors, and its sub must
// travel unchanged in a header. Without them the Explainer would call
// "valid" a token that every exchange refuses.
func (x *Explainer) exchangeTokenChecks(res *token.Result) error {
	allowed, err := narrowedByToken(tenantOrigins(res.Tenant), res.Claims)
	if err != nil {
		return err
	}
	if err := token.CheckSubject(res.Claims.Subject); err != nil {
		return err
	}
	claims, err := keepClaims(claimSetOf(x.ForwardClaims, x.Require), x.ForwardClaims, res.Claims)
	if err != nil {
		return err
	}
	// The session the exchange would seal, with no parent origin (the
	// shortest it can bind): too large even so, every exchange refuses it.
	// The key only encrypts; the size does not depend on it.
	name := x.CookieName
	if name == "" {
		name = DefaultCookieName
	}
	sealer, err := session.NewSealer(name, [][]byte{make([]byte, 32)})
	if err != nil {
		return err
	}
	now := x.now()
	_, err = sealer.Seal(&session.Session{ID: token.NewID(), Tenant: res.Tenant.ID, Subject: res.Claims.Subject,
		Origins: allowed.Narrowed(), Claims: claims, IssuedAt: now, LastSeen: now, ExpiresAt: now.Add(time.Hour)}, "")
	return err
}

// fix renders a refusal as "<what is wrong>; <how to fix it>". It reads the
// reason and the refusal's typed cause, and the token's values through p:
// never the detail's text, which it only repeats.
func (x *Explainer) fix(re *reason.Error, p Peek, t *tenant.Tenant) string {
	detail, iss := re.Detail, fmt.Sprintf("%q", p.Issuer)
	maxAge := x.MaxTokenAge
	if maxAge <= 0 {
		maxAge = token.DefaultMaxTokenAge
	}
	switch re.Reason {
	case reason.WrongAudience:
		aud, _ := json.Marshal(p.Claims["aud"])
		return fmt.Sprintf("aud is %s, this tenant expects %s", aud, iss)
	case reason.UnknownTenant:
		ids := x.TenantIDs
		if ids == nil && x.Tenants != nil {
			ids = x.Tenants.IDs()
		}
		return fmt.Sprintf("iss is %s, this config has tenants %s", iss, quoteList(ids))
	case reason.UnknownKey:
		var kids []string
		if t != nil {
			kids = t.KeyIDs()
		}
		return fmt.Sprintf("kid is %q, tenant %s has kids %s; send one of those, or no kid", p.headerString("kid"), iss, quoteList(kids))
	case reason.BadAlgorithm:
		if t == nil {
			return detail + "; sign with HS256 (key), RS256, ES256 or EdDSA (public_key, jwks)"
		}
		algs := strings.Join(t.Algorithms(), ", ")
		if algs == "" {
			algs = "nothing yet (its jwks has no usable key)"
		}
		return fmt.Sprintf("%s; tenant %s verifies %s: sign with that algorithm, or add a key for yours", detail, iss, algs)
	case reason.BadSignature:
		return fmt.Sprintf("the signature does not verify under any of tenant %s's keys for this alg; sign with the tenant's current secret or private key (a stale key or a secret with stray whitespace is the usual cause)", iss)
	case reason.ForbiddenHeader:
		return detail + "; the gateway never takes keys or extensions from a token: remove that header"
	case reason.Expired:
		if exp, ok := p.Date("exp"); ok {
			return fmt.Sprintf("exp was %s ago (leeway %s); mint the token right before use: it lives at most max_token_age (%s) and is single-use",
				x.now().Sub(exp).Round(time.Second), max(x.Leeway, 0), maxAge)
		}
	case reason.NotYetValid, reason.IssuedInFuture:
		return detail + "; the minting server's clock is ahead: sync it (NTP)"
	case reason.LifetimeTooLong:
		return fmt.Sprintf("%s; set exp = iat + %d or less (max_token_age)", detail, int64(maxAge/time.Second))
	case reason.StateMismatch:
		return fmt.Sprintf("%s; with login_state, a token link (?embed_token=) must carry nonce = the state= the gateway sent to login_url, opened in the browser that was sent there (its %s cookie); mint link tokens on the login page with that state, or hand tokens to the start page instead", detail, LoginCookie)
	case reason.MissingClaim, reason.Malformed:
		return claimFix(re, p)
	default:
		// The detail alone says what to fix.
	}
	return detail
}

// claimFix explains a missing_claim or malformed refusal: by the claim and
// rule of its cause when it has one, else as a token that is not one.
func claimFix(re *reason.Error, p Peek) string {
	ce, ok := errors.AsType[*token.ClaimError](re)
	if !ok {
		if re.Reason == reason.MissingClaim {
			return re.Detail + "; add it"
		}
		return fmt.Sprintf("%s; a token is header.payload.signature: unpadded base64url of JSON objects, at most %d bytes (embed-mint makes one)", re.Detail, token.MaxTokenSize)
	}
	switch ce.Rule {
	case token.ClaimNotAfterIssued:
		return "exp is not after iat; set exp = iat + the token's lifetime in seconds"
	case token.ClaimOutOfRange:
		if hint, ok := p.millisecondsHint(ce.Claim); ok {
			return re.Detail + "; " + hint
		}
	default:
		// The claim's own fix below.
	}
	switch ce.Claim {
	case "iss":
		return re.Detail + "; set iss to the tenant id"
	case "aud":
		return fmt.Sprintf("%s; set aud to the tenant id (%q)", re.Detail, p.Issuer)
	case "sub":
		return re.Detail + "; set sub to the user's id"
	case "jti":
		return re.Detail + "; set jti to a new unique id for every token (e.g. a UUID)"
	case "iat", "exp":
		return re.Detail + "; set iat to now and exp to iat + 60, in seconds since the epoch"
	case "nbf":
		return re.Detail + "; set nbf in seconds since the epoch, or leave it out"
	}
	return re.Detail + "; add it"
}

func (x *Explainer) now() time.Time {
	if x.Now == nil {
		return time.Now()
	}
	return x.Now()
}

// quoteList quotes the first few of list: a tenants file may hold
// thousands of tenants.
func quoteList(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	const show = 20
	q := make([]string, 0, min(len(list), show)+1)
	for _, s := range list[:min(len(list), show)] {
		q = append(q, fmt.Sprintf("%q", s))
	}
	if len(list) > show {
		q = append(q, fmt.Sprintf("and %d more", len(list)-show))
	}
	return strings.Join(q, ", ")
}
