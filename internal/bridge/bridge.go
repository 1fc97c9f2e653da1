// Package bridge holds the browser side of embedgate, shipped in the binary
// with go:embed: the in-frame helper (bridge.js), and the start, gate and
// sign-out pages with their inline script; the host-page SDK (sdk.js,
// sdk.d.ts) comes from the sdk package, which is also the npm package. It
// renders them; the gateway package decides when to serve them and with
// which headers.
//
// The pages' only executable script is static and allowed by its SHA-256
// hash in their CSP; what varies per request travels in a JSON data block
// (<script type="application/json">), which CSP does not run.
package bridge

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"html"
	"strings"

	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/sdk"
)

//go:embed bridge.js page.js resize.js page.css start.html gate.html page-head.html signin-states.html
var files embed.FS

func mustRead(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("bridge: missing embedded file " + name)
	}
	return b
}

var (
	sdkJS     = []byte(sdk.Script())
	sdkTypes  = []byte(sdk.Types())
	bridgeJS  = []byte(include(string(mustRead("bridge.js")), resizePart))
	pageJS    = strings.TrimSpace(include(string(mustRead("page.js")), resizePart))
	pageCSS   = strings.TrimSpace(string(mustRead("page.css")))
	startHTML = include(string(mustRead("start.html")), pageHeadPart, signinStatesPart)
	gateHTML  = include(string(mustRead("gate.html")), pageHeadPart, signinStatesPart)

	// The pages with their static style and script already in place; only
	// the per-request placeholders are left for render.
	startPage = fillStatic(startHTML)
	gatePage  = fillStatic(gateHTML)

	pageCSP = "default-src 'none'; script-src " + hashSource(pageJS) + "; style-src " + hashSource(pageCSS) +
		"; connect-src 'self'; base-uri 'none'; form-action 'none'"
)

// The literals that the gateway fills in when it serves a script.
const (
	sdkPrefixLine    = sdk.PrefixLine
	bridgeConfigLine = `const CONFIG = {"origins":[],"prefix":"/.embed"};`
)

func init() {
	if !bytes.Contains(sdkJS, []byte(sdkPrefixLine)) || !bytes.Contains(bridgeJS, []byte(bridgeConfigLine)) {
		panic("bridge: a script lost its placeholder line")
	}
}

// The placeholders of the parts that two files share, each a whole line in
// its file: the pages' head and sign-in states, and the embed:resize rule
// that bridge.js and page.js both follow.
const (
	pageHeadPart     = "{{PAGE_HEAD}}"
	signinStatesPart = "{{SIGNIN_STATES}}"
	resizePart       = "// {{RESIZE_JS}}" // a comment, so the script still parses as it is
)

var partFiles = map[string]string{
	pageHeadPart:     "page-head.html",
	signinStatesPart: "signin-states.html",
	resizePart:       "resize.js",
}

// include puts the shared parts into a template or script, so that each is
// written once. It panics when src lacks one of them, or a part holds a
// placeholder of its own.
func include(src string, placeholders ...string) string {
	for _, p := range placeholders {
		part := strings.TrimSpace(string(mustRead(partFiles[p])))
		if !strings.Contains(src, p) || strings.Contains(part, "{{") {
			panic("bridge: a file lost its " + p + " line, or " + partFiles[p] + " holds a {{placeholder}}")
		}
		src = strings.Replace(src, p, part, 1)
	}
	return src
}

// fillStatic puts the page's style and script into a page template. They
// hold no placeholder (checked), so filling them first renders exactly as
// one pass over every placeholder would.
func fillStatic(tpl string) string {
	if strings.Contains(pageCSS, "{{") || strings.Contains(pageJS, "{{") {
		panic("bridge: page.css or page.js holds a {{placeholder}}")
	}
	return strings.NewReplacer("{{STYLE}}", pageCSS, "{{SCRIPT}}", pageJS).Replace(tpl)
}

func hashSource(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// jsonText encodes v for a script: json.Marshal escapes <, >, & and the
// line separators U+2028/U+2029, so the text cannot end a <script> element
// or break a JavaScript string.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic("bridge: " + err.Error())
	}
	return string(b)
}

