package token

import (
	"slices"
	"strings"

	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/tenant"
)

// allowedAlgs is the whole allowlist. Anything else, "none" in any case
// included, is refused before a key is looked at (RFC 8725 §3.1, §3.2).
var allowedAlgs = map[string]bool{
	tenant.HS256: true,
	tenant.RS256: true,
	tenant.ES256: true,
	tenant.EdDSA: true,
}

// forbiddenHeaders would let the token choose or carry its own key (jku, x5u,
// jwk, x5c: RFC 8725 §3.10) or demand extensions we do not implement (crit:
// RFC 7515 §4.1.11 says refuse what we do not understand). Checked in this
// order, by presence alone: even a null value is refused.
var forbiddenHeaders = [...]string{"jku", "x5u", "jwk", "x5c", "crit"}

// header is what the verifier uses from a JOSE header.
type header struct {
	alg string
	kid string // "" when absent or empty
}

// headerRules are the algorithms and typ values one kind of token may
// carry: one-time tokens, or the subject tokens of a token exchange.
type headerRules struct {
	algs    map[string]bool
	algList string   // the allowlist as a detail names it
	typs    []string // accepted typ values, compared in any case
}

// oneTimeHeader are the rules for one-time tokens.
var oneTimeHeader = headerRules{algs: allowedAlgs, algList: "HS256, RS256, ES256, EdDSA", typs: []string{"JWT"}}

// checkHeader applies oneTimeHeader's rules (see headerRules.check).
func checkHeader(h map[string]any) (header, error) { return oneTimeHeader.check(h) }

// check applies the header rules, in this order:
//  1. alg present and a string, else malformed;
//  2. alg in the allowlist (exact case), else bad_algorithm;
//  3. none of jku, x5u, jwk, x5c, crit, else forbidden_header;
//  4. typ, when present, one of r.typs in any case, else malformed
//     (explicit typing, RFC 8725 §3.11: for one-time tokens "JWT" only,
//     which keeps other JWT kinds, e.g. "at+jwt" access tokens signed by
//     the same key, from being replayed as SSO tokens);
//  5. kid, when present, a string, else malformed. An empty kid counts as
//     absent: keys without a KID are never selected by name.
func (r headerRules) check(h map[string]any) (header, error) {
	a, ok := h["alg"]
	if !ok {
		return header{}, reason.Errorf(reason.Malformed, "header has no alg")
	}
	alg, ok := a.(string)
	if !ok {
		return header{}, reason.Errorf(reason.Malformed, "header alg is not a string")
	}
	if !r.algs[alg] {
		return header{}, reason.Errorf(reason.BadAlgorithm, "alg %s is not allowed (%s)", quote(alg), r.algList)
	}
	for _, name := range forbiddenHeaders {
		if _, ok := h[name]; ok {
			return header{}, reason.Errorf(reason.ForbiddenHeader, "header %s is not accepted", name)
		}
	}
	if t, ok := h["typ"]; ok {
		typ, ok := t.(string)
		if !ok || !slices.ContainsFunc(r.typs, func(want string) bool { return strings.EqualFold(typ, want) }) {
			return header{}, reason.Errorf(reason.Malformed, "header typ must be %s", strings.Join(r.typs, " or "))
		}
	}
	var kid string
	if k, ok := h["kid"]; ok {
		if kid, ok = k.(string); !ok {
			return header{}, reason.Errorf(reason.Malformed, "header kid is not a string")
		}
	}
	return header{alg: alg, kid: kid}, nil
}
