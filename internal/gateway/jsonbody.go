package gateway

import (
	"bytes"
	"encoding/json"
)

// CheckMemberNames holds a JSON object's top-level member names to allowed,
// exactly and each at most once, and returns the first offending name with
// what is wrong with it ("unknown field", "given twice"); problem is "" when
// all are fine. encoding/json alone matches names case-insensitively
// ("SUB", "Subject") and lets the last of a repeated name win silently: a
// body could say one thing to a reader and another to the decoder. A body
// that is not a JSON object is left to the decoder's own messages.
func CheckMemberNames(body []byte, allowed map[string]bool) (name, problem string) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", ""
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", ""
		}
		name, _ := tok.(string)
		if !allowed[name] {
			return name, "unknown field"
		}
		if seen[name] {
			return name, "given twice"
		}
		seen[name] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "", ""
		}
	}
	return "", ""
}
