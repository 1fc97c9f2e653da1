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
func decodeObject(b []byte) (map[string]any, error) {
	if !utf8.Valid(b) {
		return nil, errNotUTF8
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxErr(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errNotObject
	}
	obj, err := readObject(dec, 1)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errTrailingData
	}
	return obj, nil
}

// syntaxErr keeps only the offset of a JSON syntax error: its message may
// quote a byte of the token.
func syntaxErr(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return errors.New("invalid JSON at byte " + strconv.FormatInt(se.Offset, 10))
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errors.New("truncated JSON")
	}
	return errors.New("invalid JSON")
}

// readObject reads members after an opening '{' up to and including '}'.
func readObject(dec *json.Decoder, depth int) (map[string]any, error) {
	if depth > maxJSONDepth {
		return nil, errTooDeep
	}
	obj := map[string]any{}
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxErr(err)
		}
		if d, ok := tok.(json.Delim); ok && d == '}' {
			return obj, nil
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errors.New("invalid JSON: member name is not a string")
		}
		if _, dup := obj[name]; dup {
			return nil, errDuplicateKey
		}
		if obj[name], err = readValue(dec, depth); err != nil {
			return nil, err
		}
	}
}

// readArray reads elements after an opening '[' up to and including ']'.
func readArray(dec *json.Decoder, depth int) ([]any, error) {
	if depth > maxJSONDepth {
		return nil, errTooDeep
	}
	arr := []any{}
	for dec.More() {
		v, err := readValue(dec, depth)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, syntaxErr(err)
	}
	return arr, nil
}

// readValue reads one value: string, json.Number, bool, nil, object or array.
func readValue(dec *json.Decoder, depth int) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxErr(err)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	switch d {
	case '{':
		return readObject(dec, depth+1)
	case '[':
		return readArray(dec, depth+1)
	}
	return nil, errors.New("invalid JSON: unexpected " + d.String())
}
