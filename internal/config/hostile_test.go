package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// allocated returns the bytes f allocates on the heap.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// dotted returns a key of n parts, each "a".
func dotted(n int) string {
	return "a" + strings.Repeat(".a", n-1)
}

// hostileRules returns n rules, each with an unknown key, a bad duration, a
// backend without a port and the listen address of the rule before it.
func hostileRules(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "[[rule]]\nname = \"r%d\"\nlisten = \"127.0.0.1:%d\"\nbackends = [\"b\"]\nlistne = 1\nidle_timeout = \"x\"\n", i, 1+i/2)
	}
	return b.String()
}

// hostileRoutes returns a rule with n routes, each with an unknown key, a
// bad server name, the name of the route before it and a tls table with an
// unknown key and no certificate.
func hostileRoutes(n int) string {
	var b strings.Builder
	b.WriteString("[[rule]]\n" + ok)
	for i := range n {
		fmt.Fprintf(&b, "[[rule.route]]\nname = \"r%d\"\nsni = [\"a..b\"]\nbackends = [\"b:1\"]\nlistne = 1\ntls.certs = 1\n", i/2)
	}
	return b.String()
}

// TestHostileDocumentsBounded: documents built to make the index or the
// checks blow up (a key of 40,000 parts, a table header of as many, 50,000
// broken rules, as many broken routes) are rejected with file:line, and parsing them allocates no
// more than a small multiple of their size.
func TestHostileDocumentsBounded(t *testing.T) {
	// go-toml refuses to nest arrays and inline tables more than 10,000 deep.
	const parts, nesting, brokenRules = 40000, 9999, 50000
	tests := []struct {
		name   string
		doc    string
		want   string // the first error
		count  int    // errors in all
		budget uint64 // MiB the parse may allocate: linear in the size, with room
	}{
		{"dotted key", dotted(parts) + " = 1\n[[rule]]\n" + ok,
			`f.toml:1: unknown key "a"`, 1, 64},
		{"table header", "[[rule]]\n" + ok + "[" + dotted(parts) + "]\n",
			`f.toml:5: unknown key "a"`, 1, 64},
		{"dotted key in a rule", "[[rule]]\n" + ok + dotted(parts) + " = 1\n",
			`f.toml:5: rule "web": unknown key "a"`, 1, 64},
		{"dotted key under a known key", "[[rule]]\nname = \"web\"\nbackends = [\"a:1\"]\nlisten." + dotted(parts) + " = 1\n",
			`f.toml:4: rule "web": listen {...}: want a string like "host:port", not a table`, 1, 64},
		{"nested arrays", "[[rule]]\n" + ok + "allow = " + strings.Repeat("[", nesting) + strings.Repeat("]", nesting) + "\n",
			`f.toml:5: rule "web": allow entry [...]: want a CIDR string, not an array`, 1, 32},
		{"nested inline tables", "[[rule]]\n" + ok + "deny = [" + strings.Repeat("{a=", nesting) + "1" + strings.Repeat("}", nesting) + "]\n",
			`f.toml:5: rule "web": deny entry {...}: want a CIDR string, not a table`, 1, 32},
		{"50,000 broken rules", hostileRules(brokenRules),
			`f.toml:4: rule "r0": backend "b": missing port`, brokenRules*3 + brokenRules/2, 1024},
		{"50,000 broken routes", hostileRoutes(brokenRules),
			`f.toml:7: rule "web": route "r0": sni "a..b": invalid host name "a..b"`, brokenRules*4 + brokenRules/2, 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, err = Parse("f.toml", []byte(tt.doc)) })
			t.Logf("%d bytes, %d errors: %.1f MiB allocated", len(tt.doc), tt.count, float64(n)/(1<<20))
			if n > tt.budget<<20 {
				t.Errorf("parsing %d bytes allocated %d MiB, want at most %d MiB", len(tt.doc), n>>20, tt.budget)
			}
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("got %T %v, want *Errors", err, err)
			}
			if got := (*errs)[0].Error(); got != tt.want {
				t.Errorf("first error:\ngot  %.200s\nwant %s", got, tt.want)
			}
			if len(*errs) != tt.count {
				t.Errorf("got %d errors, want %d", len(*errs), tt.count)
			}
		})
	}
}

// TestFileSizeLimit: a config over MaxFileSize is refused, naming the file
// and the limit, without reading more of it than the limit.
func TestFileSizeLimit(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.toml")
	data := []byte("# " + strings.Repeat("x", MaxFileSize-3) + "\n[[rule]]\n" + ok)
	if err := os.WriteFile(big, data, 0o600); err != nil {
		t.Fatal(err)
	}
	want := big + ": config file is larger than the limit of 16 MiB"
	_, err := Load(big)
	var errs *Errors
	if !errors.As(err, &errs) || err.Error() != want {
		t.Errorf("Load of %d bytes: got %T %v\nwant *Errors %s", len(data), err, err, want)
	}
	if _, err := Parse(big, data); err == nil || err.Error() != want {
		t.Errorf("Parse of %d bytes: got %v, want %s", len(data), err, want)
	}
	if _, err := Load("/dev/zero"); err == nil || err.Error() != "/dev/zero: config file is larger than the limit of 16 MiB" {
		t.Errorf("Load of a file without end: got %v", err)
	}
	if _, err := Parse(big, data[:MaxFileSize]); err == nil || strings.Contains(err.Error(), "larger") {
		t.Errorf("Parse of exactly the limit: got %v, want it parsed", err)
	}
}

// TestManyRangesBounded: rules whose ranges add up to more ports than
// maxListenPorts are refused at the rule that passes it, and checking
// them stays quick: a 16 MiB file of full ranges on distinct hosts would
// otherwise index some 10^10 ports.
func TestManyRangesBounded(t *testing.T) {
	var b strings.Builder
	for i := range 40 {
		fmt.Fprintf(&b, "[[rule]]\nname = \"r%d\"\nlisten = \"127.0.%d.%d:1-65535\"\nbackends = [\"b:1\"]\n", i, i/250, i%250+1)
	}
	_, err := Parse("sluice.toml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "more than 1048576 ports in all") {
		t.Fatalf("40 full ranges: err = %v, want the limit of 1048576 ports", err)
	}
	if n := strings.Count(err.Error(), "ports in all"); n != 1 {
		t.Errorf("the limit reported %d times, want once (at the rule that passes it)", n)
	}
}
