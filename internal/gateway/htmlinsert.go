package gateway

import (
	"bytes"
	"errors"
	"io"

	"golang.org/x/net/html"
)

// scriptInsertion returns the offset in body where a script tag goes so
// that a browser parses it as a script element of the page, or -1 when
// there is no such place: the page is then sent as it came.
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
func scriptInsertion(body []byte) int {
	if isUTF16(body) {
		return -1 // the tag's ASCII bytes would not be markup there
	}
	page := append(append(make([]byte, 0, len(body)+len(probeTag)), body...), probeTag...)
	end, appendable := lastBodyEnd(page, len(body))
	switch {
	case end >= 0:
		return end
	case appendable:
		return len(body)
	}
	return -1
}

// probeTag stands in for the bridge's tag when checking the end of a page:
// only its being one script element matters, not its attributes.
const probeTag = `<script src="/x" defer></script>`

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

// isUTF16 reports a UTF-16 byte order mark, which a browser decodes by
// whatever the header says.
func isUTF16(b []byte) bool {
	return bytes.HasPrefix(b, []byte{0xFE, 0xFF}) || bytes.HasPrefix(b, []byte{0xFF, 0xFE})
}
