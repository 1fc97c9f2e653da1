package e2e

// The Go half of the browser suite: it serves three HTTPS sites from one
// embedgate process (the gateway portal.gate.test, the customer page
// app.acme.test with its token-minting backend, the stranger
// evil.other.test), a loopback app behind the gateway, and a control server
// through which the node tests read what the backend minted and what the app
// saw. The browsers themselves are driven from node (e2e/browser/lib.mjs,
// puppeteer-core); runNodeSuite starts `node --test` there.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"
)

const (
	gateHost = "portal.gate.test"
	acmeHost = "app.acme.test"
	evilHost = "evil.other.test"
)

// browserSite serves the three sites. The gateway knows its tenant by host,
// so that a frame without a session still gets acme's gate page. GateExtra
// goes into the gateway's site (a regime's header rewrite), Extra into
// embed_session (a test's settings, changed with /config).
const browserSite = `
portal.gate.test:{{.HTTPSPort}} {
	tls internal
	log
	{{.GateExtra}}
	embed_session {
		tenant acme {
			key {env.ACME_SECRET}
			frame_ancestors https://app.acme.test:{{.HTTPSPort}}
			hosts portal.gate.test
		}
		inject_bridge
		{{.Extra}}
	}
	reverse_proxy {{.Upstream}}
}

` + acmeHostSite + `
evil.other.test:{{.HTTPSPort}} {
	tls internal
	root * {{.EvilRoot}}
	file_server
}
`

// acmeHostSite is the customer's site that frames the gateway: its pages
// from HostRoot, its backend (which mints) under /api/.
const acmeHostSite = `
app.acme.test:{{.HTTPSPort}} {
	tls internal
	handle /api/* {
		reverse_proxy {{.Backend}}
	}
	handle {
		root * {{.HostRoot}}
		file_server
	}
}
`

// browserDir is the node half of the suite.
func browserDir() string { return filepath.Join(repoRoot(), "e2e", "browser") }

// requireTool finds a program the browser suite needs: $envVar, else the
// first of names that exists (a path or a name on PATH). Without it the
// test is skipped, except in CI, where a missing tool is a failure.
func requireTool(t *testing.T, what, envVar, install string, names ...string) string {
	t.Helper()
	if p := os.Getenv(envVar); p != "" {
		return p
	}
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("%s not found (%s, or set %s)", what, install, envVar)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// requireBrowser finds Debian's Chromium (the binary behind its wrapper
// script) or firefox-esr.
func requireBrowser(t *testing.T, engine string) string {
	t.Helper()
	if engine == "firefox" {
		return requireTool(t, "firefox-esr", "EMBEDGATE_FIREFOX", "apt-get install firefox-esr",
			"/usr/lib/firefox-esr/firefox-esr", "firefox-esr", "firefox")
	}
	return requireTool(t, "Chromium", "EMBEDGATE_CHROMIUM", "apt-get install chromium",
		"/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")
}

// requireNodeSuite finds node and the suite's npm dependencies.
func requireNodeSuite(t *testing.T) string {
	t.Helper()
	node := requireTool(t, "node", "EMBEDGATE_NODE", "apt-get install nodejs", "node")
	if _, err := os.Stat(filepath.Join(browserDir(), "node_modules", "puppeteer-core", "package.json")); err != nil {
		msg := "e2e/browser/node_modules is missing (cd e2e/browser && PUPPETEER_SKIP_DOWNLOAD=1 npm ci)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return node
}

// mintBackend is the customer's backend: it mints a one-time token for the
// user its page names, as a real backend would for its signed-in user.
type mintBackend struct {
	*httptest.Server
	mu     sync.Mutex
	tokens []string
}

func newMintBackend(t *testing.T) *mintBackend {
	m := &mintBackend{}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/embed-token" {
			http.NotFound(w, r)
			return
		}
		// Only the customer's own page may ask (same-origin fetch).
		if r.Header.Get("Sec-Fetch-Site") != "same-origin" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		var body struct{ Sub string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		if body.Sub == "" {
			body.Sub = "jane@acme.test"
		}
		tok := mint(t, "acme", acmeSecret, body.Sub, nil)
		m.mu.Lock()
		m.tokens = append(m.tokens, tok)
		m.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]string{"token": tok})
	}))
	t.Cleanup(m.Close)
	return m
}

