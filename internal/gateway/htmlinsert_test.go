package gateway

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// TestScriptInsertionOnlyWhereMarkup is a regression test for injecting the
// bridge into raw text: a page whose last "</body" sits inside a <script>
// data block (user text escaped only for "</script") got the bridge tag
// inside that block, and the tag's own "</script>" ended the block early,
// turning the user's text after it into markup (stored XSS). The tag now
// goes only where the HTML tokenizer is between tokens: before the last
// real </body> end tag, or appended after a page that ends in markup.
func TestScriptInsertionOnlyWhereMarkup(t *testing.T) {
	const attack = `{"comment":"</body><img src=x onerror=alert(document.domain)>"}`
	for _, tc := range []struct {
		name, page string
		at         string // the page's text just after the insertion point; "$" = appended, "" = nowhere
	}{
		{"before </body>", "<html><body><p>x</p></body></html>", "</body></html>"},
		{"before the last real </body>", "<body>a</body>b</BODY >c", "</BODY >c"},
		{"upper case", "<BODY>x</BODY></HTML>", "</BODY></HTML>"},
		{"after a data block holding </body>", `<body>x</body><script type="application/json">` + attack + `</script>`, `</body><script type="application/json">`},
		{"data block holding </body>, no real one: appended", `<p>x</p><script type="application/json">` + attack + `</script>`, "$"},
		{"inside a comment", "<p>x<!-- </body> --></p>", "$"},
		{"inside a style", "<style>/* </body> */</style>", "$"},
		{"inside a textarea", "<textarea></body></textarea>", "$"},
		{"inside a title", "<title></body></title>", "$"},
		{"script data escaped", "<script><!-- <script></body></script> --></script>", "$"},
		{"no </body>", "<p>hi", "$"},
		{"empty page", "", "$"},
		{"cut off in raw text", `<script type="application/json">{"a":"</body>`, ""},
		{"cut off in a comment", "<p>x<!-- </body>", ""},
		{"cut off in a tag", `<div class="x`, ""},
		{"cut off in an attribute value", `<a title='</body>`, ""},
		{"after plaintext", "<plaintext></body>", ""},
		{"UTF-16", "\xff\xfe<\x00p\x00>\x00", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := scriptInsertion([]byte(tc.page), "text/html")
			switch tc.at {
			case "":
				if at != -1 {
					t.Fatalf("insertion at %d of %q, want none", at, tc.page)
				}
			case "$":
				if at != len(tc.page) {
					t.Fatalf("insertion at %d of %q, want appended (%d)", at, tc.page, len(tc.page))
				}
			default:
				if at < 0 || tc.page[at:] != tc.at && !strings.HasPrefix(tc.page[at:], tc.at) {
					t.Fatalf("insertion at %d of %q, want just before %q", at, tc.page, tc.at)
				}
			}
		})
	}
}

// TestScriptInsertionEncodings is a regression test for injecting into a
// page whose bytes are not ASCII where they look it: in ISO-2022-JP,
// after ESC $ B, the bytes "</script>" are two kanji and a "!" in a user's
// comment, so the tokenizer ended the page's script where the browser did
// not, and the tag landed inside it (its </script> then let the comment's
// <img onerror> run). UTF-16 without a byte order mark, and any page with
// an ESC byte (one that declares no charset may be detected as
// ISO-2022-JP), get nothing either; ASCII-compatible encodings, multi-byte
// ones included, are read as they are.
func TestScriptInsertionEncodings(t *testing.T) {
	const page = "<body>x</body>"
	for _, tc := range []struct {
		name, contentType, page string
		ok                      bool
	}{
		{"UTF-8", "text/html; charset=utf-8", page, true},
		{"undeclared", "text/html", page, true},
		{"windows-1252", "text/html; charset=windows-1252", page, true},
		{"Shift_JIS", "text/html; charset=shift_jis", "<body>\x81</body>", true},
		{"ISO-2022-JP in the header", "text/html; charset=iso-2022-jp", page, false},
		{"ISO-2022-JP in a meta", "text/html", `<meta charset="iso-2022-jp">` + page, false},
		{"UTF-16 in the header, no BOM", "text/html; charset=utf-16", "<\x00b\x00>\x00", false},
		{"UTF-16BE BOM", "text/html; charset=utf-8", "\xfe\xff\x00<", false},
		{"an ESC byte, undeclared", "text/html", "<body><script>var c=\"\x1b$B</body>\x1b(B\";</script></body>", false},
		{"replacement", "text/html; charset=iso-2022-kr", page, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if at := scriptInsertion([]byte(tc.page), tc.contentType); (at >= 0) != tc.ok {
				t.Fatalf("insertion at %d, want allowed=%v", at, tc.ok)
			}
		})
	}
}

