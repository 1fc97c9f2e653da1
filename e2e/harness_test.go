// Package e2e runs the built embedgate binary with real Caddyfiles, a
// loopback upstream, real TLS (Caddy's internal CA) and, in later suites,
// real Redis and headless Chromium.
package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/embedgate/embedgate/internal/testsupport"
)

// binary is the embedgate binary built once for the whole package.
var binary string

// raceBinary builds that binary with the race detector (scripts/test sets
// EMBEDGATE_E2E_RACE=1); every gateway process is then checked for data
// race reports when it stops.
var raceBinary = os.Getenv("EMBEDGATE_E2E_RACE") == "1"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "embedgate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "embedgate")
	args := []string{"build", "-o", binary}
	if raceBinary {
		// The gateway under test is its own process: -race on this test
		// binary never instruments it, so it is built with the detector.
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "./cmd/embedgate")...)
	build.Dir = repoRoot()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building embedgate:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int { return testsupport.FreePort(t) }

// Upstream is a loopback app that records what reached it.
type Upstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
}

// Seen is one request as the upstream received it.
func (u *Upstream) Requests() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*http.Request(nil), u.reqs...)
}

// Last is the most recent request to reach the upstream, or nil.
func (u *Upstream) Last() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		return nil
	}
	return u.reqs[len(u.reqs)-1]
}

func newUpstream(t testing.TB, handler http.HandlerFunc) *Upstream {
	u := &Upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.reqs = append(u.reqs, r.Clone(context.Background()))
		u.mu.Unlock()
		if handler != nil {
			handler(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "subject": r.Header.Get("X-Embed-Subject")})
	}))
	t.Cleanup(u.Close)
	return u
}

// Gateway is a running embedgate process.
type Gateway struct {
	t         testing.TB
	Dir       string // storage and config directory
	Config    string // path of the Caddyfile
	AdminPort int
	HTTPSPort int
	ReadyHost string // TLS server name probed by waitReady; default portal.gate.test
	cmd       *exec.Cmd
	logs      *testsupport.LogBuffer
	done      chan struct{}
}

// GatewayOptions fill the Caddyfile template.
type GatewayOptions struct {
	Dir       string // reuse a storage directory (restarts); default: new temp dir
	AdminPort int
	HTTPSPort int
	Env       []string
}

// globalOptions is prepended to every test Caddyfile: loopback only, a
// private storage dir, Caddy's internal CA, no trust-store changes.
const globalOptions = `{
	admin 127.0.0.1:{{.AdminPort}}
	storage file_system {{.Dir}}
	skip_install_trust
	local_certs
	http_port {{.HTTPPort}}
	https_port {{.HTTPSPort}}
	auto_https disable_redirects
	log {
		output stderr
		format json
		level DEBUG
	}
}
`

// startGateway writes site (a Caddyfile body; {{.HTTPSPort}}, {{.Dir}} and
// {{.Upstream}} are expanded) and runs `embedgate run` on it.
func startGateway(t testing.TB, site string, data map[string]any, opts GatewayOptions) *Gateway {
	t.Helper()
	g := &Gateway{t: t, Dir: opts.Dir, AdminPort: opts.AdminPort, HTTPSPort: opts.HTTPSPort}
	if g.Dir == "" {
		g.Dir = t.TempDir()
	}
	if g.AdminPort == 0 {
		g.AdminPort = freePort(t)
	}
	if g.HTTPSPort == 0 {
		g.HTTPSPort = freePort(t)
	}
	vars := map[string]any{"AdminPort": g.AdminPort, "HTTPSPort": g.HTTPSPort, "HTTPPort": freePort(t), "Dir": g.Dir}
	for k, v := range data {
		vars[k] = v
	}
	g.Config = filepath.Join(g.Dir, "Caddyfile")
	g.writeConfig(site, vars)
	env := append(append([]string(nil), opts.Env...), "HOME="+g.Dir, "XDG_DATA_HOME="+g.Dir, "XDG_CONFIG_HOME="+g.Dir)
	g.run(g.Config, env)
	return g
}

