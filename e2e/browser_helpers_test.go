package e2e

// The harness of the browser suite: three HTTPS sites served by one
// embedgate process (the gateway portal.gate.test, the customer page
// app.acme.test with its token-minting backend, the stranger
// evil.other.test), a loopback app behind the gateway, and headless Chromium
// driven with chromedp, every host name mapped to 127.0.0.1.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

const (
	gateHost = "portal.gate.test"
	acmeHost = "app.acme.test"
	evilHost = "evil.other.test"
)

// browserSite serves the three sites. The gateway knows its tenant by host,
// so that a frame without a session still gets acme's gate page.
const browserSite = `
portal.gate.test:{{.HTTPSPort}} {
	tls internal
	log
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

evil.other.test:{{.HTTPSPort}} {
	tls internal
	root * {{.EvilRoot}}
	file_server
}
`

// chromiumPath finds the browser: $EMBEDGATE_CHROMIUM, else Debian's
// chromium (the binary behind its wrapper script), else one on PATH.
func chromiumPath() string {
	if p := os.Getenv("EMBEDGATE_CHROMIUM"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/lib/chromium/chromium"); err == nil {
		return "/usr/lib/chromium/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// requireChromium skips the test without a browser, except in CI, where a
// missing browser is a failure.
func requireChromium(t *testing.T) string {
	t.Helper()
	p := chromiumPath()
	if p == "" {
		msg := "Chromium not found (apt-get install chromium, or set EMBEDGATE_CHROMIUM)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
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

// Tokens are the tokens minted so far.
func (m *mintBackend) Tokens() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.tokens...)
}

// appPage is the embedded app: it greets the subject the gateway sends,
// under a strict nonce-based CSP of its own (the gateway's inject_bridge
// has to reuse that nonce for bridge.js to run).
func appPage(w http.ResponseWriter, r *http.Request) {
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	n := hex.EncodeToString(nonce)
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

// hostPage is the customer's page: the five lines of the README, plus
// recording of every event for the test to read.
const hostPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acme CRM</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;margin:0;background:#f3f5f9;color:#1d2433}
header{background:#16325c;color:#fff;padding:14px 24px} header h1{font-size:18px;margin:0}
main{padding:20px 24px;max-width:960px} #app>div{background:#fff;border:1px solid #d5dae5;border-radius:8px;overflow:hidden;margin-bottom:16px}
</style></head>
<body><header><h1>Acme CRM · customer page on app.acme.test</h1></header>
<main><div id="app"></div></main>
<script src="{{GATEWAY}}/.embed/sdk.js"></script>
<script>
window.__events = [];
window.__mints = 0;
window.__pageID = Math.random();
const params = new URLSearchParams(location.search);
async function mintToken() {
  window.__mints++;
  const res = await fetch("/api/embed-token", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sub: params.get("sub") || "jane@acme.test" }) });
  const { token } = await res.json();
  window.__lastToken = token;
  return token;
}
window.mountEmbed = (id, getToken, path) => {
  const el = document.createElement("div");
  el.id = id;
  document.getElementById("app").appendChild(el);
  const embed = EmbedGate.mount({ target: el, src: "{{GATEWAY}}" + (path || "/deals"), tenant: "acme", title: "Deals",
    getToken: getToken || mintToken, init: { locale: "de-CH", theme: "dark" } });
  for (const type of ["embed:ready", "embed:resize", "embed:authRequired", "embed:authenticated", "embed:navigate"]) {
    embed.on(type, (ev) => window.__events.push(Object.assign({ mount: id, at: Date.now() }, ev)));
  }
  return embed;
};
window.addStranger = () => {
  const f = document.createElement("iframe");
  f.src = "{{EVIL}}/spam.html";
  f.style.display = "none";
  document.body.appendChild(f);
};
if (!params.has("manual")) window.embed = window.mountEmbed("main");
</script>
</body></html>
`

// evilPage tries to embed the app for tenant acme from a stranger site.
const evilPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Stranger</title></head>
<body style="font:15px system-ui;margin:20px;background:#fff5f5"><h1>evil.other.test</h1><div id="app"></div>
<script src="{{GATEWAY}}/.embed/sdk.js"></script>
<script>
window.__events = [];
window.__asked = 0;
window.embed = EmbedGate.mount({ target: "#app", src: "{{GATEWAY}}/deals", tenant: "acme", title: "Deals",
  getToken: () => { window.__asked++; return "not-a-token"; } });
for (const type of ["embed:ready", "embed:resize", "embed:authRequired", "embed:authenticated", "embed:navigate"]) {
  window.embed.on(type, (ev) => window.__events.push(ev));
}
</script></body></html>
`

// evilPost is a cross-site form POST into the app.
const evilPost = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Win a prize</title></head><body>
<form id="f" method="post" action="{{GATEWAY}}/deals/delete-all"><input name="confirm" value="yes"></form>
<script>
fetch("{{GATEWAY}}/deals/api-delete", { method: "POST", mode: "no-cors", credentials: "include", body: "confirm=yes" })
  .catch(() => {})
  .finally(() => document.getElementById("f").submit());
</script>
</body></html>
`

// evilSpam sits in a hidden frame of the customer's page and forges
// messages to the host page and to the gateway's frame.
const evilSpam = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ad</title></head><body>
<script>
const forged = [
  { type: "embed:navigate", path: "/pwned" },
  { type: "embed:resize", height: 4321 },
  { type: "embed:authRequired", reason: "forged" },
  { type: "embed:ready", page: "start" },
];
for (const m of forged) parent.postMessage(m, "*");
for (let i = 0; i < parent.frames.length; i++) {
  const f = parent.frames[i];
  if (f === window) continue;
  f.postMessage({ type: "host:init", locale: "xx-PWNED", theme: "evil" }, "*");
  f.postMessage({ type: "host:token", token: "forged" }, "*");
  f.postMessage({ type: "host:signOut" }, "*");
}
document.title = "sent";
</script></body></html>
`

// browserEnv is one gateway process with its sites, app and backend.
type browserEnv struct {
	t       *testing.T
	g       *Gateway
	up      *Upstream
	backend *mintBackend
}

func startBrowserEnv(t *testing.T, extra string) *browserEnv {
	t.Helper()
	requireChromium(t)
	up := newUpstream(t, appPage)
	backend := newMintBackend(t)
	hostRoot, evilRoot := t.TempDir(), t.TempDir()
	port := freePort(t)
	gw := fmt.Sprintf("https://%s:%d", gateHost, port)
	evil := fmt.Sprintf("https://%s:%d", evilHost, port)
	fill := strings.NewReplacer("{{GATEWAY}}", gw, "{{EVIL}}", evil)
	for path, body := range map[string]string{
		filepath.Join(hostRoot, "index.html"): hostPage,
		filepath.Join(evilRoot, "index.html"): evilPage,
		filepath.Join(evilRoot, "post.html"):  evilPost,
		filepath.Join(evilRoot, "spam.html"):  evilSpam,
	} {
		if err := os.WriteFile(path, []byte(fill.Replace(body)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g := startGateway(t, browserSite, map[string]any{
		"Upstream": up.Listener.Addr().String(), "Backend": backend.Listener.Addr().String(),
		"HostRoot": hostRoot, "EvilRoot": evilRoot, "Extra": extra,
	}, GatewayOptions{Env: coreEnv, HTTPSPort: port})
	return &browserEnv{t: t, g: g, up: up, backend: backend}
}

func (e *browserEnv) gatewayOrigin() string {
	return fmt.Sprintf("https://%s:%d", gateHost, e.g.HTTPSPort)
}
func (e *browserEnv) acmeOrigin() string {
	return fmt.Sprintf("https://%s:%d", acmeHost, e.g.HTTPSPort)
}
func (e *browserEnv) evilOrigin() string {
	return fmt.Sprintf("https://%s:%d", evilHost, e.g.HTTPSPort)
}

// upstreamSaw lists the app requests that carried subject.
func (e *browserEnv) upstreamSaw(subject string) []*http.Request {
	var out []*http.Request
	for _, r := range e.up.Requests() {
		if r.Header.Get("X-Embed-Subject") == subject {
			out = append(out, r)
		}
	}
	return out
}

// Browser is one headless Chromium with a fresh profile.
type Browser struct {
	t      *testing.T
	ctx    context.Context // the first tab
	cancel context.CancelFunc
	dir    string
	netlog string
	Trust  string // how the internal CA is trusted: "nss" or "ignore-certificate-errors"

	mu        sync.Mutex
	urls      []string // every request URL the CDP network events showed, all targets
	responses []SeenResponse
	frames    map[target.ID]context.Context
	closed    bool
}

// newBrowser starts Chromium for env: only loopback (every host name maps
// to 127.0.0.1), no QUIC, no background traffic, and trust for the gateway's
// internal CA through an NSS database in the profile's HOME when certutil
// is there (else --ignore-certificate-errors).
func newBrowser(t *testing.T, env *browserEnv) *Browser {
	t.Helper()
	exe := requireChromium(t)
	b := &Browser{t: t, dir: t.TempDir(), frames: map[target.ID]context.Context{}}
	home := filepath.Join(b.dir, "home")
	b.netlog = filepath.Join(b.dir, "netlog.json")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(filepath.Join(b.dir, "profile")),
		chromedp.WindowSize(1200, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("host-resolver-rules", "MAP * 127.0.0.1"),
		chromedp.Flag("log-net-log", b.netlog),
		chromedp.Flag("net-log-capture-mode", "Default"),
		chromedp.Env("HOME="+home),
	)
	if err := trustCA(home, env.g.rootCertPath()); err != nil {
		t.Logf("trusting the internal CA with --ignore-certificate-errors: %v", err)
		opts = append(opts, chromedp.IgnoreCertErrors)
		b.Trust = "ignore-certificate-errors"
	} else {
		b.Trust = "nss"
	}
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithListener(b.record))
	b.ctx = ctx
	b.cancel = func() { cancel(); allocCancel() }
	t.Cleanup(b.Close)
	// The first action starts the browser and binds it to ctx.
	if err := chromedp.Do(ctx); err != nil {
		msg := fmt.Sprintf("starting Chromium (%s): %v", exe, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return b
}

// trustCA adds the root certificate to an NSS database under home, where
// Chromium on Linux looks for locally trusted roots.
func trustCA(home, rootPEM string) error {
	certutil, err := exec.LookPath("certutil")
	if err != nil {
		return errors.New("certutil not installed (apt-get install libnss3-tools)")
	}
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"-N", "-d", "sql:" + db, "--empty-password"},
		{"-A", "-d", "sql:" + db, "-t", "C,,", "-n", "embedgate-e2e-root", "-i", rootPEM},
	} {
		if out, err := exec.Command(certutil, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("certutil %s: %v: %s", args[0], err, out)
		}
	}
	return nil
}

// record keeps every request URL of a target's network events.
func (b *Browser) record(ev any) {
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		b.mu.Lock()
		b.urls = append(b.urls, ev.Request.URL+ev.Request.URLFragment)
		if ev.RedirectResponse != nil {
			b.urls = append(b.urls, ev.RedirectResponse.URL)
		}
		b.mu.Unlock()
	case *network.EventResponseReceived:
		b.mu.Lock()
		b.urls = append(b.urls, ev.Response.URL)
		b.responses = append(b.responses, SeenResponse{URL: ev.Response.URL, Status: ev.Response.Status, Type: ev.Type})
		b.mu.Unlock()
	case *page.EventFrameNavigated:
		b.mu.Lock()
		b.urls = append(b.urls, ev.Frame.URL+ev.Frame.URLFragment)
		b.mu.Unlock()
	}
}

// SeenResponse is one response in the CDP network events.
type SeenResponse struct {
	URL    string
	Status int64
	Type   network.ResourceType
}

// Responses are the responses seen in CDP events so far.
func (b *Browser) Responses() []SeenResponse {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]SeenResponse(nil), b.responses...)
}

