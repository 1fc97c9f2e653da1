package caddymodule

import (
	"errors"
	"fmt"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// Exit statuses of the embed-* subcommands.
const (
	exitOK       = 0 // valid token / done
	exitRejected = 1 // embed-inspect: the token is refused; embed-mint: no usable key
	exitUsage    = 2 // bad flags or arguments, or a config that cannot be loaded
)

// setupCommand wires run into cobra so that its return value is the exit
// status, flag errors included (status 2), and caddycmd logs nothing extra.
func setupCommand(cmd *cobra.Command, run func(c *cobra.Command, args []string) int) {
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		fmt.Fprintf(c.ErrOrStderr(), "%s: %v\nusage: %s\n", c.Name(), err, c.UseLine())
		return exitWith(c, exitUsage)
	})
	cmd.RunE = func(c *cobra.Command, args []string) error { return exitWith(c, run(c, args)) }
}

// errSilentExit makes caddycmd.Main exit 1 without printing anything.
var errSilentExit = errors.New("exit status 1")

// exitWith turns a status into what caddycmd.Main turns into os.Exit.
func exitWith(c *cobra.Command, code int) error {
	if code == exitOK {
		return nil
	}
	c.SilenceErrors, c.SilenceUsage = true, true
	if code == 1 {
		return errSilentExit
	}
	// Statuses above 1 travel in caddycmd's own exit error.
	return caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) { return code, nil })(c, nil)
}

func usageError(c *cobra.Command, format string, args ...any) int {
	fmt.Fprintf(c.ErrOrStderr(), "%s: %s\nusage: %s\n", c.Name(), fmt.Sprintf(format, args...), c.UseLine())
	return exitUsage
}
