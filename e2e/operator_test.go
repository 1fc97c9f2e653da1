package e2e

import (
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// caddySite is a gateway whose refusals of requests into the app go to
// Caddy's handle_errors, as basic_auth's do.
const caddyErrorsSite = `
portal.gate.test:{{.HTTPSPort}} {
	tls internal
	embed_session {
		tenant acme {
			key {env.ACME_SECRET}
			frame_ancestors https://app.acme.test
		}
		require scope deals:read
		caddy_errors
	}
	reverse_proxy {{.Upstream}}
	handle_errors {
		respond "custom page: {http.error.status_code} {http.embed.reason}"
	}
}
`

// With caddy_errors, handle_errors styles embedgate's 401 and 403 for
// requests into the app, with {http.embed.reason}; the refusal keeps its
// framing header, and the gate page and the gateway's own endpoints are
// answered as before.
func TestOperatorCaddyErrorsRunsHandleErrors(t *testing.T) {
	up := newUpstream(t, nil)
	g := startGateway(t, caddyErrorsSite, map[string]any{"Upstream": up.Listener.Addr().String()}, GatewayOptions{Env: coreEnv})
	for _, c := range []struct {
		name, method string
		hdr          map[string]string
		cookie       bool
		want         string
	}{
		{"fetch without a session", "GET", map[string]string{"Sec-Fetch-Mode": "cors"}, false, "custom page: 401 session_missing"},
		{"cross-site POST", "POST", map[string]string{"Origin": "https://evil.test"}, false, "custom page: 403 cross_origin"},
		{"session without the required scope", "GET", nil, true, "custom page: 403 requirement_failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, g.URL("portal.gate.test", "/deals"), nil)
			for k, v := range c.hdr {
				req.Header.Set(k, v)
			}
			if c.cookie {
				req.AddCookie(sessionCookie(t, exchangeJSON(t, g, "portal.gate.test", mint(t, "acme", acmeSecret, "jane@acme.test", nil))))
			}
			resp, err := g.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.TrimSpace(string(body)) != c.want || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors") {
				t.Fatalf("%d %q (CSP %q), want %q", resp.StatusCode, body, resp.Header.Get("Content-Security-Policy"), c.want)
			}
		})
	}
	// The gate page (it talks to the host page) is not replaced.
	resp, body := get(t, g, "portal.gate.test", "/deals", map[string]string{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe", "Accept": "text/html"}, nil)
	if resp.StatusCode != 401 || strings.Contains(body, "custom page") || !strings.Contains(body, "<html") {
		t.Fatalf("gate page: %d %.200s", resp.StatusCode, body)
	}
	if len(up.Requests()) != 0 {
		t.Fatal("a refused request reached the app")
	}
}

// A tenants file that disappears is one error in the log and one in
// embedgate_tenant_reloads_total{result="error"}, not one per 500 ms poll,
// and its return is logged once.
func TestOperatorMissingTenantsFileLoggedOnce(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tenants.json")
	content := []byte(`{"tenants":[{"id":"globex","keys":[{"secret":"` + globexSecret + `"}],"frame_ancestors":["https://globex.test"]}]}`)
	if err := os.WriteFile(file, content, 0o600); err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t, nil)
	site := strings.Replace(coreSite, "{{.Extra}}", "tenants_file "+file, 1)
	site = strings.Replace(site, "\t\ttenant globex {\n\t\t\tkey {env.GLOBEX_SECRET}\n\t\t\tframe_ancestors https://globex.test\n\t\t\thosts globex.gate.test\n\t\t}\n", "", 1)
	g := startGateway(t, site, map[string]any{"Upstream": up.Listener.Addr().String()}, GatewayOptions{Env: coreEnv})
	errorsBefore := reloadErrors(t, g)
	st, _ := os.Stat(file)
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	// Six polls or more while the file is gone.
	time.Sleep(3500 * time.Millisecond)
	if n := strings.Count(g.Logs(), "tenants file refused"); n != 1 {
		t.Fatalf("%d 'tenants file refused' lines for one missing file, want 1", n)
	}
	if n := reloadErrors(t, g); n != errorsBefore+1 {
		t.Fatalf("tenant_reloads_total{result=error} went from %v to %v, want +1", errorsBefore, n)
	}
	if err := os.WriteFile(file, content, 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(file, st.ModTime(), st.ModTime())
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(g.Logs(), "tenants file readable again") {
		if time.Now().After(deadline) {
			t.Fatalf("no recovery line:\n%s", g.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := strings.Count(g.Logs(), "tenants file readable again"); n != 1 {
		t.Fatalf("%d recovery lines", n)
	}
}

func reloadErrors(t *testing.T, g *Gateway) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^embedgate_tenant_reloads_total\{result="error"\} (\S+)$`).FindStringSubmatch(metricsText(t, g))
	if m == nil {
		return 0
	}
	var v float64
	fmt.Sscan(m[1], &v)
	return v
}

// `embedgate validate` writes nothing to storage: not embedgate's session
// key (created at the first run's first exchange, under the storage lock),
// not Caddy's local CA for a `tls internal` site, whether the storage is
// named in the config or is Caddy's default under $XDG_DATA_HOME.
func TestOperatorValidateWritesNothing(t *testing.T) {
	site := "https://localhost:" + fmt.Sprint(freePort(t)) + " {\n\ttls internal\n\tembed_session {\n\t\ttenant acme {\n\t\t\tkey " + acmeSecret + "\n\t\t}\n\t}\n\trespond ok\n}\n"
	for name, storage := range map[string]string{"named storage": "\tstorage file_system {dir}/data\n", "default storage": ""} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cf := filepath.Join(dir, "Caddyfile")
			body := "{\n\tadmin off\n" + strings.ReplaceAll(storage, "{dir}", dir) + "}\n" + site
			if err := os.WriteFile(cf, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			out, code := runBinary(t, []string{"HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir}, "validate", "--config", cf, "--adapter", "caddyfile")
			if code != 0 {
				t.Fatalf("validate: %d\n%s", code, out)
			}
			var wrote []string
			_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err == nil && p != dir && p != cf {
					wrote = append(wrote, p)
				}
				return nil
			})
			if len(wrote) > 0 {
				t.Fatalf("validate wrote %q", wrote)
			}
		})
	}

	// The first run creates it on first use.
	g, _ := startCore(t, "")
	key := filepath.Join(g.Dir, "embedgate", "session_key")
	if _, err := os.Stat(key); err == nil {
		t.Fatal("the key exists before any exchange")
	}
	sessionCookie(t, exchangeJSON(t, g, "portal.gate.test", mint(t, "acme", acmeSecret, "jane@acme.test", nil)))
	if _, err := os.Stat(key); err != nil {
		t.Fatalf("no session key after the first exchange: %v", err)
	}
}

// The mint snippets never crash: without a secret or arguments each prints
// a one-line usage and exits 2.
func TestOperatorMintSnippetsUsage(t *testing.T) {
	// Built, not "go run": go run reports a non-zero exit as its own 1.
	goMint := filepath.Join(t.TempDir(), "mint")
	if out, err := exec.Command("go", "build", "-C", repoRoot(), "-o", goMint, "./examples/mint").CombinedOutput(); err != nil {
		t.Fatalf("building the Go snippet: %v\n%s", err, out)
	}
	for _, c := range [][]string{
		{"node", "examples/mint/mint.js"},
		{"python3", "examples/mint/mint.py"},
		{goMint},
	} {
		for _, env := range [][]string{nil, {"EMBEDGATE_SECRET=" + acmeSecret}} {
			cmd := exec.Command(c[0], c[1:]...)
			cmd.Dir = repoRoot()
			cmd.Env = append(os.Environ(), env...)
			out, err := cmd.CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			last := lines[len(lines)-1]
			if !ok || ee.ExitCode() != 2 || !strings.HasPrefix(last, "usage:") || strings.Contains(string(out), "Traceback") || strings.Contains(string(out), "TypeError") {
				t.Errorf("%v (env %v): %v\n%s", c, env, err, out)
			}
		}
	}
}
