package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/embedgate/embedgate/internal/policy"
	"github.com/embedgate/embedgate/internal/tenant"
)

// parseLoginState reads `login_state required|optional|off` into t.
func parseLoginState(d *caddyfile.Dispenser, t *tenant.Config) error {
	if t.LoginState != "" {
		return d.Errf("tenant %q: login_state given twice", t.ID)
	}
	var v string
	if err := oneArg(d, &v); err != nil {
		return err
	}
	if _, err := tenant.ParseLoginState(v); err != nil {
		return d.Errf("tenant %q: login_state %v", t.ID, err)
	}
	t.LoginState = v
	return nil
}

// parseSubjectIssuer reads, inside a tenant block:
//
//	subject_issuer <issuer-url> {
//		jwks <https-url>
//		public_key <pem-file> [<kid>]   # repeatable
//		audience <aud>...               # repeatable
//		subject_claim <claim>           # default sub
//		copy_claims <claim>...          # repeatable
//	}
//
// tenant.New checks the values.
func parseSubjectIssuer(d *caddyfile.Dispenser, tenantID string) (tenant.SubjectIssuerConfig, error) {
	var s tenant.SubjectIssuerConfig
	args := d.RemainingArgs()
	if len(args) != 1 {
		return s, d.Errf("tenant %q: subject_issuer takes one <issuer-url>, then a block", tenantID)
	}
	s.Issuer = args[0]
	// Errors name the issuer without user info or query (a credential).
	issuer := "subject_issuer " + policy.Shown(s.Issuer)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "jwks":
			if s.JWKS != "" {
				return s, d.Errf("tenant %q: %s: jwks given twice", tenantID, issuer)
			}
			if err := oneArg(d, &s.JWKS); err != nil {
				return s, err
			}
		case "public_key":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return s, d.Errf("tenant %q: %s: public_key takes <pem-file> [<kid>]", tenantID, issuer)
			}
			k := tenant.PublicKeyConfig{File: args[0]}
			if len(args) == 2 {
				k.KID = args[1]
			}
			s.PublicKeys = append(s.PublicKeys, k)
		case "audience", "copy_claims":
			name := d.Val()
			args := d.RemainingArgs()
			if len(args) == 0 {
				return s, d.Errf("tenant %q: %s: %s needs at least one value", tenantID, issuer, name)
			}
			if name == "audience" {
				s.Audiences = append(s.Audiences, args...)
			} else {
				s.CopyClaims = append(s.CopyClaims, args...)
			}
		case "subject_claim":
			if s.SubjectClaim != "" {
				return s, d.Errf("tenant %q: %s: subject_claim given twice", tenantID, issuer)
			}
			if err := oneArg(d, &s.SubjectClaim); err != nil {
				return s, err
			}
		default:
			return s, d.Errf("tenant %q: %s: unrecognized subdirective %q", tenantID, issuer, d.Val())
		}
	}
	return s, nil
}
