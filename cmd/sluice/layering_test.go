package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// layers says which sluice packages each package may depend on, directly or
// not. The direction is cmd → server → {tcp, udp, admin} → the leaves; a
// package missing here may depend on nothing of sluice's own.
var layers = map[string][]string{
	"internal/server":     {"internal/tcp", "internal/udp", "internal/admin", "internal/access", "internal/metrics", "internal/backend", "internal/admit", "internal/proxyproto", "internal/relay", "internal/conntrack", "internal/config", "internal/workers", "internal/congestion", "internal/epoll", "internal/handover", "internal/rawsock"},
	"internal/tcp":        {"internal/access", "internal/backend", "internal/admit", "internal/proxyproto", "internal/relay", "internal/conntrack", "internal/metrics", "internal/workers", "internal/congestion", "internal/epoll", "internal/rawsock"},
	"internal/udp":        {"internal/access", "internal/backend", "internal/admit", "internal/conntrack", "internal/metrics", "internal/congestion", "internal/rawsock"},
	"internal/admin":      {"internal/conntrack", "internal/metrics", "internal/access"},
	"internal/metrics":    {"internal/access"},
	"internal/access":     {},
	"internal/backend":    {"internal/congestion", "internal/rawsock"},
	"internal/admit":      {"internal/access"},
	"internal/conntrack":  {"internal/access"},
	"internal/relay":      {"internal/epoll", "internal/access", "internal/rawsock"},
	"internal/epoll":      {},
	"internal/proxyproto": {},
	"internal/config":     {"internal/congestion"},
	"internal/congestion": {},
	"internal/workers":    {},
	"internal/rawsock":    {},
	"internal/handover":   {},
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
