package e2e

// The browser embed kit, proven in headless Chromium: a customer page on
// https://app.acme.test mounts the SDK from https://portal.gate.test, its
// backend mints a token, and the app loads signed in inside a cross-site
// iframe under a partitioned cookie. Each test fails when its behaviour
// breaks; see browser_helpers_test.go for the sites and the browser.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// signIn opens the customer page and waits until the app in the frame
// greets sub; it returns the frame's context.
func signIn(t *testing.T, env *browserEnv, b *Browser, sub string) context.Context {
	t.Helper()
	b.Navigate(env.acmeOrigin() + "/?sub=" + sub)
	b.WaitFor(b.ctx, "embed:authenticated", `window.__events.some(e => e.type === "embed:authenticated")`, 15*time.Second)
	frame := b.Frame(env.gatewayOrigin() + "/deals")
	b.WaitFor(frame, "the app greeting "+sub, fmt.Sprintf(`document.getElementById("who") && document.getElementById("who").textContent === %q && window.EmbedBridge`, sub), 15*time.Second)
	b.WaitFor(b.ctx, "embed:ready from the app", `window.__events.some(e => e.type === "embed:ready" && e.page === "app")`, 10*time.Second)
	return frame
}

func countEvents(events []HostEvent, mount, typ string) int {
	n := 0
	for _, e := range events {
		if e.Mount == mount && e.Type == typ {
			n++
		}
	}
	return n
}

// 1. Allowlisted host page mounts the SDK, the backend mints a token, the
// app loads signed in; the cookie is Partitioned, Secure, HttpOnly,
// SameSite=None.
func TestBrowserSignedInEmbed(t *testing.T) {
	env := startBrowserEnv(t, "")
	b := newBrowser(t, env)
	t.Logf("internal CA trusted via %s", b.Trust)
	frame := signIn(t, env, b, "jane@acme.test")

	// The upstream saw the verified identity.
	seen := env.upstreamSaw("jane@acme.test")
	if len(seen) == 0 || seen[0].URL.Path != "/deals" || seen[0].Header.Get("X-Embed-Tenant") != "acme" {
		t.Fatalf("upstream requests with the subject: %d", len(seen))
	}
	// The iframe the SDK made.
	attrs := Eval[[]string](b, b.ctx, `(() => { const f = document.querySelector("#main iframe"); return [f.getAttribute("allow"), f.title, new URL(f.src).pathname]; })()`)
	if !slices.Equal(attrs, []string{"storage-access", "Deals", "/.embed/start"}) {
		t.Fatalf("iframe attributes = %q", attrs)
	}
	// The cookie, as the browser holds it: partitioned under acme's site.
	cookies := b.SessionCookies()
	if len(cookies) != 1 {
		t.Fatalf("%d session cookies", len(cookies))
	}
	c := cookies[0]
	if c.Domain != gateHost || c.Path != "/" || !c.Secure || !c.HTTPOnly || c.SameSite != "None" {
		t.Fatalf("cookie attributes: domain=%s path=%s secure=%v httpOnly=%v sameSite=%s", c.Domain, c.Path, c.Secure, c.HTTPOnly, c.SameSite)
	}
	if c.PartitionKey == nil || c.PartitionKey.TopLevelSite != "https://acme.test" || c.PartitionKeyOpaque {
		t.Fatalf("cookie is not partitioned under https://acme.test: %+v", c.PartitionKey)
	}
	// HttpOnly: the app's own script cannot read it.
	if dc := Eval[string](b, frame, "document.cookie"); strings.Contains(dc, "embed_session") {
		t.Fatalf("document.cookie shows the session: %q", dc)
	}
	// The parent origin the start page saw is bound into the session.
	var info map[string]string
	if err := json.Unmarshal([]byte(Eval[string](b, frame, `fetch("/.embed/session").then(r => r.text())`)), &info); err != nil {
		t.Fatal(err)
	}
	if info["sub"] != "jane@acme.test" || info["origin"] != env.acmeOrigin() {
		t.Fatalf("session = %v", info)
	}
	// inject_bridge kept the app's strict CSP working: its own nonce script
	// ran, and so did bridge.js with the same nonce.
	if !Eval[bool](b, frame, "window.appScriptRan === true && !!window.EmbedBridge") {
		t.Fatal("the app's script or the injected bridge did not run")
	}
	ev := b.Events()
	if countEvents(ev, "main", "embed:authenticated") != 1 || len(env.backend.Tokens()) != 1 {
		t.Fatalf("events %+v, %d tokens minted", ev, len(env.backend.Tokens()))
	}
}