// CDPURLs are the URLs seen in CDP events so far.
func (b *Browser) CDPURLs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.urls...)
}

// Close ends the browser; the net log is complete afterwards.
func (b *Browser) Close() {
	b.mu.Lock()
	closed := b.closed
	b.closed = true
	b.mu.Unlock()
	if !closed {
		b.cancel()
	}
}

var netlogURL = regexp.MustCompile(`"(?:url|original_url|location)":"([^"]+)"`)

// NetLogURLs closes the browser and returns every URL its network stack
// logged: each request, redirect and navigation of every frame and process.
func (b *Browser) NetLogURLs() []string {
	b.t.Helper()
	b.Close()
	data, err := os.ReadFile(b.netlog)
	if err != nil {
		b.t.Fatalf("net log: %v", err)
	}
	var out []string
	for _, m := range netlogURL.FindAllSubmatch(data, -1) {
		out = append(out, string(m[1]))
	}
	return out
}

// Navigate loads url in the first tab.
func (b *Browser) Navigate(url string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		b.t.Fatalf("navigate %s: %v", url, err)
	}
}

// Eval evaluates expr (promises awaited) in ctx (the tab, or a frame from
// Frame) and decodes the result into T.
func Eval[T any](b *Browser, ctx context.Context, expr string) T {
	b.t.Helper()
	c, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// WaitFor polls expr in ctx until it is truthy.
func (b *Browser) WaitFor(ctx context.Context, what, expr string, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		ok, err := chromedp.Run(c, chromedp.Evaluate[bool]("!!("+expr+")", chromedp.EvalAwaitPromise))
		cancel()
		if err == nil && ok {
			return
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("timed out after %s waiting for %s (%s), last error: %v\nevents: %s", timeout, what, expr, last, b.events())
}

func (b *Browser) events() string {
	c, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[[]byte]("JSON.stringify(window.__events || null)"))
	if err != nil {
		return err.Error()
	}
	return string(v)
}

// HostEvent is one event the SDK passed to the host page's listeners.
type HostEvent struct {
	Mount  string  `json:"mount"`
	Type   string  `json:"type"`
	Page   string  `json:"page"`
	Path   string  `json:"path"`
	Reason string  `json:"reason"`
	Height float64 `json:"height"`
	Sub    string  `json:"sub"`
}

// Events are the SDK events the host page recorded.
func (b *Browser) Events() []HostEvent {
	b.t.Helper()
	var out []HostEvent
	raw := Eval[string](b, b.ctx, "JSON.stringify(window.__events)")
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		b.t.Fatal(err)
	}
	return out
}

