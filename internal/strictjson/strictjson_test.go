package strictjson

import (
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"
)

type inner struct {
	Secret string `json:"secret"`
	KID    string `json:"kid,omitempty"`
}

type duration time.Duration

func (d *duration) UnmarshalJSON([]byte) error { return nil }

type outer struct {
	ID      string            `json:"id"`
	Keys    []inner           `json:"keys"`
	One     *inner            `json:"one"`
	Meta    map[string]any    `json:"meta"`
	Labels  map[string]string `json:"labels"`
	Any     any               `json:"any"`
	TTL     duration          `json:"ttl"`
	Skipped string            `json:"-"`
	NoTag   string
}

// Each body decodes "successfully" with encoding/json, into something
// other than what its first spelling says.
func TestCheckNames(t *testing.T) {
	for _, c := range []struct {
		body, path, name, problem string
	}{
		{body: `{"id":"a","keys":[{"secret":"s"}],"one":{"kid":"k"},"meta":{"x":{"y":1}},"labels":{"a":"b"},"any":[{"k":1}],"ttl":"1s","NoTag":"n"}`},
		{body: `not json`}, // the decoder's error, not ours
		{body: `{"id":"a","ID":"b"}`, name: "ID", problem: "unknown field"},
		{body: `{"id":"a","id":"b"}`, name: "id", problem: "given twice"},
		{body: `{"keys":[{"secret":"s"},{"Secret":"t"}]}`, path: "keys[1]", name: "Secret", problem: "unknown field"},
		{body: `{"one":{"kid":"a","kid":"b"}}`, path: "one", name: "kid", problem: "given twice"},
		{body: `{"meta":{"plan":"a","plan":"b"}}`, path: "meta", name: "plan", problem: "given twice"},
		{body: `{"any":{"x":[{"y":1,"y":2}]}}`, path: "any.x[0]", name: "y", problem: "given twice"},
		{body: `{"Skipped":"x"}`, name: "Skipped", problem: "unknown field"},
		{body: `{"notag":"x"}`, name: "notag", problem: "unknown field"},
		{body: `{"ttl":{"Whatever":1,"Whatever":2}}`}, // its own UnmarshalJSON decides
		{body: `{"i\u0064":"a","id":"b"}`, name: "id", problem: "given twice"},
	} {
		err := CheckNames([]byte(c.body), &outer{})
		if c.problem == "" {
			if err != nil {
				t.Errorf("%s: %v, want nil", c.body, err)
			}
			continue
		}
		ne, ok := errors.AsType[*NameError](err)
		if !ok || ne.Path != c.path || ne.Name != c.name || ne.Problem != c.problem {
			t.Errorf("%s: %v, want %s %q %s", c.body, err, c.path, c.name, c.problem)
		}
	}
}

// Decode is the whole strict read: names (CheckNames), unknown fields,
// and nothing after the value.
func TestDecode(t *testing.T) {
	type body struct {
		Token string `json:"token"`
		N     any    `json:"n"`
	}
	for in, want := range map[string]func(error) bool{
		`{"token":"a","token":"b"}`: func(err error) bool { _, ok := errors.AsType[*NameError](err); return ok },
		`{"TOKEN":"a"}`:             func(err error) bool { _, ok := errors.AsType[*NameError](err); return ok },
		`{"token":"a"} {}`:          func(err error) bool { return errors.Is(err, ErrTrailingData) },
		`{"token":1}`:               func(err error) bool { _, ok := errors.AsType[*json.UnmarshalTypeError](err); return ok },
		``:                          func(err error) bool { return errors.Is(err, io.EOF) },
	} {
		var b body
		if err := Decode([]byte(in), &b, false); !want(err) {
			t.Errorf("%q: %v", in, err)
		}
	}
	var b body
	if err := Decode([]byte(`{"token":"a","n":12}`), &b, true); err != nil || b.Token != "a" || b.N != json.Number("12") {
		t.Fatalf("%+v %v", b, err)
	}
}
