package e2e

import (
	"fmt"
	"net"
	"net/http"
)

// userTextPages are app pages holding a user's text, escaped the common
// way (only "</script" neutralised), in places where a bridge tag put by
// searching the bytes for "</body" would end a script early and run the
// text's <img onerror>: a JSON data block after </body>, a script inside
// an SVG <style>, and a page in ISO-2022-JP, where after ESC $ B the
// bytes "</script>!" are two kanji. Each ends in <p id="end">.
// baseInjectedPage is an app page under a nonce CSP without base-uri whose
// user text carries HTML that is not script: a <base href> to the
// stranger's site (which serves its own /.embed/bridge.js), so that every
// relative URL on the page would resolve there.
func baseInjectedPage(w http.ResponseWriter, r *http.Request, nonce string) {
	_, port, _ := net.SplitHostPort(r.Host)
	w.Header().Set("Content-Security-Policy", "script-src 'nonce-"+nonce+"' 'strict-dynamic'; object-src 'none'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!doctype html><html><head><title>t</title></head><body><p>comment: <base href="https://%s:%s/"></p>`+
		`<p id="end">end</p></body></html>`, evilHost, port)
}

var userTextPages = map[string]struct{ contentType, body string }{
	"/ugc/data-block": {"text/html; charset=utf-8", `<!doctype html><html><head><title>t</title></head><body><p>comments</p>` +
		`<p id="end">end</p></body><script type="application/json" id="c">{"c":"</body><img src=x onerror=window.__xss=1>"}</script></html>`},
	"/ugc/svg": {"text/html; charset=utf-8", `<!doctype html><html><body><svg><style><p><script>var s="</style></body><svg><title>` +
		`<img src=x onerror=window.__xss=1>";</script><p id="end">end</p></body></html>`},
	"/ugc/iso-2022-jp": {"text/html; charset=iso-2022-jp", "<!doctype html><html><head><title>t</title></head><body><p>comments</p>\n" +
		"<script>var c = \"\x1b$B</script>!\x1b(B</body>\x1b$B<title>!\x1b(B<img src=x onerror=\"window.__xss=1\">\";</script>\n" +
		`<p id="end">end</p></body></html>`},
}