// Frame attaches to the out-of-process iframe whose URL starts with prefix
// (a cross-site frame is its own CDP target) and returns a context that runs
// actions in it; its network events are recorded too.
func (b *Browser) Frame(prefix string) context.Context {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		infos, err := chromedp.Targets(b.ctx)
		if err != nil {
			b.t.Fatal(err)
		}
		for _, info := range infos {
			if info.Type != "iframe" || !strings.HasPrefix(info.URL, prefix) {
				continue
			}
			b.mu.Lock()
			ctx, ok := b.frames[info.TargetID]
			b.mu.Unlock()
			if ok {
				return ctx
			}
			ctx, _ = chromedp.NewContext(b.ctx, chromedp.WithTargetID(info.TargetID), chromedp.WithListener(b.record))
			if err := chromedp.Do(ctx); err != nil {
				continue // the frame went away while attaching
			}
			b.mu.Lock()
			b.frames[info.TargetID] = ctx
			b.mu.Unlock()
			return ctx
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("no iframe target at %s", prefix)
	return nil
}

// FrameTargets lists the iframe targets whose URL starts with prefix.
func (b *Browser) FrameTargets(prefix string) []*target.Info {
	b.t.Helper()
	infos, err := chromedp.Targets(b.ctx)
	if err != nil {
		b.t.Fatal(err)
	}
	var out []*target.Info
	for _, info := range infos {
		if info.Type == "iframe" && strings.HasPrefix(info.URL, prefix) {
			out = append(out, info)
		}
	}
	return out
}

// Cookies are every cookie in the browser, partitioned ones included.
func (b *Browser) Cookies() []*network.Cookie {
	b.t.Helper()
	c, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	res, err := chromedp.Call(c, storage.GetCookies, storage.GetCookiesParams{})
	if err != nil {
		b.t.Fatal(err)
	}
	return res.Cookies
}

// SessionCookies are the gateway's session cookies in the browser.
func (b *Browser) SessionCookies() []*network.Cookie {
	var out []*network.Cookie
	for _, c := range b.Cookies() {
		if c.Name == "__Host-embed_session" && c.Value != "" {
			out = append(out, c)
		}
	}
	return out
}

// Screenshot writes a PNG of the whole tab to e2e/artifacts/name.
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	c, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	dir := filepath.Join(repoRoot(), "e2e", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return p
}