// TestScriptInsertionForeignContent is a regression test for injecting
// into SVG and MathML: there a browser's tree builder does not treat
// <style>, <title> or <script> as raw text, the bare tokenizer does, so
// "<svg><style><p><script>var s=\"</style></body>…" put the tag inside the
// browser's script, and the rest of the string ran as markup. A page with
// foreign content gets the tag only where the full parser shows it adds one
// HTML script element and changes nothing else (and, with a <template>,
// is not inside it); ordinary inline SVG icons, with their <title> and
// <style>, still get it.
func TestScriptInsertionForeignContent(t *testing.T) {
	for _, tc := range []struct {
		name, page string
		ok         bool
	}{
		{"an icon with title and style", `<body><svg viewBox="0 0 8 8"><title>Close</title><style>path{fill:red}</style><path d="M0 0"/></svg><p>x</p></body>`, true},
		{"MathML", `<body><math><mi>x</mi><mo>=</mo><mn>1</mn></math></body>`, true},
		{"the attack", `<body><svg><style><p><script>var s="</style></body><svg><title><img src=x onerror=alert(1)>";</script><p>end</p></body>`, false},
		{"CDATA holding </body>", `<body><svg><![CDATA[ a > </body> ]]></svg></body>`, true},
		{"foreignObject", `<body><svg><foreignObject><div>x</div></foreignObject></svg></body>`, true},
		{"last </body> inside a template", `<body><template></body></template>`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.page)
			at := scriptInsertion(body, "text/html; charset=utf-8")
			if (at >= 0) != tc.ok {
				t.Fatalf("insertion at %d of %q, want allowed=%v", at, tc.page, tc.ok)
			}
			if at >= 0 && !onlyAddsScript(body, at) {
				t.Fatalf("insertion at %d of %q changes the document", at, tc.page)
			}
		})
	}
}

// TestInsertAt: the tag goes in at the offset, the page around it unchanged.
func TestInsertAt(t *testing.T) {
	got := string(insertAt([]byte("<body>x</body>"), []byte("<script></script>"), len("<body>x")))
	if got != "<body>x<script></script></body>" {
		t.Fatalf("got %q", got)
	}
}

// FuzzScriptInsertion: wherever scriptInsertion puts a tag, HTML's
// tokenizer reads the result with that tag as a script start tag at that
// offset, followed by its end tag, and the page around it byte for byte.
func FuzzScriptInsertion(f *testing.F) {
	for _, seed := range []string{
		"<html><body>x</body></html>", "<p>hi", "", "<script>a</body></script></body>",
		"<!-- </body> -->", "<title></body></title></body>", "<svg><![CDATA[</body>]]></svg></body>",
		"<a href='</body>'>", "<script><!--<script></body></script>--></script>", "x</body\t\n>y",
		"\r\n<body>\r\n</body>\r\n", "<\x00body></body>",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, page string) {
		at := scriptInsertion([]byte(page), "text/html")
		if at < 0 {
			return
		}
		tag := `<script src="/.embed/bridge.js" defer nonce="abc+/="></script>`
		out := insertAt([]byte(page), []byte(tag), at)
		if string(out[:at]) != page[:at] || string(out[at+len(tag):]) != page[at:] {
			t.Fatalf("the page changed around the tag")
		}
		z := html.NewTokenizer(bytes.NewReader(out))
		pos := 0
		for pos < at {
			if z.Next() == html.ErrorToken {
				t.Fatalf("%q: the tokenizer stopped at %d before the tag at %d", page, pos, at)
			}
			pos += len(z.Raw())
		}
		if pos != at {
			t.Fatalf("%q: a token spans the tag's offset %d (ends at %d)", page, at, pos)
		}
		if tt := z.Next(); tt != html.StartTagToken || string(z.Raw()) != tag[:len(tag)-len("</script>")] {
			t.Fatalf("%q: at %d the tokenizer reads %v %q, not the tag", page, at, tt, z.Raw())
		}
		if tt := z.Next(); tt != html.EndTagToken || string(z.Raw()) != "</script>" {
			t.Fatalf("%q: after the tag the tokenizer reads %v %q, not its end tag", page, tt, z.Raw())
		}
	})
}

// BenchmarkScriptInsertion is the cost of placing the bridge in a 1 MB page
// (the tokenizer's pass over it), paid once per injected document load.
func BenchmarkScriptInsertion(b *testing.B) {
	row := `<div class="row"><a href="/deals/7">Deal 7</a> <span>text text text</span></div>` + "\n"
	page := []byte("<html><body>" + strings.Repeat(row, 12000) + "</body></html>")
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		if scriptInsertion(page, "text/html; charset=utf-8") < 0 {
			b.Fatal("no place for the tag")
		}
	}
}
