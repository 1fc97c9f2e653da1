package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/spf13/cobra"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/tenant"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "embed-inspect",
		Usage: "--config <file> [--adapter <name>] <token | ->",
		Short: "Checks a token against a config, as the gateway would",
		Long: `
Loads the config, finds its embed_session handlers, builds their tenants
(inline and tenants_file) as the gateway does (placeholders resolved, jwks
fetched) and runs the token
through the gateway's own verifier, without the single-use check. Prints the
decoded header and claims, then either "valid for tenant <id>" or the
rejection reason with a one-line fix. "-" reads the token from stdin, which
keeps it out of the shell history.

Exit status: 0 valid, 1 rejected, 2 usage error or config that cannot be loaded.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().StringP("config", "c", "", "configuration file (Caddyfile or JSON)")
			cmd.Flags().StringP("adapter", "a", "", "config adapter; default caddyfile, or none for a .json file")
			setupCommand(cmd, cmdInspect)
		},
	})
}

// cmdInspect is embed-inspect.
func cmdInspect(c *cobra.Command, args []string) int {
	configFile, _ := c.Flags().GetString("config")
	adapter, _ := c.Flags().GetString("adapter")
	if len(args) != 1 {
		return usageError(c, "give exactly one token (or - to read it from stdin)")
	}
	if configFile == "" {
		return usageError(c, "--config is required")
	}
	raw, err := tokenArg(c, args[0])
	if err != nil {
		fmt.Fprintf(c.ErrOrStderr(), "embed-inspect: reading stdin: %v\n", err)
		return exitUsage
	}
	handlers, err := loadHandlers(configFile, adapter)
	if err != nil {
		fmt.Fprintf(c.ErrOrStderr(), "embed-inspect: %v\n", err)
		return exitUsage
	}
	out, errOut := c.OutOrStdout(), c.ErrOrStderr()
	p := gateway.PeekToken(raw)
	printToken(out, p, time.Now())

	// Each handler's tenants are its inline ones plus its tenants_file, read
	// as Provision reads it (no watcher: one look). Only the handlers that
	// list the token's iss are built (so their secrets must resolve); with
	// none, an empty registry gives the same verdict the gateway would
	// (unknown_tenant, or an earlier one).
	type candidate struct {
		h        *Handler
		fromFile []tenant.Config
	}
	repl := caddy.NewReplacer()
	var ids []string
	var matches []candidate
	for i, h := range handlers {
		file, err := h.checkedTenantsFile()
		if err != nil {
			fmt.Fprintf(errOut, "embed-inspect: config: embed_session #%d: %v\n", i+1, err)
			return exitUsage
		}
		matched := false
		for _, t := range slices.Concat(h.Tenants, file.tenants) {
			ids = append(ids, t.ID)
			if p.Issuer != "" && t.ID == p.Issuer && !matched {
				matched = true
				matches = append(matches, candidate{h, file.tenants})
			}
		}
	}
	if len(matches) == 0 {
		matches = []candidate{{h: &Handler{}}}
	}
	status := exitOK
	for i, m := range matches {
		h := m.h
		reg, err := h.inspectRegistry(repl, m.fromFile, errOut)
		if err != nil {
			fmt.Fprintf(errOut, "embed-inspect: config: %v\n", err)
			return exitUsage
		}
		e := h.explainer(reg, ids).Explain(context.Background(), raw)
		if e.Err != nil {
			status = exitRejected
		}
		prefix := ""
		if len(matches) > 1 {
			prefix = fmt.Sprintf("embed_session #%d: ", i+1)
		}
		fmt.Fprintln(out, prefix+e.Line())
	}
	return status
}

// checkedTenantsFile sets h's defaults and validates it as Caddy does after
// Provision, then reads its tenants file as Provision does. Every handler
// is checked, not only the token's: Caddy refuses the whole config when
// one fails, and a config the gateway cannot load gives no verdict.
func (h *Handler) checkedTenantsFile() (tenantsFile, error) {
	h.setDefaults()
	if err := h.Validate(); err != nil {
		return tenantsFile{}, err
	}
	return h.readTenantsFile()
}

// inspectRegistry builds h's tenants with fromFile as Provision does,
// warning on errOut of a JWKS that cannot be fetched.
func (h *Handler) inspectRegistry(repl *caddy.Replacer, fromFile []tenant.Config, errOut io.Writer) (*tenant.Registry, error) {
	h.setDefaults()
	return h.freshRegistry(context.Background(), repl, fromFile, func(id string, err error) {
		fmt.Fprintf(errOut, "warning: tenant %q: %v\n", id, err)
	})
}

// explainer is the Explainer of h's config over reg: the exchange's
// checks, with its forward_claim, require and cookie_name.
func (h *Handler) explainer(reg *tenant.Registry, ids []string) *gateway.Explainer {
	return &gateway.Explainer{Tenants: reg, TenantIDs: ids, MaxTokenAge: time.Duration(h.MaxTokenAge), Leeway: time.Duration(h.Leeway),
		ForwardClaims: h.gatewayForwardClaims(), Require: h.gatewayRequire(), CookieName: h.CookieName}
}

// tokenArg is the token argument, read from stdin when it is "-".
func tokenArg(c *cobra.Command, arg string) (string, error) {
	if arg != "-" {
		return strings.TrimSpace(arg), nil
	}
	b, err := io.ReadAll(io.LimitReader(c.InOrStdin(), 64<<10))
	return strings.TrimSpace(string(b)), err
}

// loadHandlers adapts the config file and returns every embed_session
// handler in it, in config order.
func loadHandlers(file, adapterName string) ([]*Handler, error) {
	body, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if adapterName == "" && !strings.HasSuffix(strings.ToLower(file), ".json") {
		adapterName = "caddyfile"
	}
	if adapterName != "" && adapterName != "json" {
		a := caddyconfig.GetAdapter(adapterName)
		if a == nil {
			return nil, fmt.Errorf("unknown config adapter %q", adapterName)
		}
		if body, _, err = a.Adapt(body, map[string]any{"filename": file}); err != nil {
			return nil, fmt.Errorf("adapting config: %w", err)
		}
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("config is not JSON: %w", err)
	}
	var found []map[string]any
	collectHandlers(doc, &found)
	if len(found) == 0 {
		return nil, fmt.Errorf("%s has no embed_session handler", file)
	}
	hs := make([]*Handler, 0, len(found))
	for i, m := range found {
		b, _ := json.Marshal(m)
		h := new(Handler)
		if err := json.Unmarshal(b, h); err != nil {
			return nil, fmt.Errorf("embed_session #%d: %w", i+1, err)
		}
		hs = append(hs, h)
	}
	return hs, nil
}

// collectHandlers walks a JSON config for objects with
// "handler": "embed_session", visiting object members in sorted order so
// that the result does not depend on map iteration.
func collectHandlers(v any, out *[]map[string]any) {
	switch x := v.(type) {
	case map[string]any:
		if x["handler"] == "embed_session" {
			*out = append(*out, x)
			return
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			collectHandlers(x[k], out)
		}
	case []any:
		for _, e := range x {
			collectHandlers(e, out)
		}
	}
}

// printToken prints the decoded header and claims, and iat, nbf and exp as
// dates relative to now.
func printToken(w io.Writer, p gateway.Peek, now time.Time) {
	show := func(name string, b []byte) {
		var buf bytes.Buffer
		if b == nil || json.Indent(&buf, b, "  ", "  ") != nil {
			fmt.Fprintf(w, "%s: (not decodable)\n", name)
			return
		}
		fmt.Fprintf(w, "%s:\n  %s\n", name, buf.String())
	}
	show("header", p.Header)
	show("claims", p.Payload)
	for _, name := range []string{"iat", "nbf", "exp"} {
		if t, ok := p.Date(name); ok {
			rel := "in " + t.Sub(now).Round(time.Second).String()
			if !t.After(now) {
				rel = now.Sub(t).Round(time.Second).String() + " ago"
			}
			fmt.Fprintf(w, "  %s = %s (%s)\n", name, t.UTC().Format(time.RFC3339), rel)
		}
	}
}
