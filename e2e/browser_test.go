package e2e

// The browser embed kit, proven in real browsers: a customer page on
// https://app.acme.test mounts the SDK from https://portal.gate.test, its
// backend mints a token, and the app loads signed in inside a cross-site
// iframe. The scenarios are node tests in e2e/browser/tests (puppeteer-core
// driving Debian's Chromium over CDP and firefox-esr over WebDriver BiDi);
// this file starts one gateway per browser regime and runs every scenario
// in it. Screenshots land in e2e/artifacts/<regime>/.

import (
	"path/filepath"
	"testing"
	"time"
)

// browserRegimes are the browser configurations every scenario runs in.
// The browser's own settings (flags, prefs, cookie policy) are in
// e2e/browser/lib/regimes.mjs under the same names; GateExtra is what the
// regime changes on the gateway's side.
var browserRegimes = []struct {
	Name, Engine, GateExtra string
}{
	// Headless default: third-party cookies blocked, CHIPS honoured.
	{Name: "chromium", Engine: "chromium"},
	// Third-party cookies allowed.
	{Name: "chromium-3pc", Engine: "chromium"},
	// No CHIPS: Partitioned is stripped from the gateway's Set-Cookie, so
	// the cookie sticks only through the Storage Access API.
	{Name: "chromium-nochips", Engine: "chromium", GateExtra: `header >Set-Cookie "(.*); Partitioned" "$1"`},
	// Firefox ESR with Total Cookie Protection (cookieBehavior 5).
	{Name: "firefox", Engine: "firefox"},
}

// TestBrowser runs every scenario of e2e/browser/tests in each regime, one
// regime and one test at a time (the machine has two cores).
func TestBrowser(t *testing.T) {
	node := requireNodeSuite(t)
	files, err := filepath.Glob(filepath.Join(browserDir(), "tests", "*.test.mjs"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no node tests in e2e/browser/tests: %v", err)
	}
	for i, f := range files {
		files[i], _ = filepath.Rel(browserDir(), f)
	}
	for _, r := range browserRegimes {
		t.Run(r.Name, func(t *testing.T) {
			exe := requireBrowser(t, r.Engine)
			env := startBrowserEnv(t, r.GateExtra)
			runNodeSuite(t, node, env.g, nodeRun{
				Regime: r.Name, Browser: exe, Files: files, Env: env.browserVars(), Timeout: 6 * time.Minute,
			})
		})
	}
}
