package caddymodule

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/spf13/cobra"

	"github.com/embedgate/embedgate/internal/tenant"
)

// APIKeyPrefix starts every API key that embed-keygen --api-key makes, so
// that a leaked key is recognisable (and findable by secret scanners).
const APIKeyPrefix = "egk_"

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "embed-keygen",
		Usage: "[--api-key]",
		Short: "Generates a tenant's HS256 secret or a token API key",
		Long: `
Prints a new random value once, with the Caddyfile line to paste into the
tenant block. Lines starting with # are comments.

Without flags: an HS256 secret of 256 bits (base64url), for "key", to share
with the tenant's backend, which signs its own tokens with it.

--api-key
    A key for the token API (POST /.embed/token), with the "egk_" prefix,
    for the tenant's backend. The gateway stores only its SHA-256, printed
    as the "api_key" line.

Exit status: 0 done, 2 usage error.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().Bool("api-key", false, "generate a token API key instead of an HS256 secret")
			setupCommand(cmd, cmdKeygen)
		},
	})
}

// cmdKeygen is embed-keygen.
func cmdKeygen(c *cobra.Command, args []string) int {
	if len(args) > 0 {
		return usageError(c, "unexpected argument %q", args[0])
	}
	apiKey, _ := c.Flags().GetBool("api-key")
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		fmt.Fprintf(c.ErrOrStderr(), "embed-keygen: %v\n", err)
		return exitRejected
	}
	out := c.OutOrStdout()
	if apiKey {
		key := APIKeyPrefix + base64.RawURLEncoding.EncodeToString(b)
		sum := tenant.HashAPIKey(key)
		fmt.Fprintf(out, "# Token API key, shown once: store it in the tenant backend's secret store now.\n%s\n", key)
		fmt.Fprintf(out, "# Line for the tenant block (the gateway keeps only the key's SHA-256):\napi_key %x\n", sum)
		return exitOK
	}
	secret := base64.RawURLEncoding.EncodeToString(b)
	fmt.Fprintf(out, "# HS256 secret (256 bits), shown once: share it with the tenant's backend over a secure channel.\n%s\n", secret)
	fmt.Fprintf(out, "# Line for the tenant block (better: keep it in the environment and write key {env.TENANT_SECRET}):\nkey %s\n", secret)
	return exitOK
}
