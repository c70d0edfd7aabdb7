package main

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// layers says which sluice packages each package may depend on, directly or
// not. The direction is cmd → server → {tcp, udp, admin} → the leaves; a
// package missing here may depend on nothing of sluice's own.
var layers = map[string][]string{
	"internal/server":     {"internal/route", "internal/sniff", "internal/backoff", "internal/tcp", "internal/udp", "internal/admin", "internal/access", "internal/metrics", "internal/backend", "internal/admit", "internal/proxyproto", "internal/relay", "internal/conntrack", "internal/config", "internal/workers", "internal/congestion", "internal/epoll", "internal/handover", "internal/rawsock", "internal/endpoint", "internal/tlsconf", "internal/discovery"},
	"internal/tcp":        {"internal/route", "internal/sniff", "internal/backoff", "internal/access", "internal/backend", "internal/admit", "internal/proxyproto", "internal/relay", "internal/conntrack", "internal/metrics", "internal/workers", "internal/congestion", "internal/epoll", "internal/rawsock", "internal/endpoint", "internal/tlsconf"},
	"internal/udp":        {"internal/backoff", "internal/access", "internal/epoll", "internal/backend", "internal/admit", "internal/conntrack", "internal/metrics", "internal/congestion", "internal/rawsock", "internal/endpoint", "internal/tlsconf"},
	"internal/admin":      {"internal/conntrack", "internal/metrics", "internal/access"},
	"internal/metrics":    {"internal/access"},
	"internal/access":     {},
	"internal/backend":    {"internal/congestion", "internal/endpoint", "internal/rawsock", "internal/tlsconf"},
	"internal/admit":      {"internal/access"},
	"internal/conntrack":  {"internal/access"},
	"internal/relay":      {"internal/epoll", "internal/access", "internal/rawsock"},
	"internal/epoll":      {},
	"internal/proxyproto": {},
	"internal/config":     {"internal/access", "internal/congestion", "internal/endpoint"},
	"internal/congestion": {},
	"internal/workers":    {},
	"internal/rawsock":    {},
	"internal/handover":   {},
	"internal/endpoint":   {},
	"internal/backoff":    {},
	"internal/sniff":      {"internal/proxyproto"},
	"internal/route":      {"internal/sniff", "internal/proxyproto"},
	"internal/tlsconf":    {},
	"internal/logsink":    {},
	"internal/fleet":      {"internal/backoff"},
	"internal/discovery":  {},
}

// leaves may import only the standard library and these modules.
var leaves = map[string][]string{
	"internal/relay":      {"golang.org/x/sys/"},
	"internal/epoll":      {"golang.org/x/sys/"},
	"internal/rawsock":    {"golang.org/x/sys/"},
	"internal/proxyproto": {},
	"internal/access":     {},
	"internal/config":     {"github.com/pelletier/go-toml/v2", "golang.org/x/sys/"},
	"internal/congestion": {"golang.org/x/sys/"},
	"internal/handover":   {},
	"internal/endpoint":   {},
	"internal/sniff":      {},
	"internal/route":      {},
	"internal/tlsconf":    {},
	"internal/logsink":    {},
	"internal/discovery":  {},
}

// TestLayering holds the dependency direction of the packages, as
// tailscale's deptest does: a change that makes a leaf import upwards fails.
func TestLayering(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not on PATH")
	}
	for pkg, allowed := range layers {
		deps, ok := listDeps(t, pkg)
		if !ok {
			continue // the package does not exist (yet)
		}
		for _, dep := range deps {
			rel, own := strings.CutPrefix(dep, "sluice/")
			if own && rel != pkg && !slices.Contains(allowed, rel) {
				t.Errorf("%s depends on %s, which is not below it", pkg, rel)
			}
			if allowedExt, isLeaf := leaves[pkg]; isLeaf && !own && strings.Contains(strings.SplitN(dep, "/", 2)[0], ".") && !slices.ContainsFunc(allowedExt, func(p string) bool { return strings.HasPrefix(dep, p) }) {
				t.Errorf("%s depends on %s; it may use only the standard library and %v", pkg, dep, allowedExt)
			}
		}
	}
}

// testkit is the folder of packages that only tests may import.
const testkit = "sluice/internal/testkit/"

// TestTestkitOnlyInTests holds that no package's own code imports a test
// helper: the helpers under internal/testkit import testing and fail tests,
// so production code must never reach them (a _test.go file may).
func TestTestkitOnlyInTests(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not on PATH")
	}
	for pkg, imports := range directImports(t) {
		if strings.HasPrefix(pkg, testkit) {
			continue
		}
		for _, imp := range imports {
			if strings.HasPrefix(imp, testkit) {
				t.Errorf("%s imports the test helper %s outside its tests", pkg, imp)
			}
		}
	}
}

// directImports returns, for every package of the module, the packages its
// own code (not its tests) imports directly, as go list sees them on this
// system.
func directImports(t *testing.T) map[string][]string {
	return directImportsOn(t, "")
}

// directImportsOn is directImports for the system goos ("": this one).
func directImportsOn(t *testing.T, goos string) map[string][]string {
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "sluice/...")
	if goos != "" {
		cmd.Env = append(os.Environ(), "GOOS="+goos)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	imports := make(map[string][]string)
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) > 0 {
			imports[fields[0]] = fields[1:]
		}
	}
	return imports
}

// listDeps returns every package pkg depends on, or false if pkg is absent.
func listDeps(t *testing.T, pkg string) ([]string, bool) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "sluice/"+pkg).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "cannot find package") || strings.Contains(string(out), "no required module") || strings.Contains(string(out), "is not in std") {
			return nil, false
		}
		t.Fatalf("go list %s: %v\n%s", pkg, err, out)
	}
	return strings.Fields(string(out)), true
}
