package main

// Caddy's command line is built from an unexported factory, so the binary's
// own name, help text and version are put in from one hidden command: its
// cobra setup registers an initializer that runs once a command is chosen,
// when the root is reachable. Nothing here runs for Caddy builds that
// include embedgate as a plugin (xcaddy): only this binary brands itself.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

const modulePath = "github.com/embedgate/embedgate"

const longDescription = `embedgate is Caddy with the embed_session handler built in: a gateway for
apps that customers show in iframes on their own sites. A customer's backend
mints a one-time token; embedgate exchanges it for its own session cookie,
sets frame-ancestors from the tenant's allowlist, refuses unsafe
cross-origin requests and sends verified identity to the app.

Run it with a Caddyfile:

	$ embedgate run --config Caddyfile --adapter caddyfile

Every Caddy subcommand works as it does in caddy (run, validate, adapt,
reload, list-modules, ...); embedgate adds embed-keygen, embed-mint and
embed-inspect. Documentation: the README of the embedgate repository;
Caddy's own commands are described at https://caddyserver.com/docs/command-line`

// embedgateVersion is the embedgate module's version from the build info:
// a tag or pseudo-version, or "(devel)" when built from a clone without VCS
// stamping.
func embedgateVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if bi.Main.Path == modulePath && bi.Main.Version != "" {
		return bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == modulePath {
			return d.Version
		}
	}
	return "(devel)"
}

// versionLine is what `embedgate version` prints.
func versionLine() string {
	_, full := caddy.Version()
	return fmt.Sprintf("embedgate %s (Caddy %s)", embedgateVersion(), full)
}

func init() {
	caddy.CustomBinaryName = "embedgate"
	caddy.CustomLongDescription = longDescription
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "embedgate-branding",
		Short: "internal: names embedgate in help and version output",
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Hidden = true
			cmd.RunE = func(*cobra.Command, []string) error { return nil }
			cobra.OnInitialize(func() { brand(cmd.Root()) })
		},
	})
}

// brand rewrites the root's examples, version and the version and
// list-modules commands. It runs before the chosen command's Run.
func brand(root *cobra.Command) {
	root.Example = "  $ embedgate run --config Caddyfile --adapter caddyfile\n  $ embedgate validate --config Caddyfile --adapter caddyfile\n  $ embedgate embed-keygen --api-key\n  $ embedgate version"
	root.Version = versionLine()
	// The footer every help page inherits: embed-* commands are not in
	// Caddy's docs.
	root.SetHelpTemplate(strings.Replace(root.HelpTemplate(), "Full documentation is available at:\nhttps://caddyserver.com/docs/command-line",
		"Documentation: the embedgate README (Caddy's own commands: https://caddyserver.com/docs/command-line)", 1))
	for _, c := range root.Commands() {
		switch c.Name() {
		case "version":
			c.Run, c.RunE = nil, func(c *cobra.Command, _ []string) error {
				fmt.Fprintln(c.OutOrStdout(), versionLine())
				return nil
			}
		case "list-modules":
			wrapListModules(c)
		case "validate":
			wrapValidate(c)
		}
	}
}

// wrapListModules adds embedgate's version to its modules' lines under
// --versions: Caddy looks a module's version up among the build's
// dependencies, and in this binary embedgate is the main module instead.
func wrapListModules(c *cobra.Command) {
	orig := c.RunE
	c.RunE = func(c *cobra.Command, args []string) error {
		if v, _ := c.Flags().GetBool("versions"); !v || orig == nil {
			return orig(c, args)
		}
		r, w, err := os.Pipe()
		if err != nil {
			return orig(c, args)
		}
		stdout := os.Stdout
		os.Stdout = w
		done := make(chan struct{})
		go func() {
			defer close(done)
			addModuleVersions(r, stdout, embedgateVersion())
		}()
		runErr := orig(c, args)
		os.Stdout = stdout
		w.Close()
		<-done
		return runErr
	}
}

// addModuleVersions copies list-modules output, appending version to the
// lines of embedgate's modules, which Caddy prints without one.
func addModuleVersions(r io.Reader, w io.Writer, version string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if id := strings.TrimSpace(line); id == line && strings.HasSuffix(id, "embed_session") && !strings.Contains(id, " ") {
			line += " " + version
		}
		fmt.Fprintln(w, line)
	}
}