// SDK is sdk.js with the gateway's prefix filled in.
func SDK(prefix string) []byte {
	return bytes.Replace(sdkJS, []byte(sdkPrefixLine), []byte("const PREFIX = "+jsonText(prefix)+";"), 1)
}

// SDKTypes is sdk.d.ts.
func SDKTypes() []byte { return sdkTypes }

// BridgeConfig is what bridge.js is told when it is served.
type BridgeConfig struct {
	// Origins the bridge posts to and accepts host messages from: the parent
	// origin bound into the session, or the tenant's allowlist without one.
	Origins []string `json:"origins"`
	Prefix  string   `json:"prefix"`
	// Tenant names the sign-out page's tenant. Default: "" (the gateway
	// finds it from the host or the cookie).
	Tenant string `json:"tenant,omitempty"`
	// Sub and ExpiresAt are the live session's, sent with the app's
	// embed:ready so that it settles a sign-in whose embed:authenticated was
	// lost. Default: "" (no session).
	Sub       string `json:"sub,omitempty"`
	ExpiresAt string `json:"expires_at,omitempty"`
}

// Bridge is bridge.js with cfg filled in.
func Bridge(cfg BridgeConfig) []byte {
	if cfg.Origins == nil {
		cfg.Origins = []string{}
	}
	return bytes.Replace(bridgeJS, []byte(bridgeConfigLine), []byte("const CONFIG = "+jsonText(cfg)+";"), 1)
}

// PageConfig is the data block of the start, gate and sign-out pages.
type PageConfig struct {
	Page    string   `json:"page"` // "start", "gate" or "signout"
	Tenant  string   `json:"tenant"`
	Next    string   `json:"next"` // a same-origin path
	Origins []string `json:"origins"`
	Bound   string   `json:"bound,omitempty"` // the session's parent origin, when known
	Reason  string   `json:"reason,omitempty"`
	// Error is the embed:error reason the start page stops at, showing a
	// final state instead of signing in. Default: "" (it signs in).
	Error  string `json:"error,omitempty"`
	Prefix string `json:"prefix"`
}

// Reasons the pages give, as the host sees them in embed:authRequired and
// embed:error.
const (
	// ReasonSignedOut is the sign-out page's embed:authRequired reason: a
	// page's word only, not one of the gateway's refusals.
	ReasonSignedOut = "signed_out"
	// ReasonWrongTenant is the start page's embed:error reason when its
	// tenant is unknown or not the host's: the refusal's own word, which
	// package reason pins.
	ReasonWrongTenant = string(reason.WrongTenant)
)

// PageCSP is the CSP of the start and gate pages without frame-ancestors:
// nothing but their own hashed script and style, and fetches to self.
func PageCSP() string { return pageCSP }

// StartPage renders the start page. With cfg.Error set it shows a final
// state and posts embed:error instead of signing in.
func StartPage(cfg PageConfig) []byte {
	cfg.Page = "start"
	return render(startPage, cfg)
}

// GatePage renders the gate page: the HTML 401 shown in the frame without a
// session. It names reason in a meta tag, says why in one sentence (see
// gateWhy), and tells the host.
func GatePage(cfg PageConfig) []byte {
	cfg.Page = "gate"
	return render(gatePage, cfg)
}

// SignoutPage renders the sign-out page: the gate page that first ends the
// session (its script POSTs the sign-out endpoint), then says so and tells
// the host embed:authRequired {reason: "signed_out"}.
func SignoutPage(cfg PageConfig) []byte {
	cfg.Page = "signout"
	cfg.Reason = ReasonSignedOut
	return render(gatePage, cfg)
}

// render fills the per-request placeholders of a page from fillStatic, in
// one pass, so that no value can bring in a placeholder.
func render(page string, cfg PageConfig) []byte {
	if cfg.Origins == nil {
		cfg.Origins = []string{}
	}
	why := gateWhy(cfg.Reason)
	r := strings.NewReplacer(
		"{{CONFIG}}", jsonText(cfg),
		"{{REASON}}", html.EscapeString(cfg.Reason),
		"{{WHY}}", why.group,
		"{{SENTENCE}}", why.sentence,
	)
	return []byte(r.Replace(page))
}
