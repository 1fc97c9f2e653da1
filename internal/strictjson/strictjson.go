// Package strictjson holds JSON input to the names its Go type declares.
// encoding/json matches member names case-insensitively and lets the last
// of a repeated name win: {"subject": "jane", "Subject": ""} decodes as
// "", and a reader who checks the first spelling sees another body than the
// decoder. Every body the gateway reads from a client, an admin or a file
// goes through CheckNames before it is decoded.
package strictjson

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"strings"
)

// NameError is a member name the type does not declare, in exactly that
// spelling, or one given twice in the same object. Path is where it sits,
// dotted ("tenants[2].frame_ancestors").
type NameError struct {
	Path, Name, Problem string // Problem: "unknown field" or "given twice"
}

// Field is the member's dotted path with its name ("claims.plan").
func (e *NameError) Field() string { return join(e.Path, e.Name) }

func (e *NameError) Error() string {
	msg := fmt.Sprintf("field %q given twice", e.Name)
	if e.Problem == "unknown field" {
		msg = fmt.Sprintf("unknown field %q", e.Name)
	}
	if e.Path == "" {
		return msg
	}
	return e.Path + ": " + msg
}

// CheckNames walks data as the type of v (a pointer, as for json.Unmarshal)
// would decode it and returns a *NameError for the first member name that
// is not a declared field name of its struct, exactly, or that repeats a
// name of the same object (in a map too). Values of a type with its own
// UnmarshalJSON or UnmarshalText are not looked into. Syntax and type
// errors are left to the decoder: CheckNames returns nil for them.
func CheckNames(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	err := walk(dec, reflect.TypeOf(v), "")
	if ne, ok := errors.AsType[*NameError](err); ok {
		return ne
	}
	return nil
}

// ErrTrailingData is Decode's error for a body with more after its value.
var ErrTrailingData = errors.New("data after the JSON value")

// Decode decodes data into v as every body the gateway reads is decoded:
// CheckNames, then encoding/json with unknown fields refused (and numbers
// kept as json.Number when useNumber), then nothing may follow the value.
// Its error is a *NameError, the decoder's own (io.EOF for no value at all)
// or ErrTrailingData.
func Decode(data []byte, v any, useNumber bool) error {
	if err := CheckNames(data, v); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if useNumber {
		dec.UseNumber()
	}
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return ErrTrailingData
	}
	return nil
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// walk reads one value from dec as type t (nil: any).
func walk(dec *json.Decoder, t reflect.Type, path string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		if t.Implements(jsonUnmarshaler) || t.Implements(textUnmarshaler) {
			return skip(dec)
		}
		t = t.Elem()
	}
	if t != nil && (reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler)) {
		return skip(dec)
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		return walkObject(dec, t, path)
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walk(dec, elem, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		_, err := dec.Token() // ]
		return err
	}
	return nil
}

// walkObject reads an object's members after its '{'.
func walkObject(dec *json.Decoder, t reflect.Type, path string) error {
	var fields map[string]reflect.Type
	var elem reflect.Type
	if t != nil {
		if t.Kind() == reflect.Struct {
			fields = structFields(t)
		} else if t.Kind() == reflect.Map {
			elem = t.Elem()
		}
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string)
		if seen[name] {
			return &NameError{Path: path, Name: name, Problem: "given twice"}
		}
		seen[name] = true
		next := elem
		if fields != nil {
			ft, ok := fields[name]
			if !ok {
				return &NameError{Path: path, Name: name, Problem: "unknown field"}
			}
			next = ft
		}
		if err := walk(dec, next, join(path, name)); err != nil {
			return err
		}
	}
	_, err := dec.Token() // }
	return err
}

// structFields maps each JSON name of t's exported fields, as
// encoding/json spells it, to the field's type; embedded structs without
// a tag contribute their fields.
func structFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() && !f.Anonymous {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				maps.Copy(out, structFields(ft))
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func skip(dec *json.Decoder) error {
	var raw json.RawMessage
	return dec.Decode(&raw)
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
