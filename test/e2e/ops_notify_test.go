package e2e

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// notifyListener stands in for systemd: a unix datagram socket that
// collects sd_notify messages.
type notifyListener struct {
	t *testing.T
	c *net.UnixConn
}

// listenNotify opens the socket and returns it with its path.
func listenNotify(t *testing.T) (*notifyListener, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &notifyListener{t: t, c: c}, path
}

// next returns the lines of the next message.
func (n *notifyListener) next(what string) []string {
	n.t.Helper()
	buf := make([]byte, 4096)
	n.c.SetReadDeadline(time.Now().Add(waitLimit))
	k, err := n.c.Read(buf)
	if err != nil {
		n.t.Fatalf("no notification (%s): %v", what, err)
	}
	return strings.Fields(string(buf[:k]))
}

// expect reads the next message and checks that it holds every line of
// want.
func (n *notifyListener) expect(what string, want ...string) {
	n.t.Helper()
	got := n.next(what)
	for _, w := range want {
		if !slices.Contains(got, w) {
			n.t.Fatalf("notification %s: %q, want it to hold %q", what, got, want)
		}
	}
}

// TestServiceManagerNotify: under a service manager that listens on
// $NOTIFY_SOCKET (systemd with Type=notify), sluice says READY with its pid
// once serving, RELOADING then READY around a reload, and the process a
// hitless upgrade starts says READY with its own pid as the new main one, so
// the manager follows it; STOPPING on SIGTERM. (Not parallel: it sets the
// environment the children inherit.)
func TestServiceManagerNotify(t *testing.T) {
	n, path := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", path)
	be := startBackend(t, echo)
	var g *group
	_, addrs, cfgPath := launchOps(t, 1, func(addrs []string) string {
		return fmt.Sprintf("log_format = \"json\"\n\n[[rule]]\nname = \"web\"\nlisten = %q\nbackends = [%q]\n", addrs[0], be.addr)
	}, func(path string) *proc {
		g = startGroup(t, "-c", path)
		return g.proc
	})
	first := g.cmd.Process.Pid
	n.expect("at start", "READY=1", fmt.Sprintf("MAINPID=%d", first))

	rewriteFile(t, cfgPath, fmt.Sprintf("log_format = \"json\"\n\n[[rule]]\nname = \"web\"\nlisten = %q\nbackends = [%q]\nretries = 0\n", addrs[0], be.addr))
	signalPid(t, first, syscall.SIGHUP)
	n.expect("reload begins", "RELOADING=1")
	n.expect("reload ends", "READY=1", fmt.Sprintf("MAINPID=%d", first))

	second := upgrade(t, g, first, 1)
	n.expect("upgraded process ready", "READY=1", fmt.Sprintf("MAINPID=%d", second))
	if code := g.waitLeader(); code != 0 {
		t.Fatalf("old process exit code %d, want 0", code)
	}
	c := dial(t, addrs[0])
	if err := roundTrip(c, "through the new process\n"); err != nil {
		t.Fatal(err)
	}
	c.Close()

	signalPid(t, second, syscall.SIGTERM)
	n.expect("stop", "STOPPING=1")
	if code := waitPid(t, second); code != 0 {
		t.Fatalf("new process exit code %d after SIGTERM, want 0", code)
	}
}