// run starts `embedgate run` on config with env added, and waits until the
// HTTPS listener answers.
func (g *Gateway) run(config string, env []string) {
	g.t.Helper()
	g.logs = &testsupport.LogBuffer{}
	g.cmd = exec.Command(binary, "run", "--config", config, "--adapter", "caddyfile")
	g.cmd.Env = append(os.Environ(), env...)
	g.cmd.Stdout, g.cmd.Stderr = g.logs, g.logs
	if err := g.cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	g.done = make(chan struct{})
	go func() { _ = g.cmd.Wait(); close(g.done) }()
	g.t.Cleanup(g.Stop)
	g.waitReady()
}

func (g *Gateway) writeConfig(site string, vars map[string]any) {
	tpl := template.Must(template.New("caddyfile").Delims("{{", "}}").Parse(globalOptions + site))
	var b bytes.Buffer
	if err := tpl.Execute(&b, vars); err != nil {
		g.t.Fatal(err)
	}
	if err := os.WriteFile(g.Config, b.Bytes(), 0o600); err != nil {
		g.t.Fatal(err)
	}
}

// waitReady polls until the HTTPS listener answers with a certificate from
// the internal CA.
func (g *Gateway) waitReady() {
	g.t.Helper()
	host := g.ReadyHost
	if host == "" {
		host = "portal.gate.test"
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-g.done:
			g.t.Fatalf("embedgate exited early:\n%s", g.logs.String())
		default:
		}
		if _, err := os.Stat(g.rootCertPath()); err == nil {
			c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", g.HTTPSPort), &tls.Config{ServerName: host, RootCAs: g.rootPool()})
			if err == nil {
				c.Close()
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.t.Fatalf("embedgate not ready after 30s:\n%s", g.logs.String())
}

func (g *Gateway) rootCertPath() string {
	return filepath.Join(g.Dir, "pki", "authorities", "local", "root.crt")
}

func (g *Gateway) rootPool() *x509.CertPool {
	pem, err := os.ReadFile(g.rootCertPath())
	if err != nil {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return pool
}

// Client returns an HTTP client that trusts the gateway's internal CA,
// resolves every *.test host to loopback and never follows redirects.
func (g *Gateway) Client() *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: g.rootPool()},
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				_, port, _ := net.SplitHostPort(addr)
				return dialer.DialContext(ctx, network, "127.0.0.1:"+port)
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// URL is the gateway URL for host and path.
func (g *Gateway) URL(host, path string) string {
	return fmt.Sprintf("https://%s:%d%s", host, g.HTTPSPort, path)
}

// Reload runs `embedgate reload` with a new site body.
func (g *Gateway) Reload(site string, data map[string]any) {
	g.t.Helper()
	vars := map[string]any{"AdminPort": g.AdminPort, "HTTPSPort": g.HTTPSPort, "HTTPPort": freePort(g.t), "Dir": g.Dir}
	for k, v := range data {
		vars[k] = v
	}
	g.writeConfig(site, vars)
	out, err := exec.Command(binary, "reload", "--config", g.Config, "--adapter", "caddyfile", "--address", fmt.Sprintf("127.0.0.1:%d", g.AdminPort)).CombinedOutput()
	if err != nil {
		g.t.Fatalf("reload: %v\n%s\nlogs:\n%s", err, out, g.logs.String())
	}
}

// Logs is everything the process wrote so far.
func (g *Gateway) Logs() string { return g.logs.String() }

// WaitLog waits up to 5 s for want in the process's logs and returns them,
// failing t if it never comes. A line the gateway wrote before it answered
// still reaches Logs after the answer (it is copied from a pipe), and Caddy's
// access entry is written after the response has gone: a test that reads
// Logs right after a response must wait for the line it expects.
func (g *Gateway) WaitLog(t *testing.T, want string) string {
	t.Helper()
	return g.WaitLogCount(t, want, 1)
}

// WaitLogCount is WaitLog for at least n occurrences of want.
func (g *Gateway) WaitLogCount(t *testing.T, want string, n int) string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); strings.Count(g.Logs(), want) < n && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	logs := g.Logs()
	if got := strings.Count(logs, want); got < n {
		t.Fatalf("%q logged %d times, want at least %d:\n%s", want, got, n, tail(logs, 4000))
	}
	return logs
}