// 2. The token is never in any URL the browser loaded or in its history,
// checked through the browser's own network events (CDP, every target)
// and its net log.
func TestBrowserTokenNeverInURL(t *testing.T) {
	env := startBrowserEnv(t, "")
	b := newBrowser(t, env)
	frame := signIn(t, env, b, "jane@acme.test")
	// More traffic inside the frame: a history entry and a full load.
	Eval[bool](b, frame, `history.pushState({}, "", "/deals/7"), true`)
	Eval[bool](b, frame, `location.assign("/deals/8"), true`)
	b.WaitFor(frame, "the second page", `location.pathname === "/deals/8" && document.getElementById("who")`, 10*time.Second)

	var urls []string
	entries, err := chromedp.Run(b.ctx, chromedp.NavigationEntries())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries.Entries {
		urls = append(urls, e.URL, e.UserTypedURL)
	}
	urls = append(urls, Eval[[]string](b, frame, `[location.href, document.referrer, String(history.length)].concat(performance.getEntries().map(e => e.name))`)...)
	urls = append(urls, Eval[[]string](b, b.ctx, `[location.href].concat(performance.getEntries().map(e => e.name))`)...)
	urls = append(urls, b.CDPURLs()...)
	netlog := b.NetLogURLs()
	urls = append(urls, netlog...)

	tokens := env.backend.Tokens()
	if len(tokens) != 1 {
		t.Fatalf("%d tokens minted", len(tokens))
	}
	parts := strings.Split(tokens[0], ".")
	for _, u := range urls {
		if strings.Contains(u, "embed_token") || strings.Contains(u, parts[1]) || strings.Contains(u, parts[2]) {
			t.Fatalf("a URL the browser used holds the token: %s", u)
		}
	}
	// The evidence covers the flow: the net log saw the start page, the
	// exchange and the app.
	for _, want := range []string{"/.embed/start?tenant=acme", "/.embed/exchange", "/deals/8", "/api/embed-token"} {
		if !slices.ContainsFunc(netlog, func(u string) bool { return strings.Contains(u, want) }) {
			t.Fatalf("the net log has no %s; it holds %d URLs", want, len(netlog))
		}
	}
}

