package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const demoSecret = "demo-secret-change-me-0123456789abcdef"

// startExample runs Caddyfile.example exactly as the README's first
// command does, with a private data directory.
func startExample(t *testing.T) *Gateway {
	t.Helper()
	requireExamplePortsFree(t)
	dir := t.TempDir()
	g := &Gateway{t: t, Dir: filepath.Join(dir, "caddy"), HTTPSPort: 8443, ReadyHost: "localhost"}
	g.run(filepath.Join(repoRoot(), "Caddyfile.example"), []string{"XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir, "HOME=" + dir})
	return g
}

// examplePorts are the fixed ports of Caddyfile.example (gateway, customer
// site, app, admin).
var examplePorts = []int{8443, 8444, 9080, 2019}

// requireExamplePortsFree fails at once, naming the port, when something
// (typically the example itself, started by hand) holds one of them: the
// example must run as the README runs it, on its own ports.
func requireExamplePortsFree(t *testing.T) {
	t.Helper()
	if err := busyExamplePort(); err != nil {
		t.Fatal(err)
	}
}

// busyExamplePort names the first of the example's ports that is taken.
func busyExamplePort() error {
	for _, p := range examplePorts {
		for _, host := range []string{"127.0.0.1", "[::1]"} {
			l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", host, p))
			if err != nil {
				return fmt.Errorf("port %d on %s is in use (is the example already running? stop it first): %v", p, host, err)
			}
			l.Close()
		}
	}
	return nil
}

// With the example already running (or anything on its ports), the suite
// says so at once, naming the port, instead of "not ready" after 30 s.
func TestExampleBusyPortNamedAtOnce(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:8444")
	if err != nil {
		t.Fatalf("cannot hold 8444 for the test: %v", err)
	}
	defer l.Close()
	err = busyExamplePort()
	if err == nil || !strings.Contains(err.Error(), "port 8444") || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("busyExamplePort with 8444 held: %v", err)
	}
}

// The README's first command: Caddyfile.example runs as is and shows a
// protected upstream; the README's Node and Python snippets mint tokens it
// accepts.
func TestExampleCaddyfileWithReadmeSnippets(t *testing.T) {
	if os.Getenv("CI") != "true" {
		for _, p := range []string{"node", "python3"} {
			if _, err := exec.LookPath(p); err != nil {
				t.Skipf("%s not installed (CI installs it)", p)
			}
		}
	}
	g := startExample(t)

	for _, snippet := range [][]string{
		{"node", filepath.Join(repoRoot(), "examples/mint/mint.js")},
		{"python3", filepath.Join(repoRoot(), "examples/mint/mint.py")},
	} {
		t.Run(snippet[0], func(t *testing.T) {
			cmd := exec.Command(snippet[0], snippet[1], "demo", "jane@example.com")
			cmd.Env = append(os.Environ(), "EMBEDGATE_SECRET="+demoSecret)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s: %v", snippet[0], err)
			}
			tok := strings.TrimSpace(string(out))
			resp, _ := get(t, g, "localhost", "/deals?embed_token="+tok, nil, nil)
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/deals" {
				t.Fatalf("exchange: %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), g.Logs())
			}
			c := sessionCookie(t, resp)
			r, body := get(t, g, "localhost", "/deals", map[string]string{"X-Embed-Subject": "mallory"}, c)
			if r.StatusCode != 200 {
				t.Fatalf("app: %d %s", r.StatusCode, body)
			}
			mustContain(t, body, "Hello, jane@example.com")
			mustContain(t, body, "tenant: demo, email: jane@example.com")
			if strings.Contains(body, "mallory") {
				t.Fatal("spoofed header reached the app")
			}
			// Single use.
			if resp, _ := get(t, g, "localhost", "/deals?embed_token="+tok, nil, nil); resp.StatusCode != 401 {
				t.Fatalf("replay: %d", resp.StatusCode)
			}
		})
	}
	// Without a session the app is never reached.
	r, body := get(t, g, "localhost", "/deals", map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"}, nil)
	if r.StatusCode != 401 || strings.Contains(body, "Hello") {
		t.Fatalf("no session: %d %s", r.StatusCode, body)
	}
}

// The example's customer site mints through the token API with the API key
// added server-side, and only for same-origin callers.
func TestExampleHostSiteMintsThroughTokenAPI(t *testing.T) {
	g := startExample(t)
	post := func(site string) (*http.Response, string) {
		req, _ := http.NewRequest("POST", "https://127.0.0.1:8444/api/embed-token", nil)
		if site != "" {
			req.Header.Set("Sec-Fetch-Site", site)
		}
		resp, err := g.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := post("same-origin")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("mint through the example backend: %d %s\n%s", resp.StatusCode, body, g.Logs())
	}
	var minted struct {
		Token  string `json:"token"`
		Tenant string `json:"tenant"`
	}
	if err := json.Unmarshal([]byte(body), &minted); err != nil || minted.Token == "" || minted.Tenant != "demo" {
		t.Fatalf("token API answer: %s", body)
	}
	if strings.Contains(body, "egk_") {
		t.Fatal("the API key reached the browser")
	}
	c := sessionCookie(t, exchangeJSON(t, g, "localhost", minted.Token))
	if r, page := get(t, g, "localhost", "/deals", nil, c); r.StatusCode != 200 || !strings.Contains(page, "Hello, jane@example.com") {
		t.Fatalf("app after exchange: %d %s", r.StatusCode, page)
	}
	if resp, _ := post("cross-site"); resp.StatusCode == http.StatusCreated {
		t.Fatal("the example backend minted for a cross-site caller")
	}
}

// The README's run command alone shows a working embed in a browser: the
// customer page on https://127.0.0.1:8444 frames the app on
// https://localhost:8443, signed in through the token API
// (e2e/browser/example/example.test.mjs, in headless Chromium).
func TestExampleEmbedInBrowser(t *testing.T) {
	node := requireNodeSuite(t)
	exe := requireBrowser(t, "chromium")
	g := startExample(t)
	runNodeSuite(t, node, g, nodeRun{
		Regime: "chromium", Browser: exe, Files: []string{"example/example.test.mjs"}, Artifacts: "example", Timeout: 2 * time.Minute,
	})
}

// The example listens on loopback only: its secret and API key are public,
// and its demo backend signs in anyone who can reach it.
func TestExampleListensOnLoopbackOnly(t *testing.T) {
	startExample(t)
	seen := 0
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 4 {
				continue
			}
			local := f[1]
			addr, portHex, _ := strings.Cut(local, ":")
			port, _ := strconv.ParseUint(portHex, 16, 16)
			listening := f[3] == "0A" || strings.HasPrefix(file, "/proc/net/udp")
			if !listening || !slices.Contains(examplePorts, int(port)) {
				continue
			}
			seen++
			loopback := addr == "0100007F" || addr == "00000000000000000000000001000000"
			if !loopback {
				t.Errorf("%s: port %d bound on %s, not loopback", file, port, addr)
			}
		}
	}
	// 8443 and 8444 over TCP and UDP on both loopbacks, 9080 and 2019 over TCP.
	if seen < 8 {
		t.Fatalf("found %d listening sockets on the example's ports, want at least 8", seen)
	}
}
