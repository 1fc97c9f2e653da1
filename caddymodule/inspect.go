package caddymodule

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
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

	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/tenant"
	"github.com/embedgate/embedgate/internal/token"
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
	d := decodeForDisplay(raw)
	d.print(out, time.Now())

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
		file, err := h.readTenantsFile(repl)
		if err != nil {
			fmt.Fprintf(errOut, "embed-inspect: config: embed_session #%d: %v\n", i+1, err)
			return exitUsage
		}
		matched := false
		for _, t := range slices.Concat(h.Tenants, file.tenants) {
			ids = append(ids, t.ID)
			if d.iss != "" && t.ID == d.iss && !matched {
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
		h.setDefaults()
		reg, err := h.freshRegistry(context.Background(), repl, m.fromFile, func(id string, err error) {
			fmt.Fprintf(errOut, "warning: tenant %q: %v\n", id, err)
		})
		if err != nil {
			fmt.Fprintf(errOut, "embed-inspect: config: %v\n", err)
			return exitUsage
		}
		v := &token.Verifier{MaxTokenAge: time.Duration(h.MaxTokenAge), Leeway: time.Duration(h.Leeway)}
		prefix := ""
		if len(matches) > 1 {
			prefix = fmt.Sprintf("embed_session #%d: ", i+1)
		}
		res, err := v.Verify(raw, reg, nil)
		if err != nil {
			status = exitRejected
			t, _ := reg.ByID(d.iss)
			fmt.Fprintln(out, prefix+explain(err, d, t, ids, v))
			continue
		}
		fmt.Fprintf(out, "%svalid for tenant %s\n", prefix, res.Tenant.ID)
	}
	return status
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

// decoded is a token decoded for display only, without any check.
type decoded struct {
	header, payload []byte         // raw JSON, nil when not decodable
	claims          map[string]any // the payload, when it is an object
	iss             string
}

func decodeForDisplay(raw string) decoded {
	var d decoded
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
	d.header, d.payload = seg(0), seg(1)
	if d.payload != nil {
		dec := json.NewDecoder(bytes.NewReader(d.payload))
		dec.UseNumber()
		if dec.Decode(&d.claims) == nil {
			d.iss, _ = d.claims["iss"].(string)
		}
	}
	return d
}

func (d decoded) print(w io.Writer, now time.Time) {
	show := func(name string, b []byte) {
		var buf bytes.Buffer
		if b == nil || json.Indent(&buf, b, "  ", "  ") != nil {
			fmt.Fprintf(w, "%s: (not decodable)\n", name)
			return
		}
		fmt.Fprintf(w, "%s:\n  %s\n", name, buf.String())
	}
	show("header", d.header)
	show("claims", d.payload)
	for _, name := range []string{"iat", "nbf", "exp"} {
		if t, ok := d.date(name); ok {
			rel := "in " + t.Sub(now).Round(time.Second).String()
			if !t.After(now) {
				rel = now.Sub(t).Round(time.Second).String() + " ago"
			}
			fmt.Fprintf(w, "  %s = %s (%s)\n", name, t.UTC().Format(time.RFC3339), rel)
		}
	}
}

// millisecondsHint names the first of iat, nbf, exp that reads as a
// millisecond timestamp (JavaScript's Date.now()), with the date it means.
func (d decoded) millisecondsHint() (string, bool) {
	for _, name := range []string{"iat", "nbf", "exp"} {
		n, ok := d.claims[name].(json.Number)
		if !ok {
			continue
		}
		f, err := n.Float64()
		// Seconds stay under 1e11 until the year 5138; milliseconds of any
		// date after 1973 are above it.
		if err != nil || f < 1e11 || f > 1e14 {
			continue
		}
		secs := int64(f / 1000)
		return fmt.Sprintf("%s is %s, which looks like milliseconds: iat, nbf and exp are whole seconds since the epoch (%d is %s); divide by 1000 (Math.floor(Date.now() / 1000))",
			name, n, secs, time.Unix(secs, 0).UTC().Format(time.RFC3339)), true
	}
	return "", false
}

func (d decoded) date(name string) (time.Time, bool) {
	n, ok := d.claims[name].(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > 253402300799 {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// explain renders a rejection as "<reason>: <what is wrong>; <fix>", on one
// line.
func explain(err error, d decoded, t *tenant.Tenant, tenantIDs []string, v *token.Verifier) string {
	var re *reason.Error
	if !errors.As(err, &re) {
		return "error: " + err.Error()
	}
	why, detail := re.Reason, re.Detail
	line := func(format string, args ...any) string { return string(why) + ": " + fmt.Sprintf(format, args...) }
	tenantName := fmt.Sprintf("%q", d.iss)
	maxAge, leeway := v.MaxTokenAge, v.Leeway
	if maxAge <= 0 {
		maxAge = token.DefaultMaxTokenAge
	}
	switch why {
	case reason.WrongAudience:
		aud, _ := json.Marshal(d.claims["aud"])
		return line("aud is %s, this tenant expects %s", aud, tenantName)
	case reason.UnknownTenant:
		return line("iss is %q, this config has tenants %s", d.iss, quoteList(tenantIDs))
	case reason.UnknownKey:
		kid, _ := d.headerField("kid")
		return line("kid is %q, tenant %s has kids %s; send one of those, or no kid", kid, tenantName, quoteList(kidsOf(t)))
	case reason.BadAlgorithm:
		if t != nil {
			return line("%s; tenant %s verifies %s: sign with that algorithm, or add a key for yours", detail, tenantName, strings.Join(algsOf(t), ", "))
		}
		return line("%s; sign with HS256 (key), RS256, ES256 or EdDSA (public_key, jwks)", detail)
	case reason.BadSignature:
		return line("the signature does not verify under any of tenant %s's keys for this alg; sign with the tenant's current secret or private key (a stale key or a secret with stray whitespace is the usual cause)", tenantName)
	case reason.ForbiddenHeader:
		return line("%s; the gateway never takes keys or extensions from a token: remove that header", detail)
	case reason.Expired:
		if exp, ok := d.date("exp"); ok {
			return line("exp was %s ago (leeway %s); mint the token right before use: it lives at most max_token_age (%s) and is single-use", time.Since(exp).Round(time.Second), leeway, maxAge)
		}
	case reason.NotYetValid, reason.IssuedInFuture:
		return line("%s; the minting server's clock is ahead: sync it (NTP)", detail)
	case reason.LifetimeTooLong:
		return line("%s; set exp = iat + %d or less (max_token_age)", detail, int64(maxAge/time.Second))
	case reason.MissingClaim:
		return line("%s; %s", detail, missingFix(detail, d.iss))
	case reason.Malformed:
		if hint, ok := d.millisecondsHint(); ok {
			return line("%s; %s", detail, hint)
		}
		if strings.Contains(detail, "exp is not after iat") {
			return line("exp is not after iat; set exp = iat + the token's lifetime in seconds")
		}
		return line("%s; a token is header.payload.signature: unpadded base64url of JSON objects, at most %d bytes (embed-mint makes one)", detail, token.MaxTokenSize)
	default:
		// The detail alone says what to fix.
	}
	if detail == "" {
		return string(why)
	}
	return line("%s", detail)
}

func missingFix(detail, iss string) string {
	claim, _, _ := strings.Cut(detail, " ")
	switch claim {
	case "iss":
		return "set iss to the tenant id"
	case "aud":
		return fmt.Sprintf("set aud to the tenant id (%q)", iss)
	case "sub":
		return "set sub to the user's id"
	case "jti":
		return "set jti to a new unique id for every token (e.g. a UUID)"
	case "iat", "exp":
		return "set iat to now and exp to iat + 60, in seconds since the epoch"
	}
	return "add it"
}

func (d decoded) headerField(name string) (string, bool) {
	var h map[string]any
	if json.Unmarshal(d.header, &h) != nil {
		return "", false
	}
	s, ok := h[name].(string)
	return s, ok
}

// kidsOf lists the kids of t's keys, static and JWKS.
func kidsOf(t *tenant.Tenant) []string {
	if t == nil {
		return nil
	}
	var kids []string
	keys := t.Keys
	if t.Source != nil {
		keys = append(slices.Clip(keys), t.Source.Keys()...)
	}
	for _, k := range keys {
		if k.KID != "" && !slices.Contains(kids, k.KID) {
			kids = append(kids, k.KID)
		}
	}
	return kids
}

// algsOf lists the algorithms t's keys verify.
func algsOf(t *tenant.Tenant) []string {
	var algs []string
	keys := t.Keys
	if t.Source != nil {
		keys = append(slices.Clip(keys), t.Source.Keys()...)
	}
	for _, k := range keys {
		if !slices.Contains(algs, k.Alg) {
			algs = append(algs, k.Alg)
		}
	}
	if len(algs) == 0 {
		return []string{"nothing yet (its jwks has no usable key)"}
	}
	return algs
}

func quoteList(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	// A tenants file may hold thousands of tenants: name the first few.
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
