package caddymodule

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/tenant"
	"github.com/embedgate/embedgate/internal/token"
	"github.com/embedgate/embedgate/internal/trustfile"
)

// maxMintTTL bounds embed-mint --ttl: no max_token_age can exceed it.
const maxMintTTL = time.Hour

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "embed-mint",
		Usage: "--tenant <id> --sub <subject> (--key-file <file> | --key-env <NAME>) [--kid <kid>] [--ttl 60s] [--nonce <state>] [--claim <name>=<value>...]",
		Short: "Mints an SSO token, for tests and shell-based backends",
		Long: `
Prints a one-time SSO token for the tenant: iss and aud are the tenant id,
sub the subject, iat now, exp iat + ttl, jti 128 random bits.

--key-file, --key-env
    Where the signing key is: a file, or an environment variable. An HS256
    secret (at least 32 bytes; a trailing newline is dropped, as the gateway
    does for {file.*} and {env.*}), or a PEM private key: RSA (>= 2048 bits)
    signs RS256, P-256 signs ES256, Ed25519 signs EdDSA.
--kid
    The kid header, naming one of the tenant's keys.
--ttl
    exp - iat, default 60s, at most 1h. The gateway refuses more than its
    max_token_age (default 120s).
--nonce
    The nonce claim: for a token link (?embed_token=) under login_state,
    the state= value the gateway sent to login_url.
--claim name=value
    An extra claim, repeatable. The value is JSON when it parses as JSON
    (numbers, true, arrays, objects, "quoted strings"), else a plain string.
    The registered claims iss, aud, sub, iat, exp, nbf and jti are refused.

Exit status: 0 printed a token, 1 the key is unusable, 2 usage error.`,
		CobraFunc: func(cmd *cobra.Command) {
			mintFlags(cmd)
			setupCommand(cmd, cmdMint)
		},
	})
}

// mintFlags declares embed-mint's flags on cmd.
func mintFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("tenant", "", "tenant id (iss and aud)")
	f.String("sub", "", "subject: the user")
	f.String("key-file", "", "file holding the HS256 secret or a PEM private key")
	f.String("key-env", "", "environment variable holding the HS256 secret or a PEM private key")
	f.String("kid", "", "kid header")
	f.String("ttl", "60s", "lifetime, exp - iat")
	f.String("nonce", "", "nonce claim: the state= the gateway sent to login_url")
	f.StringArray("claim", nil, "extra claim name=value (repeatable)")
}

// cmdMint is embed-mint.
func cmdMint(c *cobra.Command, args []string) int {
	if len(args) > 0 {
		return usageError(c, "unexpected argument %q", args[0])
	}
	f := c.Flags()
	tenantID, _ := f.GetString("tenant")
	sub, _ := f.GetString("sub")
	keyFile, _ := f.GetString("key-file")
	keyEnv, _ := f.GetString("key-env")
	kid, _ := f.GetString("kid")
	ttlText, _ := f.GetString("ttl")
	extra, _ := f.GetStringArray("claim")
	nonce, _ := f.GetString("nonce")
	switch {
	case tenantID == "":
		return usageError(c, "--tenant is required")
	case sub == "":
		return usageError(c, "--sub is required")
	case (keyFile == "") == (keyEnv == ""):
		return usageError(c, "give exactly one of --key-file and --key-env")
	}
	ttl, err := caddy.ParseDuration(ttlText)
	if err != nil || ttl <= 0 || ttl > maxMintTTL || ttl%time.Second != 0 {
		return usageError(c, "--ttl %q: want whole seconds, more than 0s and at most %s", ttlText, maxMintTTL)
	}
	claims := map[string]any{}
	for _, kv := range extra {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return usageError(c, "--claim %q: want name=value", kv)
		}
		if token.IsRegistered(name) {
			return usageError(c, "--claim %s: a registered claim, set from --tenant, --sub and --ttl", name)
		}
		if name == gateway.NonceClaim {
			return usageError(c, "--claim nonce: set it with --nonce")
		}
		if _, dup := claims[name]; dup {
			return usageError(c, "--claim %s given twice", name)
		}
		claims[name] = claimValue(value)
	}
	if f.Changed("nonce") {
		if nonce == "" {
			return usageError(c, "--nonce: empty; give the state= value the gateway sent to login_url")
		}
		claims[gateway.NonceClaim] = nonce
	}
	material, err := mintKey(keyFile, keyEnv)
	if err != nil {
		fmt.Fprintf(c.ErrOrStderr(), "embed-mint: key: %v\n", err)
		return exitRejected
	}
	signer, err := signingKey([]byte(material))
	if err != nil {
		fmt.Fprintf(c.ErrOrStderr(), "embed-mint: key: %v\n", err)
		return exitRejected
	}
	signer.KID = kid
	now := time.Now()
	claims["iss"], claims["aud"], claims["sub"] = tenantID, tenantID, sub
	claims["iat"], claims["exp"] = now.Unix(), now.Add(ttl).Unix()
	claims["jti"] = token.NewID()
	raw, err := token.Sign(signer, claims)
	if err != nil {
		fmt.Fprintf(c.ErrOrStderr(), "embed-mint: signing: %v\n", err)
		return exitRejected
	}
	fmt.Fprintln(c.OutOrStdout(), raw)
	return exitOK
}

// claimValue reads a --claim value: JSON when it parses, else the text.
func claimValue(s string) any {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err == nil && !dec.More() {
		if _, err := dec.Token(); err == io.EOF {
			return v
		}
	}
	return s
}

// signingKey reads an HS256 secret or a PEM private key; the algorithm is
// the one the gateway pins for that key type (tenant.AcceptPrivateKey).
func signingKey(material []byte) (token.Signer, error) {
	block, _ := pem.Decode(material)
	if block == nil {
		if bytes.Contains(material, []byte("-----BEGIN")) {
			return token.Signer{}, errors.New("unreadable PEM block")
		}
		if err := tenant.CheckSecret(material); err != nil {
			return token.Signer{}, err
		}
		return token.Signer{Alg: tenant.HS256, Key: material}, nil
	}
	signer, alg, err := tenant.ParsePrivateKeyPEM(block)
	if err != nil {
		return token.Signer{}, err
	}
	return token.Signer{Alg: alg, Key: signer}, nil
}

// mintKey reads the key as a `key {file.F}` or `key {env.NAME}` line
// resolves it, so the secret is byte for byte what the gateway verifies
// with. The file is read directly, not through a {file.F} placeholder built
// from it, so a path holding '}' or '\\' names that file and no other.
func mintKey(keyFile, keyEnv string) (string, error) {
	if keyFile == "" {
		return resolveSecret(caddy.NewReplacer(), "{env."+keyEnv+"}")
	}
	b, err := trustfile.Read(keyFile, trustfile.MaxKeyFile)
	if err != nil {
		return "", err
	}
	return trimFileValue(b), nil
}
