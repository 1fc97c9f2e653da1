package reason

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"testing"
)

// All lists every Reason constant declared in this package, once: the
// tables that must cover each reason are checked against it.
func TestAllListsEveryReason(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "reason.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "Reason" {
				for _, n := range vs.Names {
					declared = append(declared, n.Name)
				}
			}
		}
	}
	if len(declared) != len(All()) {
		t.Fatalf("%d Reason constants declared, All lists %d", len(declared), len(All()))
	}
	seen := map[Reason]bool{}
	for _, r := range All() {
		if seen[r] {
			t.Fatalf("%q twice in All", r)
		}
		seen[r] = true
	}
}

type causeError struct{ what string }

func (c *causeError) Error() string { return c.what }

// A Cause is reachable with errors.As and changes neither the text nor the
// errors.Is match on the reason.
func TestErrorCause(t *testing.T) {
	e := Errorf(Malformed, "exp is not after iat")
	e.Cause = &causeError{"order"}
	var err error = e
	if err.Error() != "malformed: exp is not after iat" {
		t.Fatalf("text %q", err.Error())
	}
	if !errors.Is(err, Malformed.Err()) || errors.Is(err, Expired.Err()) {
		t.Fatal("errors.Is on the reason changed")
	}
	c, ok := errors.AsType[*causeError](err)
	if !ok || c.what != "order" {
		t.Fatalf("cause %v, %v", c, ok)
	}
	if _, ok := errors.AsType[*causeError](Errorf(Malformed, "x")); ok {
		t.Fatal("a cause without one set")
	}
}