// 3. A host page not in frame_ancestors gets no rendered frame (blocked by
// CSP) and no session.
func TestBrowserStrangerGetsNoFrame(t *testing.T) {
	env := startBrowserEnv(t, "")
	b := newBrowser(t, env)
	b.Navigate(env.evilOrigin() + "/")
	// The browser did fetch the start page...
	b.WaitFor(b.ctx, "the iframe", `document.querySelector("#app iframe")`, 5*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for !slices.ContainsFunc(b.Responses(), func(r SeenResponse) bool { return strings.Contains(r.URL, "/.embed/start") }) {
		if time.Now().After(deadline) {
			t.Fatal("the start page was never requested")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// ...and showed an error page in its place: nothing of the gateway ran.
	frame := b.Frame(env.gatewayOrigin() + "/.embed/start")
	b.WaitFor(frame, "the blocked-frame error page", `location.href.startsWith("chrome-error://")`, 10*time.Second)
	if Eval[bool](b, frame, `!!document.getElementById("embedgate-config")`) {
		t.Fatal("the start page rendered inside a stranger's page")
	}
	time.Sleep(500 * time.Millisecond)
	if ev := b.Events(); len(ev) != 0 {
		t.Fatalf("the stranger's SDK got events: %+v", ev)
	}
	if n := Eval[float64](b, b.ctx, "window.__asked"); n != 0 {
		t.Fatalf("the SDK asked the stranger for a token %v times", n)
	}
	if c := b.SessionCookies(); len(c) != 0 {
		t.Fatalf("a session cookie exists: %+v", c[0])
	}
	if slices.ContainsFunc(b.CDPURLs(), func(u string) bool { return strings.Contains(u, "/.embed/exchange") }) {
		t.Fatal("an exchange was attempted")
	}
	if n := len(env.up.Requests()); n != 0 {
		t.Fatalf("%d requests reached the app", n)
	}
	// The reason: the start page names only acme's page as a framer.
	resp, _ := get(t, env.g, gateHost, "/.embed/start?tenant=acme&next=/deals", nil, nil)
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasSuffix(csp, "; frame-ancestors "+env.acmeOrigin()) {
		t.Fatalf("start page CSP = %q", csp)
	}
}

// 4. Replaying the same token from a second mount yields
// embed:authRequired, then the SDK's getToken() re-mint succeeds.
func TestBrowserReplayedTokenReminted(t *testing.T) {
	env := startBrowserEnv(t, "")
	b := newBrowser(t, env)
	signIn(t, env, b, "jane@acme.test")
	first := env.backend.Tokens()[0]

	// The second mount's getToken hands out the used token once, then mints.
	Eval[bool](b, b.ctx, `(() => {
	  let replay = true;
	  window.second = mountEmbed("second", () => { if (replay) { replay = false; return window.__lastToken; } return mintToken(); }, "/deals/second");
	  return true;
	})()`)
	b.WaitFor(b.ctx, "second mount authenticated", `window.__events.some(e => e.mount === "second" && e.type === "embed:authenticated")`, 15*time.Second)
	frame := b.Frame(env.gatewayOrigin() + "/deals/second")
	b.WaitFor(frame, "second app signed in", `document.getElementById("who") && document.getElementById("who").textContent === "jane@acme.test"`, 10*time.Second)

	var sawReplay, authAfter bool
	for _, e := range b.Events() {
		if e.Mount != "second" {
			continue
		}
		if e.Type == "embed:authRequired" && e.Reason == "replayed" {
			sawReplay = true
		}
		if e.Type == "embed:authenticated" && sawReplay {
			authAfter = true
		}
	}
	if !sawReplay || !authAfter {
		t.Fatalf("want authRequired(replayed) then authenticated on the second mount: %s", b.events())
	}
	tokens := env.backend.Tokens()
	if len(tokens) != 2 || tokens[0] != first || Eval[float64](b, b.ctx, "window.__mints") != 2 {
		t.Fatalf("%d tokens minted, host asked %v times", len(tokens), Eval[float64](b, b.ctx, "window.__mints"))
	}
	mustContain(t, env.g.Logs(), `"reason":"replayed"`)
}

// 5. signOut() ends the session: the next request inside the frame gets the
// gate page and the host sees embed:authRequired.
func TestBrowserSignOut(t *testing.T) {
	env := startBrowserEnv(t, "")
	b := newBrowser(t, env)
	frame := signIn(t, env, b, "jane@acme.test")
	before := len(b.Events())
	served := len(env.upstreamSaw("jane@acme.test"))

	Eval[bool](b, b.ctx, `window.embed.signOut().then(() => true)`)
	b.WaitFor(frame, "the gate page", `document.querySelector('meta[name="embedgate-reason"]')`, 10*time.Second)
	if r := Eval[string](b, frame, `document.querySelector('meta[name="embedgate-reason"]').content`); r != "session_missing" {
		t.Fatalf("gate reason = %q", r)
	}
	var reasons []string
	for _, e := range b.Events()[before:] {
		if e.Type == "embed:authRequired" {
			reasons = append(reasons, e.Reason)
		}
	}
	if len(reasons) == 0 {
		t.Fatalf("the host saw no embed:authRequired after signOut: %s", b.events())
	}
	// Signed out means signed out: the next page in the frame is the gate
	// again, with no silent re-mint, no cookie, and no request to the app.
	Eval[bool](b, frame, `location.assign("/deals/again"), true`)
	b.WaitFor(b.ctx, "the next gate's embed:authRequired", fmt.Sprintf(`window.__events.filter(e => e.type === "embed:authRequired").length >= %d`, len(reasons)+1), 10*time.Second)
	time.Sleep(500 * time.Millisecond)
	if n := Eval[float64](b, b.ctx, "window.__mints"); n != 1 {
		t.Fatalf("getToken called %v times: signOut must not re-mint", n)
	}
	if c := b.SessionCookies(); len(c) != 0 {
		t.Fatalf("the session cookie is still there: %+v", c[0])
	}
	if st := Eval[float64](b, frame, `fetch("/deals").then(r => r.status)`); st != 401 {
		t.Fatalf("a request after sign-out: %v", st)
	}
	if n := len(env.upstreamSaw("jane@acme.test")); n != served {
		t.Fatalf("the app saw %d more signed-in requests after sign-out", n-served)
	}
	mustContain(t, env.g.Logs(), `"msg":"signout"`)
}

// 6. Session expiry (a short session_ttl) produces embed:authRequired and a
// silent re-mint.
func TestBrowserSessionExpiryRemint(t *testing.T) {
	env := startBrowserEnv(t, "session_ttl 3s")
	b := newBrowser(t, env)
	frame := signIn(t, env, b, "jane@acme.test")
	pageID := Eval[float64](b, b.ctx, "window.__pageID")
	time.Sleep(3500 * time.Millisecond)

	// The next navigation inside the frame finds the session gone.
	Eval[bool](b, frame, `location.assign("/deals/after"), true`)
	b.WaitFor(b.ctx, "a second embed:authenticated", `window.__events.filter(e => e.type === "embed:authenticated").length === 2`, 15*time.Second)
	b.WaitFor(frame, "the app again", `location.pathname === "/deals/after" && document.getElementById("who") && document.getElementById("who").textContent === "jane@acme.test"`, 10*time.Second)

	var sawExpiry bool
	for _, e := range b.Events() {
		if e.Type == "embed:authRequired" && (e.Reason == "session_missing" || e.Reason == "session_expired") {
			sawExpiry = true
		}
	}
	if !sawExpiry {
		t.Fatalf("no embed:authRequired for the expired session: %s", b.events())
	}
	if n := len(env.backend.Tokens()); n != 2 {
		t.Fatalf("%d tokens minted, want 2", n)
	}
	if got := Eval[float64](b, b.ctx, "window.__pageID"); got != pageID {
		t.Fatal("the host page reloaded")
	}
	if !slices.ContainsFunc(env.upstreamSaw("jane@acme.test"), func(r *http.Request) bool { return r.URL.Path == "/deals/after" }) {
		t.Fatal("the app never served /deals/after signed in")
	}
}

// 7. Auto-resize: content growing inside the frame grows the iframe on the
// host page, and shrinking it shrinks the iframe.
func TestBrowserAutoResize(t *testing.T) {
	env := startBrowserEnv(t, "")
	b := newBrowser(t, env)
	frame := signIn(t, env, b, "jane@acme.test")
	height := func() float64 {
		return Eval[float64](b, b.ctx, `document.querySelector("#main iframe").getBoundingClientRect().height`)
	}
	b.WaitFor(b.ctx, "the first resize", `window.__events.some(e => e.type === "embed:resize")`, 10*time.Second)
	h0 := height()
	if h0 < 150 || h0 > 600 {
		t.Fatalf("initial iframe height %v: not fitted to the app", h0)
	}
	before := len(b.Events())
	Eval[bool](b, frame, `document.getElementById("more").innerHTML = '<div class="tall"></div>', true`)
	b.WaitFor(b.ctx, "the iframe to grow", fmt.Sprintf(`document.querySelector("#main iframe").getBoundingClientRect().height >= %v`, h0+1400), 10*time.Second)
	inner := Eval[float64](b, frame, `document.documentElement.getBoundingClientRect().height`)
	if h := height(); h < inner-1 || h > inner+1 {
		t.Fatalf("iframe height %v, content height %v", h, inner)
	}
	if n := countEvents(b.Events()[before:], "main", "embed:resize"); n > 3 {
		t.Fatalf("%d resize messages for one change: not coalesced", n)
	}
	Eval[bool](b, frame, `document.getElementById("more").innerHTML = "", true`)
	b.WaitFor(b.ctx, "the iframe to shrink", fmt.Sprintf(`Math.abs(document.querySelector("#main iframe").getBoundingClientRect().height - %v) <= 1`, h0), 10*time.Second)
}

// 8. embed:navigate reaches the host with the new path; messages posted by a
// stranger origin are ignored, by the SDK and inside the frame.
func TestBrowserNavigateAndStrangersIgnored(t *testing.T) {
	env := startBrowserEnv(t, "")
	b := newBrowser(t, env)
	frame := signIn(t, env, b, "jane@acme.test")
	b.WaitFor(frame, "host:init", `window.EmbedBridge.init && window.EmbedBridge.init.locale === "de-CH"`, 5*time.Second)

	Eval[bool](b, frame, `window.__marker = 1, history.pushState({}, "", "/deals/42?tab=notes"), true`)
	b.WaitFor(b.ctx, "embed:navigate", `window.__events.some(e => e.type === "embed:navigate" && e.path === "/deals/42?tab=notes")`, 5*time.Second)

	// A stranger frame in the same page forges messages both ways.
	mints := Eval[float64](b, b.ctx, "window.__mints")
	h := Eval[float64](b, b.ctx, `document.querySelector("#main iframe").getBoundingClientRect().height`)
	Eval[bool](b, b.ctx, "addStranger(), true")
	stranger := b.Frame(env.evilOrigin() + "/spam.html")
	b.WaitFor(stranger, "the forged messages", `document.title === "sent"`, 10*time.Second)
	time.Sleep(700 * time.Millisecond)

	for _, e := range b.Events() {
		if e.Path == "/pwned" || e.Reason == "forged" || e.Height == 4321 {
			t.Fatalf("the SDK passed on a forged message: %+v", e)
		}
	}
	if got := Eval[float64](b, b.ctx, `document.querySelector("#main iframe").getBoundingClientRect().height`); got != h {
		t.Fatalf("iframe height changed from %v to %v", h, got)
	}
	if got := Eval[float64](b, b.ctx, "window.__mints"); got != mints {
		t.Fatal("a forged message made the SDK ask for a token")
	}
	if loc := Eval[string](b, frame, `window.EmbedBridge.init.locale`); loc != "de-CH" {
		t.Fatalf("a forged host:init reached the app: %q", loc)
	}
	if Eval[float64](b, frame, `window.__marker || 0`) != 1 || Eval[float64](b, frame, `fetch("/.embed/session").then(r => r.status)`) != 200 {
		t.Fatal("a forged host:signOut ended the session")
	}
}

// 9. A cross-site form POST from evil.other.test into the app is refused
// (403) and the upstream never sees it.
func TestBrowserCrossSiteFormPostRefused(t *testing.T) {
	env := startBrowserEnv(t, "")
	b := newBrowser(t, env)
	signIn(t, env, b, "jane@acme.test")

	b.Navigate(env.evilOrigin() + "/post.html")
	b.WaitFor(b.ctx, "the form POST's answer", fmt.Sprintf(`location.href === %q && document.body && document.body.innerText.includes("cross_origin")`, env.gatewayOrigin()+"/deals/delete-all"), 15*time.Second)
	var refused bool
	for _, r := range b.Responses() {
		if strings.HasSuffix(r.URL, "/deals/delete-all") {
			if r.Status != http.StatusForbidden {
				t.Fatalf("form POST answered %d", r.Status)
			}
			refused = true
		}
	}
	if !refused {
		t.Fatal("no response to the form POST in the network events")
	}
	for _, r := range env.up.Requests() {
		if r.Method != http.MethodGet {
			t.Fatalf("the app saw %s %s", r.Method, r.URL.Path)
		}
	}
}

// 10. Screenshots of the host page with the embedded app (and of the
// stranger's page, where the frame stays empty), written as test artifacts
// to e2e/artifacts/.
func TestBrowserScreenshots(t *testing.T) {
	env := startBrowserEnv(t, "")
	b := newBrowser(t, env)
	frame := signIn(t, env, b, "jane@acme.test")
	b.WaitFor(b.ctx, "the fitted iframe", `document.querySelector("#main iframe").getBoundingClientRect().height > 150`, 10*time.Second)
	Eval[bool](b, frame, `document.fonts.ready.then(() => true)`)
	shots := []string{b.Screenshot("embed-host-page.png")}

	b.Navigate(env.evilOrigin() + "/")
	b.WaitFor(b.Frame(env.gatewayOrigin()+"/.embed/start"), "the blocked frame", `location.href.startsWith("chrome-error://")`, 10*time.Second)
	shots = append(shots, b.Screenshot("embed-stranger-blocked.png"))
	for _, p := range shots {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) || len(data) < 5000 {
			t.Fatalf("%s: not a plausible PNG (%d bytes)", p, len(data))
		}
		t.Logf("screenshot: %s", p)
	}
}