// Stop ends the process gracefully and waits for it.
func (g *Gateway) Stop() {
	if g.cmd == nil || g.cmd.Process == nil {
		return
	}
	select {
	case <-g.done:
		return
	default:
	}
	_ = g.cmd.Process.Signal(os.Interrupt)
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
	}
	for _, report := range raceReports(g.logs.String()) {
		if ownRace(report) {
			g.t.Errorf("the embedgate process reported a data race in embedgate code:\n%s", report)
		} else {
			// A race between Caddy's or a library's own goroutines, seen
			// because the whole binary is instrumented: not ours to fail on.
			g.t.Logf("third-party data race in the gateway process (not embedgate code):\n%s", report[:min(len(report), 1500)])
		}
	}
}

// raceReports splits the race detector's reports out of a process's output.
func raceReports(logs string) []string {
	const start, end = "WARNING: DATA RACE", "=================="
	var out []string
	for {
		i := strings.Index(logs, start)
		if i < 0 {
			return out
		}
		logs = logs[i:]
		j := strings.Index(logs, end)
		if j < 0 {
			j = len(logs)
		}
		out = append(out, logs[:j])
		logs = logs[j:]
	}
}

// ownRace reports whether a frame of either racing access in a race report
// is in embedgate's own packages (cmd/embedgate/main.go only starts Caddy).
// The stacks that created the goroutines ("Goroutine N ... created at:")
// are not looked at: every goroutine Caddy's proxy starts for a request was
// created below the gateway's handler, so a race between two of the
// proxy's own (its WebSocket close frame at shutdown against its copy from
// the backend, caddyserver/caddy#4895) would count as the gateway's.
func ownRace(report string) bool {
	accesses := report
	for line := range strings.Lines(report) {
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "Goroutine ") && strings.HasSuffix(t, "created at:") {
			accesses = report[:strings.Index(report, line)]
			break
		}
	}
	for _, pkg := range []string{"embedgate/embedgate/internal/", "embedgate/embedgate/caddymodule"} {
		if strings.Contains(accesses, pkg) {
			return true
		}
	}
	return false
}

// runBinary runs an embedgate subcommand and returns its combined output.
func runBinary(t testing.TB, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func mustContain(t testing.TB, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%q not found in:\n%s", sub, s)
	}
}

func TestRaceReportClassification(t *testing.T) {
	caddyOnly := "WARNING: DATA RACE\nWrite at 0x1 by main goroutine:\n  github.com/caddyserver/caddy/v2/modules/caddytls.(*TLS).Start()\n      /x/tls.go:424\n  main.main()\n      /src/embedgate/cmd/embedgate/main.go:20\n==================\n"
	ours := "WARNING: DATA RACE\nRead at 0x2 by goroutine 7:\n  github.com/embedgate/embedgate/internal/replay.(*Redis).Claim()\n      /x/redis.go:10\n==================\n"
	reports := raceReports("noise\n" + caddyOnly + "more noise\n" + ours)
	if len(reports) != 2 {
		t.Fatalf("found %d reports, want 2", len(reports))
	}
	if ownRace(reports[0]) || !ownRace(reports[1]) {
		t.Fatalf("classification wrong: caddy-only=%v ours=%v", ownRace(reports[0]), ownRace(reports[1]))
	}
}
