package gateway

import (
	"bytes"
	"errors"
	"io"

	"golang.org/x/net/html"
	"golang.org/x/net/html/charset"
)

// scriptInsertion returns the offset in body (an HTML page sent with
// Content-Type contentType) where a script tag goes so that a browser
// parses it as a script element of the page and changes nothing else, or
// -1 when there is no such place: the page is then sent as it came.
//
// Where is decided by HTML's tokenizer, not by searching the bytes: a
// "</body" inside a <script>, <style>, <textarea>, <title> or comment is
// text, and a tag put there would end that element early (the tag's own
// "</script>" closes an enclosing script) and turn what follows, perhaps a
// user's text, into markup. So the tag goes before the last </body> end
// tag the tokenizer sees; without one it is appended, but only when a
// script tag, tokenized after the page, comes out as a start tag and its
// end tag: a page cut off inside a tag, an attribute, a comment or raw
// text gets nothing.
//
// The tokenizer reads bytes as a browser does only in an ASCII-compatible
// encoding (asciiCompatible), and only outside SVG and MathML, where a
// browser's tree builder stops <style>, <title> and <script> being raw
// text and reads CDATA. A page with either, or with a <template> (whose
// scripts never run), is checked by the full parser (onlyAddsScript).
func scriptInsertion(body []byte, contentType string) int {
	if !asciiCompatible(body, contentType) {
		return -1 // the tag's bytes might not be markup there
	}
	page := insertAt(body, []byte(probeTag), len(body))
	var at int
	switch end, appendable := lastBodyEnd(page, len(body)); {
	case end >= 0:
		at = end
	case appendable:
		at = len(body)
	default:
		return -1
	}
	if needsTreeCheck(body) && !onlyAddsScript(body, at) {
		return -1
	}
	return at
}

// asciiCompatible reports whether body, as a browser decodes it (byte
// order mark, then the Content-Type charset, then a <meta> in its first
// 1024 bytes), is in an encoding whose bytes below 0x80 are always ASCII:
// every encoding of the WHATWG list but UTF-16, ISO-2022-JP (where, after
// ESC $ B, "</body>" may be two kanji) and "replacement". A page with an
// ESC byte is refused too: one that declares no charset may be detected
// as ISO-2022-JP.
func asciiCompatible(body []byte, contentType string) bool {
	if bytes.IndexByte(body, 0x1B) >= 0 {
		return false
	}
	_, name, _ := charset.DetermineEncoding(body, contentType)
	switch name {
	case "utf-16be", "utf-16le", "iso-2022-jp", "replacement":
		return false
	}
	return true
}

// needsTreeCheck reports an <svg, <math or <template tag, in any case.
func needsTreeCheck(body []byte) bool {
	for i := bytes.IndexByte(body, '<'); i >= 0; {
		rest := body[i+1:]
		if hasPrefixFold(rest, "svg") || hasPrefixFold(rest, "math") || hasPrefixFold(rest, "template") {
			return true
		}
		j := bytes.IndexByte(rest, '<')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && bytes.EqualFold(b[:len(prefix)], []byte(prefix))
}

// onlyAddsScript reports whether the page with probeTag inserted at
// offset at parses, by HTML's tree construction as a browser runs it, into
// the page's own document plus one HTML script element (outside any
// <template>), and nothing else changed.
func onlyAddsScript(body []byte, at int) bool {
	orig, err := html.Parse(bytes.NewReader(body))
	if err != nil {
		return false
	}
	withTag, err := html.Parse(bytes.NewReader(insertAt(body, []byte(probeTag), at)))
	if err != nil {
		return false
	}
	var found []*html.Node
	for n := range withTag.Descendants() {
		if n.Type == html.ElementNode && n.Data == "script" && hasAttr(n, probeAttr) {
			found = append(found, n)
		}
	}
	if len(found) != 1 || found[0].Namespace != "" || inTemplate(found[0]) {
		return false
	}
	found[0].Parent.RemoveChild(found[0])
	var a, b bytes.Buffer
	if html.Render(&a, orig) != nil || html.Render(&b, withTag) != nil {
		return false
	}
	return bytes.Equal(a.Bytes(), b.Bytes())
}

// probeTag stands in for the bridge's tag while its place is checked: only
// its being one script element matters, not its attributes, but for one
// that onlyAddsScript finds it by in the tree.
const (
	probeAttr = "data-embedgate-probe"
	probeTag  = `<script src="/x" defer ` + probeAttr + `></script>`
)

func hasAttr(n *html.Node, key string) bool {
	for _, a := range n.Attr {
		if a.Namespace == "" && a.Key == key {
			return true
		}
	}
	return false
}

func inTemplate(n *html.Node) bool {
	for p := n.Parent; p != nil; p = p.Parent {
		if p.Type == html.ElementNode && p.Data == "template" && p.Namespace == "" {
			return true
		}
	}
	return false
}

// insertAt returns body with tag inserted at offset at.
func insertAt(body, tag []byte, at int) []byte {
	out := make([]byte, 0, len(body)+len(tag))
	out = append(out, body[:at]...)
	out = append(out, tag...)
	return append(out, body[at:]...)
}

// lastBodyEnd tokenizes page, whose bytes from at on are the script tag,
// and returns the offset of the last </body> end tag before at (-1 if none)
// and whether the bytes from at tokenize as exactly one script start tag
// and its end tag.
func lastBodyEnd(page []byte, at int) (int, bool) {
	z := html.NewTokenizer(bytes.NewReader(page))
	last, pos := -1, 0
	tagStart, closed := false, false
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return last, errors.Is(z.Err(), io.EOF) && pos == len(page) && closed
		}
		n := len(z.Raw())
		switch {
		case pos < at:
			if tt == html.EndTagToken && tagIs(z, "body") {
				last = pos
			}
		case pos == at:
			tagStart = tt == html.StartTagToken && tagIs(z, "script")
		default:
			closed = tagStart && !closed && tt == html.EndTagToken && tagIs(z, "script") && pos+n == len(page)
		}
		pos += n
	}
}

// tagIs reports whether the current tag token of z is the element name
// (lower case). It reads the name from the token's raw bytes, as the
// tokenizer delimits it: TagName would copy every name it is asked for.
func tagIs(z *html.Tokenizer, name string) bool {
	raw := z.Raw()
	i := 1 // after '<'
	if i < len(raw) && raw[i] == '/' {
		i++
	}
	j := i
	for j < len(raw) && !endsTagName(raw[j]) {
		j++
	}
	if j-i != len(name) {
		return false
	}
	// ASCII case only, as the tokenizer lowers names (strings.EqualFold
	// would also fold U+017F to 's').
	for k := range len(name) {
		if c := raw[i+k]; c != name[k] && c+'a'-'A' != name[k] {
			return false
		}
	}
	return true
}

// endsTagName: HTML's tokenizer ends a tag name at whitespace, '/' or '>'.
func endsTagName(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\f', '\r', '/', '>':
		return true
	}
	return false
}
