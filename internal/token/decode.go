package token

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/embedgate/embedgate/internal/reason"
)

// maxJSONDepth bounds nesting in header and payload. Real claims nest two or
// three levels; the bound keeps the recursive decoder's work predictable.
const maxJSONDepth = 32

// b64 is the only encoding a JWS compact segment may use (RFC 7515 §2):
// unpadded base64url with canonical trailing bits.
var b64 = base64.RawURLEncoding.Strict()

// segments is a token split into its three parts, decoded.
type segments struct {
	signingInput string // header.payload, exactly as received
	header       map[string]any
	payload      map[string]any
	signature    []byte
}

// splitToken checks the token's shape and decodes its three segments. Any
// failure is reason.Malformed. It refuses, before decoding, every byte outside
// the base64url alphabet and '.', because Go's base64 decoder silently skips
// CR and LF even in strict mode, which would let two different strings carry
// the same token.
func splitToken(raw string) (*segments, error) {
	dots := [2]int{}
	n := 0
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		case c == '.':
			if n == 2 {
				return nil, reason.Errorf(reason.Malformed, "token has more than three segments")
			}
			dots[n] = i
			n++
		default:
			return nil, reason.Errorf(reason.Malformed, "token has a byte outside base64url at offset %d", i)
		}
	}
	if n != 2 {
		return nil, reason.Errorf(reason.Malformed, "token has %d segments, want 3", n+1)
	}
	h, p, s := raw[:dots[0]], raw[dots[0]+1:dots[1]], raw[dots[1]+1:]
	hb, err := b64.DecodeString(h)
	if err != nil || len(hb) == 0 {
		return nil, reason.Errorf(reason.Malformed, "header is not base64url")
	}
	pb, err := b64.DecodeString(p)
	if err != nil || len(pb) == 0 {
		return nil, reason.Errorf(reason.Malformed, "payload is not base64url")
	}
	sig, err := b64.DecodeString(s)
	if err != nil {
		return nil, reason.Errorf(reason.Malformed, "signature is not base64url")
	}
	seg := &segments{signingInput: raw[:dots[1]], signature: sig}
	if seg.header, err = decodeObject(hb); err != nil {
		return nil, reason.Errorf(reason.Malformed, "header: %v", err)
	}
	if seg.payload, err = decodeObject(pb); err != nil {
		return nil, reason.Errorf(reason.Malformed, "payload: %v", err)
	}
	return seg, nil
}

// Errors from decodeObject; they name no content, so they are safe to log.
var (
	errNotUTF8      = errors.New("not valid UTF-8")
	errNotObject    = errors.New("not a JSON object")
	errDuplicateKey = errors.New("duplicate member name")
	errTrailingData = errors.New("data after the JSON object")
	errTooDeep      = errors.New("nested too deeply")
)

// decodeObject decodes exactly one JSON object, with numbers as json.Number.
// It is stricter than encoding/json: it refuses duplicate member names at any
// depth (encoding/json keeps the last, so two parsers could disagree on the
// iss or aud of one token), invalid UTF-8 (encoding/json silently replaces it)
// and anything after the object (a json.Decoder, as golang-jwt's JSON-number
// path uses, ignores it).
//
// encoding/json decodes the value in one pass; shape then counts the members
// and the nesting in the (by then known valid) text. Decoding into maps
// drops only duplicate names, so the decoded maps hold fewer members than
// the text exactly when some object repeats a name.
func decodeObject(b []byte) (map[string]any, error) {
	if !utf8.Valid(b) {
		return nil, errNotUTF8
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, syntaxErr(err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errNotObject
	}
	for _, c := range b[dec.InputOffset():] {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return nil, errTrailingData
		}
	}
	members, depth := shape(b)
	if depth > maxJSONDepth {
		return nil, errTooDeep
	}
	if members != countMembers(obj) {
		return nil, errDuplicateKey
	}
	return obj, nil
}

// shape counts the object members (the ':' outside strings) and the deepest
// nesting of objects and arrays in valid JSON text; the outermost value is
// at depth 1.
func shape(b []byte) (members, depth int) {
	d := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++ // skip the escaped byte, which may be a quote
				}
			}
		case '{', '[':
			if d++; d > depth {
				depth = d
			}
		case '}', ']':
			d--
		case ':':
			members++
		}
	}
	return members, depth
}

// countMembers is the number of members in the decoded objects of v, at
// every depth.
func countMembers(v any) int {
	n := 0
	switch v := v.(type) {
	case map[string]any:
		n += len(v)
		for _, e := range v {
			n += countMembers(e)
		}
	case []any:
		for _, e := range v {
			n += countMembers(e)
		}
	}
	return n
}

// syntaxErr keeps only the offset of a JSON syntax error: its message may
// quote a byte of the token.
func syntaxErr(err error) error {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return errors.New("invalid JSON at byte " + strconv.FormatInt(se.Offset, 10))
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("truncated JSON")
	}
	return errors.New("invalid JSON")
}

// CheckShape applies the verifier's decoding limits (size, base64url, strict
// JSON, nesting depth, duplicate names) to a compact token without checking
// its signature or claims. A minter calls it before handing a token out, so
// that it never issues one its own exchange would refuse as malformed.
func CheckShape(raw string) error {
	if len(raw) > MaxTokenSize {
		return reason.Errorf(reason.Malformed, "the token would be %d bytes, over the %d-byte limit: send fewer claims", len(raw), MaxTokenSize)
	}
	if _, err := splitToken(raw); err != nil {
		return reason.Errorf(reason.Malformed, "the exchange would refuse this token (%s; nesting is limited to %d levels)", reason.Ensure(err, reason.Malformed).Detail, maxJSONDepth)
	}
	return nil
}