// take returns the tokens minted so far and, with reset, forgets them.
func (m *mintBackend) take(reset bool) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := append([]string{}, m.tokens...)
	if reset {
		m.tokens = nil
	}
	return out
}

// appPage is the embedded app: it greets the subject the gateway sends,
// under a strict nonce-based CSP of its own (the gateway's inject_bridge
// has to reuse that nonce for bridge.js to run).
func appPage(w http.ResponseWriter, r *http.Request) {
	if page, ok := userTextPages[r.URL.Path]; ok {
		// No CSP of its own: what the gateway adds decides alone whether
		// the user's text runs.
		w.Header().Set("Content-Type", page.contentType)
		fmt.Fprint(w, page.body)
		return
	}
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	n := hex.EncodeToString(nonce)
	if r.URL.Path == "/ugc/base" {
		baseInjectedPage(w, r, n)
		return
	}
	sub := html.EscapeString(r.Header.Get("X-Embed-Subject"))
	w.Header().Set("Content-Security-Policy", "script-src 'nonce-"+n+"' 'strict-dynamic'; object-src 'none'; base-uri 'none'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if r.Method == http.MethodPost {
		fmt.Fprintf(w, "<!doctype html><p id=saved>saved for %s</p>", sub)
		return
	}
	fmt.Fprintf(w, `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Deals</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;margin:0;padding:20px 24px;color:#1d2433}
h1{font-size:20px;margin:0 0 4px} .who{color:#2a6df4} .muted{color:#667}
table{border-collapse:collapse;width:100%%;margin-top:12px} td,th{border-bottom:1px solid #e3e6ee;padding:8px 6px;text-align:left}
.tall{height:1400px;background:linear-gradient(#eef3ff,#fff)}
</style></head>
<body>
<h1>Deals for <span id="who" class="who">%s</span></h1>
<p class="muted">path <code id="path">%s</code> · served by the app behind embedgate</p>
<table><tr><th>Deal</th><th>Stage</th><th>Value</th></tr>
<tr><td>Globex renewal</td><td>Proposal</td><td>CHF 48,000</td></tr>
<tr><td>Initech expansion</td><td>Negotiation</td><td>CHF 112,500</td></tr>
<tr><td>Umbrella pilot</td><td>Qualified</td><td>CHF 9,900</td></tr></table>
<div id="more"></div>
<script nonce="%s">window.appScriptRan = true;</script>
</body></html>`, sub, html.EscapeString(r.URL.Path), n)
}

// browserEnv is one gateway process with its sites, app and backend, and
// the control server the node tests talk to.
type browserEnv struct {
	g           *Gateway
	up          *Upstream
	backend     *mintBackend
	control     *httptest.Server
	vars        map[string]any // the Caddyfile's template data
	recordMarks                // its mu also guards reloads
}

// recordMarks is where the last /reset of the control API left the record.
type recordMarks struct {
	mu       sync.Mutex
	upSeen   int // upstream requests before the last /reset
	logsSeen int // log bytes before the last /reset
}

