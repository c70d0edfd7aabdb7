package access

import (
	"go/ast"
	"go/constant"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestEndsAreDocumented holds the code's ends and rejection reasons to the
// tables of the docs, both ways: every end the code can write is in
// docs/OPERATIONS.md's table of ends, every reason in docs/CONFIG.md's table
// of reasons, and each row of those tables is something the code writes.
//
// What the code can write it finds by type-checking every sluice package:
// each constant of type End or Reason, however it is spelled ("eof" passed
// where an End is wanted counts), and no End or Reason made from a value
// that is not a constant, outside this package.
func TestEndsAreDocumented(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not on PATH")
	}
	ends, reasons := producedByCode(t)
	docEnds := docColumn(t, "../../docs/OPERATIONS.md", "| `end` | TCP | UDP |")
	docReasons := docColumn(t, "../../docs/CONFIG.md", "| reason | refused because |")
	if !slices.Contains(docEnds, string(Rejected("<reason>"))) {
		t.Errorf("docs/OPERATIONS.md: the table of ends has no row for %s", Rejected("<reason>"))
	}
	docEnds = slices.DeleteFunc(docEnds, func(e string) bool { return strings.HasPrefix(e, rejectedPrefix) })
	same(t, "end", ends, docEnds, "docs/OPERATIONS.md")
	same(t, "rejection reason", reasons, docReasons, "docs/CONFIG.md")
}

// same reports the differences between what the code writes and what the
// doc lists.
func same(t *testing.T, what string, code, doc []string, docName string) {
	t.Helper()
	for _, v := range code {
		if !slices.Contains(doc, v) {
			t.Errorf("the code writes the %s %q, which %s does not list", what, v, docName)
		}
	}
	for _, v := range doc {
		if !slices.Contains(code, v) {
			t.Errorf("%s lists the %s %q, which no code writes", docName, what, v)
		}
	}
}

// docColumn returns the first column of the Markdown table that starts
// with header in the file, without its backquotes.
func docColumn(t *testing.T, file, header string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), header+"\n")
	if !ok {
		t.Fatalf("%s has no table headed %q", file, header)
	}
	var col []string
	for _, line := range strings.Split(table, "\n")[1:] { // past the |---| row
		cells := strings.Split(line, "|")
		if !strings.HasPrefix(line, "|") || len(cells) < 3 {
			break
		}
		col = append(col, strings.Trim(strings.TrimSpace(cells[1]), "`"))
	}
	return col
}

// producedByCode type-checks the sluice packages (not their tests) and
// returns the constant values of type End and of type Reason they hold,
// empty ones aside (an empty Reason means admitted, an empty End not ended
// yet).
func producedByCode(t *testing.T) (ends, reasons []string) {
	t.Helper()
	exports, pkgs := listPackages(t)
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		return os.Open(exports[path])
	})
	for _, p := range pkgs {
		var files []*ast.File
		for _, name := range p.files {
			f, err := parser.ParseFile(fset, filepath.Join(p.dir, name), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}}
		if _, err := (&types.Config{Importer: imp}).Check(p.path, fset, files, info); err != nil {
			t.Fatalf("type-checking %s: %v", p.path, err)
		}
		for expr, tv := range info.Types {
			kind := vocabulary(tv.Type)
			switch {
			case kind == "" || tv.IsType():
			case tv.Value != nil:
				if v := constant.StringVal(tv.Value); v != "" && kind == "End" && !slices.Contains(ends, v) {
					ends = append(ends, v)
				} else if v != "" && kind == "Reason" && !slices.Contains(reasons, v) {
					reasons = append(reasons, v)
				}
			case p.path != "sluice/internal/access" && isConversion(info, expr):
				t.Errorf("%s: an access.%s made from a value that is not a constant; build ends in package access",
					fset.Position(expr.Pos()), kind)
			}
		}
	}
	if len(ends) == 0 || len(reasons) == 0 {
		t.Fatalf("found ends %v and reasons %v: the search is broken", ends, reasons)
	}
	return ends, reasons
}

// vocabulary returns "End" or "Reason" when typ is this package's End or
// Reason, and "" otherwise.
func vocabulary(typ types.Type) string {
	named, ok := typ.(*types.Named)
	if !ok || named.Obj().Pkg() == nil || named.Obj().Pkg().Path() != "sluice/internal/access" {
		return ""
	}
	if name := named.Obj().Name(); name == "End" || name == "Reason" {
		return name
	}
	return ""
}

// isConversion reports whether expr converts a value to a type.
func isConversion(info *types.Info, expr ast.Expr) bool {
	call, ok := expr.(*ast.CallExpr)
	return ok && info.Types[call.Fun].IsType()
}

// pkg is one sluice package to type-check.
type pkg struct {
	path, dir string
	files     []string
}

// listPackages returns the export data of every package the sluice
// packages depend on (for the importer) and the sluice packages with their
// non-test Go files for this platform.
func listPackages(t *testing.T) (map[string]string, []pkg) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-export",
		"-f", "{{.ImportPath}}\t{{.Export}}\t{{.Dir}}\t{{if .Module}}{{.Module.Path}}{{end}}\t{{join .GoFiles \" \"}}", "sluice/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	exports := map[string]string{}
	var pkgs []pkg
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		exports[f[0]] = f[1]
		if f[3] == "sluice" && f[4] != "" {
			pkgs = append(pkgs, pkg{path: f[0], dir: f[2], files: strings.Fields(f[4])})
		}
	}
	return exports, pkgs
}
