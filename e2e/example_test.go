package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const demoSecret = "demo-secret-change-me-0123456789abcdef"

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
	dir := t.TempDir()
	g := &Gateway{t: t, Dir: filepath.Join(dir, "caddy"), HTTPSPort: 8443, ReadyHost: "localhost", logs: &syncBuffer{}}
	g.cmd = exec.Command(binary, "run", "--config", filepath.Join(repoRoot(), "Caddyfile.example"), "--adapter", "caddyfile")
	g.cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, "HOME="+dir)
	g.cmd.Stdout, g.cmd.Stderr = g.logs, g.logs
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g.done = make(chan struct{})
	go func() { _ = g.cmd.Wait(); close(g.done) }()
	t.Cleanup(g.Stop)
	g.waitReady()

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
