package reason

import (
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
