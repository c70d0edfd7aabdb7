package e2e

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestVersion: `sluice version` prints one version line and exits 0.
func TestVersion(t *testing.T) {
	t.Parallel()
	res := runSluice(t, nil, "version")
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if res.code != 0 || len(lines) != 1 || !strings.Contains(lines[0], "sluice") {
		t.Fatalf("sluice version: %v\nwant exit 0 and one line naming sluice", res)
	}
}

// TestUsageErrors: command lines that make no sense exit 2 and say why on
// stderr.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, validConfig(freeAddr(t), "127.0.0.1:9"))
	for _, tc := range []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"unknown flag", []string{"--no-such-flag"}, "no-such-flag"},
		{"listen without remote", []string{"-l", "127.0.0.1:1"}, "-r"},
		{"both config and listen", []string{"-c", cfg, "-l", "127.0.0.1:1", "-r", "127.0.0.1:9"}, "-c"},
		{"nothing to do", nil, "-l"},
		{"workers below one", []string{"-l", "127.0.0.1:1", "-r", "127.0.0.1:9", "--workers", "0"}, "--workers 0: must be at least 1"},
		{"workers with a config file", []string{"-c", cfg, "--workers", "2"}, "--workers are quick-mode flags"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runSluice(t, nil, tc.args...)
			if res.code != 2 || !strings.Contains(res.stderr, tc.want) {
				t.Fatalf("sluice %q: %v\nwant exit 2 and %q in stderr", tc.args, res, tc.want)
			}
		})
	}
}

// validConfig returns a valid two-rule config with the first rule listening
// on listen.
func validConfig(listen, backend string) string {
	return fmt.Sprintf(`log_format = "json"

[defaults]
connect_timeout = "2s"

[[rule]]
name = "web"
listen = %q
backends = [%q]

[[rule]]
name = "dns"
listen = "127.0.0.1:0"
protocol = "udp"
backends = [{ address = %q, weight = 3 }]
`, listen, backend, backend)
}

// TestCheckNormalises: `sluice check` accepts a valid config, prints it with
// every default filled in, and its output is a fixed point: checking the
// printed config prints it again unchanged.
func TestCheckNormalises(t *testing.T) {
	t.Parallel()
	first := runSluice(t, nil, "check", "-c", writeConfig(t, validConfig("127.0.0.1:8080", "127.0.0.1:9")))
	if first.code != 0 {
		t.Fatalf("check of a valid config: %v", first)
	}
	for _, want := range []string{`"web"`, `"dns"`, "drain_timeout", "idle_timeout", "round-robin", "workers = "} {
		if !strings.Contains(first.stdout, want) {
			t.Errorf("normalised config lacks %s:\n%s", want, first.stdout)
		}
	}
	second := runSluice(t, nil, "check", "-c", writeConfig(t, first.stdout))
	if second.code != 0 || second.stdout != first.stdout {
		t.Fatalf("checking the normalised config again: %v\nwant exit 0 and the same output as before:\n%s",
			second, first.stdout)
	}
}

// TestBadConfigs runs configs that must be rejected through both `sluice
// check -c` and `sluice -c`: each exits 1 naming the file, line and problem.
func TestBadConfigs(t *testing.T) {
	t.Parallel()
	for _, tc := range badConfigs {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.config)
			for _, args := range [][]string{{"check", "-c", path}, {"-c", path}} {
				res := runSluice(t, nil, args...)
				if res.code != 1 || res.stdout != "" {
					t.Errorf("sluice %q: %v\nwant exit 1 and nothing on stdout", args, res)
				}
				// The lines must appear in order, each on a line of its own
				// (run mode may prefix the first with "sluice: ").
				lines := strings.Split(res.stderr, "\n")
				for _, w := range tc.want {
					w = strings.ReplaceAll(w, "FILE", path)
					for len(lines) > 0 && !strings.HasSuffix(lines[0], w) {
						lines = lines[1:]
					}
					if len(lines) == 0 {
						t.Errorf("sluice %q: %v\nwant, in order, a stderr line ending in %q", args, res, w)
						break
					}
					lines = lines[1:]
				}
			}
		})
	}
}

// TestListenInUse: a listen address another process holds is a start-up
// error, exit 1, naming the rule and the address, in both modes.
func TestListenInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	for _, tc := range []struct {
		args []string
		rule string
	}{
		{[]string{"-l", addr, "-r", "127.0.0.1:9"}, "default"},
		{[]string{"-c", writeConfig(t, validConfig(addr, "127.0.0.1:9"))}, "web"},
	} {
		res := runSluice(t, nil, tc.args...)
		want := fmt.Sprintf("rule %q: listen %s: address already in use", tc.rule, addr)
		if res.code != 1 || !strings.Contains(res.stderr, want) {
			t.Errorf("sluice %q: %v\nwant exit 1 and stderr containing %q", tc.args, res, want)
		}
	}
}

// TestListenPermissionDenied: an unprivileged user cannot listen on a port
// below 1024; sluice exits 1 and says so. The test needs root to switch to
// an unprivileged uid for the child.
func TestListenPermissionDenied(t *testing.T) {
	t.Parallel()
	needRoot(t, "to run sluice as another, unprivileged uid")
	const port = 80
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); err == nil {
		if start, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && start <= port {
			t.Skipf("unprivileged users may bind port %d here (ip_unprivileged_port_start=%d)", port, start)
		}
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	res := runSluice(t, asNobody, "-l", addr, "-r", "127.0.0.1:9")
	want := fmt.Sprintf(`rule "default": listen %s: permission denied`, addr)
	if res.code != 1 || !strings.Contains(res.stderr, want) {
		t.Fatalf("sluice as uid 65534: %v\nwant exit 1 and stderr containing %q", res, want)
	}
}
