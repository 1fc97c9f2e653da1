package token

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/reason"
)

// tokenOfLen returns a validly signed acme token exactly n bytes long, padded
// through a claim and a header parameter.
func tokenOfLen(t *testing.T, n int) string {
	t.Helper()
	k := keys()
	for hpad := 0; hpad < 4; hpad++ {
		for ppad := n*3/4 - 400; ppad < n*3/4; ppad++ {
			c := validClaims("acme")
			c["pad"] = strings.Repeat("p", ppad)
			raw := sign(t, jwt.SigningMethodHS256, k.secretA, map[string]any{"x": strings.Repeat("h", hpad)}, c)
			if len(raw) == n {
				return raw
			}
			if len(raw) > n {
				break
			}
		}
	}
	t.Fatalf("no token of length %d", n)
	return ""
}

func TestSizeLimit(t *testing.T) {
	reg := registry(t)
	atLimit := tokenOfLen(t, MaxTokenSize)
	_, err := testVerifier().Verify(context.Background(), atLimit, reg, nil)
	wantReason(t, err, "")

	// One byte more is refused although it is validly signed, and before any
	// decoding: the registry is never asked about its iss.
	over := tokenOfLen(t, MaxTokenSize+1)
	spy := &countingTenants{Tenants: reg}
	_, err = testVerifier().Verify(context.Background(), over, spy, nil)
	wantReason(t, err, reason.Malformed)
	if len(spy.calls) != 0 {
		t.Fatalf("registry consulted for an oversized token: %v", spy.calls)
	}
	_, err = testVerifier().Verify(context.Background(), strings.Repeat("\xff", MaxTokenSize+1), reg, nil)
	wantReason(t, err, reason.Malformed)
}

// flipTrailingBits sets an unused low bit in the last character of an
// unpadded base64url segment whose length is not a multiple of 4: lenient
// decoders read the same bytes, strict ones refuse it.
func flipTrailingBits(t *testing.T, seg string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if len(seg)%4 == 0 {
		t.Fatalf("segment length %d has no spare bits", len(seg))
	}
	i := strings.IndexByte(alphabet, seg[len(seg)-1])
	out := seg[:len(seg)-1] + string(alphabet[i+1])
	a, err1 := base64.RawURLEncoding.DecodeString(seg)
	b, err2 := base64.RawURLEncoding.DecodeString(out)
	if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
		t.Fatalf("flip did not keep the lenient decoding")
	}
	return out
}

func TestMalformedStructure(t *testing.T) {
	reg := registry(t)
	k := keys()
	valid := signAlg(t, "HS256", "a1", validClaims("acme"))
	p := strings.Split(valid, ".")
	h, pl, s := p[0], p[1], p[2]
	const claims = `{"iss":"acme","aud":"acme","sub":"s","jti":"j","iat":1700000000,"exp":1700000060}`
	const hdr = `{"alg":"HS256","kid":"a1"}`
	hs := func(header, payload string) string { return rawHS(header, payload, k.secretA) }
	deep := strings.Repeat("[", 40) + strings.Repeat("]", 40)
	tests := []struct {
		name string
		raw  string
	}{
		{"empty", ""},
		{"one segment", h},
		{"two segments", h + "." + pl},
		{"four segments", valid + "." + s},
		{"trailing dot", valid + "."},
		{"empty header", "." + pl + "." + s},
		{"empty payload", h + ".." + s},
		{"padding", h + "." + pl + "==." + s},
		{"padding on signature", valid + "="},
		{"plus", h + "." + pl + "." + "+" + s[1:]},
		{"slash", h + "." + pl + "." + "/" + s[1:]},
		{"space", " " + valid},
		{"trailing space", valid + " "},
		{"LF inside the payload", h + "." + pl[:5] + "\n" + pl[5:] + "." + s},
		{"CRLF inside the signature", h + "." + pl + "." + s[:5] + "\r\n" + s[5:]},
		{"tab", h + ".\t" + pl + "." + s},
		{"non-canonical signature bits", h + "." + pl + "." + flipTrailingBits(t, s)},
		{"signature of impossible length", valid + "AA"},
		{"header is an array", hs(`["alg","HS256"]`, claims)},
		{"header is a string", hs(`"HS256"`, claims)},
		{"header is null", hs(`null`, claims)},
		{"payload is an array", hs(hdr, `[1]`)},
		{"payload is a number", hs(hdr, `1700000000`)},
		{"payload is not JSON", hs(hdr, `iss=acme`)},
		{"header trailing garbage", hs(hdr+`x`, claims)},
		{"payload trailing garbage", hs(hdr, claims+`x`)},
		{"payload second object", hs(hdr, claims+`{}`)},
		{"payload trailing comma", hs(hdr, claims[:len(claims)-1]+`,}`)},
		{"payload truncated", hs(hdr, claims[:len(claims)-1])},
		{"duplicate alg", hs(`{"alg":"HS256","alg":"none"}`, claims)},
		{"duplicate iss", hs(hdr, `{"iss":"globex",`+claims[1:])},
		{"duplicate nested key", hs(hdr, `{"org":{"id":1,"id":2},`+claims[1:])},
		{"invalid UTF-8", hs(hdr, `{"sub2":"`+"\xff\xfe"+`",`+claims[1:])},
		{"too deep", hs(hdr, `{"x":`+deep+`,`+claims[1:])},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := testVerifier().Verify(context.Background(), tc.raw, reg, nil)
			wantReason(t, err, reason.Malformed)
		})
	}
	// The same decoder accepts what the strict rules allow.
	for _, ok := range []string{hs(hdr, claims), hs(hdr, claims+" \n"), hs(` {"alg" : "HS256"} `, claims)} {
		_, err := testVerifier().Verify(context.Background(), ok, reg, nil)
		wantReason(t, err, "")
	}
}

// TestDecodeObjectShape covers the member count and nesting scan that
// decodeObject uses to find duplicate names: names that differ only in
// escaping are duplicates, and quotes, colons and brackets inside strings
// count for nothing.
func TestDecodeObjectShape(t *testing.T) {
	for _, bad := range []string{
		`{"iss":"acme","\u0069ss":"globex"}`,
		`{"a":{"b":1},"a":{"b":1}}`,
		`{"a":[{"x":1,"y":2,"x":3}]}`,
		`{"a":"\":{[","a":"x"}`,
		`{"a":` + strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth) + `}`,
	} {
		if _, err := decodeObject([]byte(bad)); err == nil {
			t.Errorf("decodeObject(%s) accepted", bad)
		}
	}
	for _, ok := range []string{
		`{"a":"x\":{[\\","b":"\\\"","c":{"d":[1,{"e":null}]},"f":[]}`,
		`{"a":` + strings.Repeat("[", maxJSONDepth-1) + strings.Repeat("]", maxJSONDepth-1) + `}`,
		"\t{}\r\n",
	} {
		if _, err := decodeObject([]byte(ok)); err != nil {
			t.Errorf("decodeObject(%s): %v", ok, err)
		}
	}
}
