// Package funclen keeps floe's production code readable: no function in
// internal/ or cmd/ may grow past maxLines (GUIDE.md, issue 25). Long
// functions hide the order of side effects and their undo paths, which is
// where create/restore bugs have come from.
package funclen

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// maxLines is the longest a function may be, counted from its `func`
// keyword to its closing brace, both lines included.
const maxLines = 100

// longFunc is one function over the limit.
type longFunc struct {
	lines int
	pos   string
	name  string
}

// funcName returns "Name" or "(recv) Name" as the source spells it.
func funcName(fn *ast.FuncDecl) string {
	if fn.Recv == nil || len(fn.Recv.List) == 0 {
		return fn.Name.Name
	}
	var recv string
	switch t := fn.Recv.List[0].Type.(type) {
	case *ast.StarExpr:
		recv = "*" + fmt.Sprint(t.X)
	default:
		recv = fmt.Sprint(t)
	}
	return "(" + recv + ") " + fn.Name.Name
}

// longFuncs parses every non-test Go file under root's dirs and returns the
// functions longer than limit, longest first.
func longFuncs(root string, dirs []string, limit int) ([]longFunc, int, error) {
	fset := token.NewFileSet()
	var out []longFunc
	files := 0
	for _, dir := range dirs {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			files++
			rel, _ := filepath.Rel(root, path)
			for _, decl := range f.Decls {
				fn, ok := decl.(*ast.FuncDecl)
				if !ok || fn.Body == nil {
					continue
				}
				start := fset.Position(fn.Pos()).Line
				end := fset.Position(fn.End()).Line
				if n := end - start + 1; n > limit {
					out = append(out, longFunc{lines: n, pos: fmt.Sprintf("%s:%d", rel, start), name: funcName(fn)})
				}
			}
			return nil
		})
		if err != nil {
			return nil, files, err
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].lines != out[j].lines {
			return out[i].lines > out[j].lines
		}
		return out[i].pos < out[j].pos
	})
	return out, files, nil
}

func TestNoFunctionOver100Lines(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found from %s: %v", root, err)
	}
	long, files, err := longFuncs(root, []string{"internal", "cmd"}, maxLines)
	if err != nil {
		t.Fatal(err)
	}
	// A walk that found nothing would pass vacuously.
	if files < 50 {
		t.Fatalf("only %d Go files found under internal/ and cmd/ of %s", files, root)
	}
	for _, f := range long {
		t.Errorf("%s: %s is %d lines (limit %d): split it into named steps", f.pos, f.name, f.lines, maxLines)
	}
}

// TestLongFuncsCounts checks the counter itself on a known function, so a
// miscount cannot make the guard pass.
func TestLongFuncsCounts(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "internal", "p"), 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("package p\n\n// doc\nfunc long() {\n")
	for range 99 {
		b.WriteString("\t_ = 1\n")
	}
	b.WriteString("}\n\nfunc (t *T) short() {}\n\ntype T struct{}\n")
	b.WriteString("func (T) exact() {\n")
	for range 98 {
		b.WriteString("\t_ = 1\n")
	}
	b.WriteString("}\n")
	if err := os.WriteFile(filepath.Join(dir, "internal", "p", "p.go"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// A test file is not production code.
	if err := os.WriteFile(filepath.Join(dir, "internal", "p", "p_test.go"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	long, files, err := longFuncs(dir, []string{"internal"}, maxLines)
	if err != nil {
		t.Fatal(err)
	}
	if files != 1 || len(long) != 1 || long[0].name != "long" || long[0].lines != 101 || long[0].pos != "internal/p/p.go:4" {
		t.Fatalf("got files=%d long=%+v, want one: long, 101 lines at internal/p/p.go:4", files, long)
	}
}