// recordRoutes are the control API's record routes, shared by every
// browser environment: GET /tokens, /upstream, /logs and POST /reset.
func recordRoutes(mux *http.ServeMux, m *recordMarks, g *Gateway, up *Upstream, backend interface{ take(bool) []string }) {
	writeJSON := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /tokens", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, backend.take(false)) })
	mux.HandleFunc("GET /upstream", func(w http.ResponseWriter, _ *http.Request) {
		m.mu.Lock()
		skip := m.upSeen
		m.mu.Unlock()
		out := []seenRequest{}
		for _, r := range up.Requests()[skip:] {
			out = append(out, seenRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
				Subject: r.Header.Get("X-Embed-Subject"), Tenant: r.Header.Get("X-Embed-Tenant")})
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("GET /logs", func(w http.ResponseWriter, _ *http.Request) {
		m.mu.Lock()
		skip := m.logsSeen
		m.mu.Unlock()
		_, _ = io.WriteString(w, g.Logs()[skip:])
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, _ *http.Request) {
		m.mu.Lock()
		backend.take(true)
		m.upSeen, m.logsSeen = len(up.Requests()), len(g.Logs())
		m.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
}

// startBrowserEnv starts the gateway with gateExtra in its site block and
// copies e2e/browser/sites/{acme,evil} into the two static sites, with
// {{GATEWAY}}, {{ACME}} and {{EVIL}} filled in.
func startBrowserEnv(t *testing.T, gateExtra string) *browserEnv {
	t.Helper()
	e := &browserEnv{up: newUpstream(t, appPage), backend: newMintBackend(t)}
	port := freePort(t)
	origin := func(host string) string { return fmt.Sprintf("https://%s:%d", host, port) }
	fill := strings.NewReplacer("{{GATEWAY}}", origin(gateHost), "{{ACME}}", origin(acmeHost), "{{EVIL}}", origin(evilHost))
	roots := map[string]string{}
	for _, site := range []string{"acme", "evil"} {
		roots[site] = t.TempDir()
		if err := copySite(filepath.Join(browserDir(), "sites", site), roots[site], fill); err != nil {
			t.Fatal(err)
		}
	}
	e.vars = map[string]any{
		"Upstream": e.up.Listener.Addr().String(), "Backend": e.backend.Listener.Addr().String(),
		"HostRoot": roots["acme"], "EvilRoot": roots["evil"], "GateExtra": gateExtra, "Extra": "",
	}
	e.g = startGateway(t, browserSite, e.vars, GatewayOptions{Env: coreEnv, HTTPSPort: port})
	e.control = httptest.NewServer(e.controlHandler())
	t.Cleanup(e.control.Close)
	return e
}

// copySite copies every file of dir into dst, filling in the placeholders.
func copySite(dir, dst string, fill *strings.Replacer) error {
	return filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, []byte(fill.Replace(string(data))), 0o644)
	})
}

func (e *browserEnv) origin(host string) string {
	return fmt.Sprintf("https://%s:%d", host, e.g.HTTPSPort)
}

// seenRequest is one upstream request as the control server reports it.
type seenRequest struct {
	Method  string `json:"method"`
	Path    string `json:"path"`
	Query   string `json:"query,omitempty"`
	Subject string `json:"subject,omitempty"`
	Tenant  string `json:"tenant,omitempty"`
}

// controlHandler answers the node tests, all since the last POST /reset:
//
//	GET  /tokens    the tokens the backend minted (JSON array)
//	GET  /upstream  the requests that reached the app (JSON array)
//	GET  /logs      what the gateway logged (no token or cookie value)
//	POST /reset     forget all three (each test starts with this)
//	POST /config    {"extra": "session_ttl 3s"}: reload the gateway with
//	                these embed_session lines ("" restores the default)
func (e *browserEnv) controlHandler() http.Handler {
	mux := http.NewServeMux()
	recordRoutes(mux, &e.recordMarks, e.g, e.up, e.backend)
	mux.HandleFunc("POST /config", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Extra string `json:"extra"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := e.reload(body.Extra); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// reload rewrites the Caddyfile with extra in embed_session and runs
// `embedgate reload`. (Gateway.Reload fails the test from its own
// goroutine; this one runs in the control server's.)
func (e *browserEnv) reload(extra string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	httpPort, err := pickPort()
	if err != nil {
		return err
	}
	vars := map[string]any{"AdminPort": e.g.AdminPort, "HTTPSPort": e.g.HTTPSPort, "HTTPPort": httpPort, "Dir": e.g.Dir}
	for k, v := range e.vars {
		vars[k] = v
	}
	vars["Extra"] = extra
	tpl, err := template.New("caddyfile").Parse(globalOptions + browserSite)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := tpl.Execute(&b, vars); err != nil {
		return err
	}
	if err := os.WriteFile(e.g.Config, b.Bytes(), 0o600); err != nil {
		return err
	}
	out, err := exec.Command(binary, "reload", "--config", e.g.Config, "--adapter", "caddyfile",
		"--address", fmt.Sprintf("127.0.0.1:%d", e.g.AdminPort)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("embedgate reload: %v: %s", err, out)
	}
	return nil
}

// pickPort is freePort without a test to fail.
func pickPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// nodeRun is one `node --test` run of the browser suite.
type nodeRun struct {
	Regime    string   // EMBEDGATE_REGIME: which browser, configured how
	Browser   string   // the browser's executable
	Files     []string // test files, relative to e2e/browser
	Env       []string // more variables (the sites' URLs, the control server)
	Artifacts string   // the run's folder in e2e/artifacts, emptied first; default Regime
	Timeout   time.Duration
}

// browserVars are the variables that tell the node suite where env is.
func (e *browserEnv) browserVars() []string {
	return []string{
		"EMBEDGATE_GATEWAY=" + e.origin(gateHost),
		"EMBEDGATE_ACME=" + e.origin(acmeHost),
		"EMBEDGATE_EVIL=" + e.origin(evilHost),
		fmt.Sprintf("EMBEDGATE_PORT=%d", e.g.HTTPSPort),
		"EMBEDGATE_CONTROL=" + e.control.URL,
	}
}

// runNodeSuite runs node's test runner over run.Files, one file and one
// test at a time, streams its report into the test log, and fails the test
// when node fails. Node and the browsers it starts are one process group,
// killed whole at the timeout. EMBEDGATE_BROWSER_GREP narrows the run to
// the tests whose names match (node's --test-name-pattern).
func runNodeSuite(t *testing.T, node string, g *Gateway, run nodeRun) {
	t.Helper()
	if run.Artifacts == "" {
		run.Artifacts = run.Regime
	}
	// Screenshots of this run only: none left from an earlier failure.
	artifacts := filepath.Join(repoRoot(), "e2e", "artifacts", run.Artifacts)
	if err := os.RemoveAll(artifacts); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"--test", "--test-concurrency=1", "--test-reporter=spec"}
	if p := os.Getenv("EMBEDGATE_BROWSER_GREP"); p != "" {
		args = append(args, "--test-name-pattern="+p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), run.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append(args, run.Files...)...)
	cmd.Dir = browserDir()
	cmd.Env = append(os.Environ(), append([]string{
		"EMBEDGATE_REGIME=" + run.Regime,
		"EMBEDGATE_BROWSER=" + run.Browser,
		"EMBEDGATE_CA=" + g.rootCertPath(),
		"EMBEDGATE_ARTIFACTS=" + artifacts,
		"EMBEDGATE_TMP=" + t.TempDir(),
		"NO_COLOR=1",
	}, run.Env...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	lines.Buffer(make([]byte, 64<<10), 1<<20)
	for lines.Scan() {
		t.Log(lines.Text())
	}
	err = cmd.Wait()
	// Whatever node left behind (a browser it could not close) goes too.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	t.Logf("node --test (%s) took %s", run.Regime, time.Since(start).Round(100*time.Millisecond))
	if ctx.Err() != nil {
		t.Fatalf("node --test (%s) timed out after %s; its report is above", run.Regime, run.Timeout)
	}
	if err != nil {
		t.Fatalf("node --test (%s) failed: %v; its report is above\ngateway logs:\n%s", run.Regime, err, tail(g.Logs(), 6000))
	}
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
