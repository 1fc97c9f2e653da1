package caddymodule

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// embed-mint --nonce puts the value in the token's nonce claim, for a
// token link under login_state; --claim nonce and an empty --nonce are
// usage errors.
func TestMintNonce(t *testing.T) {
	t.Setenv("EMBEDGATE_TEST_MINT_KEY", strings.Repeat("k", 32))
	run := func(args ...string) (int, string, string) {
		cmd := &cobra.Command{Use: "embed-mint"}
		mintFlags(cmd)
		var out, errOut bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&errOut)
		if err := cmd.ParseFlags(append([]string{"--tenant", "acme", "--sub", "jane", "--key-env", "EMBEDGATE_TEST_MINT_KEY"}, args...)); err != nil {
			t.Fatal(err)
		}
		return cmdMint(cmd, cmd.Flags().Args()), out.String(), errOut.String()
	}
	claims := func(out string) map[string]any {
		t.Helper()
		payload, err := base64.RawURLEncoding.DecodeString(strings.Split(strings.TrimSpace(out), ".")[1])
		if err != nil {
			t.Fatal(err)
		}
		var c map[string]any
		if err := json.Unmarshal(payload, &c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	code, out, _ := run("--nonce", "Zq8-state_from-login")
	if c := claims(out); code != exitOK || c["nonce"] != "Zq8-state_from-login" || c["sub"] != "jane" {
		t.Fatalf("exit %d, claims %v", code, c)
	}
	if code, out, _ := run(); code != exitOK || claims(out)["nonce"] != nil {
		t.Fatalf("without --nonce: exit %d, %s", code, out)
	}
	for _, args := range [][]string{{"--nonce", ""}, {"--claim", "nonce=x"}} {
		if code, _, msg := run(args...); code != exitUsage || !strings.Contains(msg, "nonce") {
			t.Errorf("%v: exit %d: %s", args, code, msg)
		}
	}
}
