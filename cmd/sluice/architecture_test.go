package main

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// modules names, as the package table of ARCHITECTURE.md writes them, the
// modules outside the standard library that a package may import.
var modules = map[string]string{
	"x/sys":      "golang.org/x/sys",
	"go-toml":    "github.com/pelletier/go-toml/v2",
	"prometheus": "github.com/prometheus/client_golang",
	"etcd":       "go.etcd.io/etcd", // client/v3, and api/v3 for its errors
	"zap":        "go.uber.org/zap",
}

// TestArchitectureTable holds the package table of ARCHITECTURE.md to the
// code: every package of the module has a row, and each row's last column
// names exactly what the package's own code imports directly, on Linux or
// elsewhere (sluice packages by their path under internal/, other modules
// by their names in modules).
func TestArchitectureTable(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not on PATH")
	}
	table := packageTable(t)
	actual := directImports(t)
	for pkg, imports := range directImportsOn(t, "darwin") {
		actual[pkg] = append(actual[pkg], imports...)
	}
	for pkg, imports := range actual {
		rel := strings.TrimPrefix(pkg, "sluice/")
		listed, ok := table[rel]
		if !ok {
			t.Errorf("ARCHITECTURE.md: no row for package %s", rel)
			continue
		}
		got := tableNames(t, rel, imports)
		if !slices.Equal(got, listed) {
			t.Errorf("ARCHITECTURE.md: %s imports %s; its row says %s", rel, strings.Join(got, ", "), strings.Join(listed, ", "))
		}
	}
	for rel := range table {
		if _, ok := actual["sluice/"+rel]; !ok {
			t.Errorf("ARCHITECTURE.md: a row for %s, which is not a package of the module", rel)
		}
	}
}

// tableNames returns imports as the table writes them, sorted and without
// duplicates: sluice's own packages by their path under internal/, other
// modules by their names in modules; the standard library is left out.
func tableNames(t *testing.T, pkg string, imports []string) []string {
	var names []string
	for _, imp := range imports {
		if rel, own := strings.CutPrefix(imp, "sluice/"); own {
			names = append(names, strings.TrimPrefix(rel, "internal/"))
			continue
		}
		if !strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
			continue // standard library
		}
		name := ""
		for short, module := range modules {
			if imp == module || strings.HasPrefix(imp, module+"/") {
				name = short
			}
		}
		if name == "" {
			t.Errorf("%s imports %s, a module that modules (architecture_test.go) has no name for", pkg, imp)
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// packageRow matches a row of the package table: the package's path in
// backquotes, its job, and what it imports.
var packageRow = regexp.MustCompile("^\\| `([^`]+)` \\|.*\\| ([^|]*) \\|$")

// nothing matches what a cell of imports says besides names: a dash, or a
// remark in parentheses.
var nothing = regexp.MustCompile(`\([^)]*\)|—`)

// packageTable reads the package table of ARCHITECTURE.md: for each
// package, the names its last column lists, sorted. A dash, or a remark in
// parentheses, names nothing.
func packageTable(t *testing.T) map[string][]string {
	doc, err := os.ReadFile("../../ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Packages\n")
	if !ok {
		t.Fatal("ARCHITECTURE.md has no section \"## Packages\"")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	table := make(map[string][]string)
	for line := range strings.Lines(section) {
		m := packageRow.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		cell := nothing.ReplaceAllString(m[2], "")
		var names []string
		for name := range strings.SplitSeq(cell, ",") {
			if name = strings.TrimSpace(name); name != "" {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		table[m[1]] = names
	}
	if len(table) == 0 {
		t.Fatal("ARCHITECTURE.md: no rows in the package table")
	}
	return table
}
