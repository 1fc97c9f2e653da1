package bridge

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	inlineScript = regexp.MustCompile(`(?s)<script>(.*?)</script>`)
	inlineStyle  = regexp.MustCompile(`(?s)<style>(.*?)</style>`)
	dataBlock    = regexp.MustCompile(`(?s)<script type="application/json" id="embedgate-config">(.*?)</script>`)
)

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// Every inline script and style of both pages is allowed by PageCSP's
// hashes, and nothing else is: no 'unsafe-inline', no nonce.
func TestPagesMatchTheirCSP(t *testing.T) {
	csp := PageCSP()
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "nonce-") || strings.Contains(csp, "frame-ancestors") {
		t.Fatalf("PageCSP = %q", csp)
	}
	cfg := PageConfig{Tenant: "acme", Next: "/deals", Origins: []string{"https://app.acme.test"}, Prefix: "/.embed", Reason: "session_expired"}
	for name, page := range map[string][]byte{"start": StartPage(cfg), "gate": GatePage(cfg), "signout": SignoutPage(cfg)} {
		scripts := inlineScript.FindAllStringSubmatch(string(page), -1)
		if len(scripts) != 1 {
			t.Fatalf("%s: %d inline scripts", name, len(scripts))
		}
		if !strings.Contains(csp, "script-src "+sha(scripts[0][1])+";") {
			t.Fatalf("%s: script hash %s not in %q", name, sha(scripts[0][1]), csp)
		}
		styles := inlineStyle.FindAllStringSubmatch(string(page), -1)
		if len(styles) != 1 || !strings.Contains(csp, "style-src "+sha(styles[0][1])+";") {
			t.Fatalf("%s: style not allowed by %q", name, csp)
		}
		if strings.Contains(string(page), "{{") {
			t.Fatalf("%s: unfilled placeholder", name)
		}
	}
}

// Values in the data block cannot end the script element or smuggle HTML.
func TestPageConfigIsEscaped(t *testing.T) {
	evil := `</script><script>alert(1)</script>`
	page := string(GatePage(PageConfig{Tenant: evil, Next: "/x?" + evil, Reason: `"><b>`, Prefix: "/.embed"}))
	if strings.Count(page, "</script>") != 2 {
		t.Fatalf("a value closed a script element:\n%s", page)
	}
	if strings.Contains(page, `"><b>`) {
		t.Fatal("reason not escaped in the meta tag")
	}
	m := dataBlock.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no data block")
	}
	var got PageConfig
	if err := json.Unmarshal([]byte(m[1]), &got); err != nil {
		t.Fatal(err)
	}
	if got.Tenant != evil || got.Page != "gate" || got.Origins == nil {
		t.Fatalf("round trip: %+v", got)
	}
}

func TestScriptsAreFilledIn(t *testing.T) {
	sdk := string(SDK(`/_gate"x`))
	if !strings.Contains(sdk, `const PREFIX = "/_gate\"x";`) {
		t.Fatal("prefix not filled into sdk.js")
	}
	br := string(Bridge(BridgeConfig{Origins: []string{"https://app.acme.test"}, Prefix: "/.embed"}))
	if !strings.Contains(br, `const CONFIG = {"origins":["https://app.acme.test"],"prefix":"/.embed"};`) {
		t.Fatal("config not filled into bridge.js")
	}
	if strings.Contains(string(Bridge(BridgeConfig{Prefix: "/p"})), `"origins":null`) {
		t.Fatal("nil origins must render as []")
	}
	for _, s := range []string{sdk, br, pageJS} {
		if strings.Contains(s, `"*"`) || strings.Contains(s, "'*'") {
			t.Fatal(`a script names "*" as a postMessage target`)
		}
	}
}

// The scripts parse, when Node is there to check them.
func TestScriptsParse(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	dir := t.TempDir()
	for name, body := range map[string][]byte{
		"sdk.js": SDK("/.embed"), "bridge.js": Bridge(BridgeConfig{Prefix: "/.embed"}), "page.js": []byte(pageJS),
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, body, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(node, "--check", p).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
	}
}

// The pages render byte for byte as a one-pass rendering of every
// placeholder would, placeholders smuggled in through values included.
func TestRenderMatchesOnePass(t *testing.T) {
	old := func(tpl string, cfg PageConfig) []byte {
		if cfg.Origins == nil {
			cfg.Origins = []string{}
		}
		why := gateWhy(cfg.Reason)
		return []byte(strings.NewReplacer(
			"{{STYLE}}", pageCSS,
			"{{SCRIPT}}", pageJS,
			"{{CONFIG}}", jsonText(cfg),
			"{{REASON}}", html.EscapeString(cfg.Reason),
			"{{WHY}}", why.group,
			"{{SENTENCE}}", why.sentence,
		).Replace(tpl))
	}
	cfgs := []PageConfig{
		{},
		{Tenant: "acme", Next: "/deals", Origins: []string{"https://app.acme.test"}, Bound: "https://app.acme.test", Prefix: "/.embed", Reason: "session_expired"},
		{Tenant: "{{STYLE}}", Next: "/{{SCRIPT}}", Reason: `{{CONFIG}}"<&>{{REASON}}{{SCRIPT}}`, Prefix: "{{REASON}}"},
	}
	for _, cfg := range cfgs {
		start, gate := cfg, cfg
		start.Page, gate.Page = "start", "gate"
		if got, want := StartPage(cfg), old(startHTML, start); !bytes.Equal(got, want) {
			t.Fatalf("start page differs for %+v:\n%s\nwant\n%s", cfg, got, want)
		}
		if got, want := GatePage(cfg), old(gateHTML, gate); !bytes.Equal(got, want) {
			t.Fatalf("gate page differs for %+v:\n%s\nwant\n%s", cfg, got, want)
		}
		signout := cfg
		signout.Page, signout.Reason = "signout", ReasonSignedOut
		if got, want := SignoutPage(cfg), old(gateHTML, signout); !bytes.Equal(got, want) {
			t.Fatalf("sign-out page differs for %+v:\n%s\nwant\n%s", cfg, got, want)
		}
	}
}

// page.js's behaviour, in Node against a fake frame (testdata/page.test.mjs):
// the states of the three pages, what they post to the host, what they
// fetch. Node is required in CI.
func TestPageScript(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node not installed")
		}
		t.Skip("node not installed")
	}
	out, err := exec.Command(node, "--test", "testdata/page.test.mjs").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "# fail 0") {
		t.Fatalf("no test result:\n%s", out)
	}
}
