package e2e

import (
	"fmt"
	"os"
	"slices"
	"syscall"
	"testing"
)

// upgradeConfig is the hitless-upgrade test's config: admin API on
// addrs[0], rules alpha, beta and gamma on addrs[1:] to the given echo
// backends, and a drain timeout far beyond the test's length.
func upgradeConfig(backends []string) func(addrs []string) string {
	return func(addrs []string) string {
		text := fmt.Sprintf("log_format = \"json\"\nadmin = %q\n\n[defaults]\ndrain_timeout = \"5m\"\n", addrs[0])
		for i, name := range []string{"alpha", "beta", "gamma"} {
			text += fmt.Sprintf("\n[[rule]]\nname = %q\nlisten = %q\nbackends = [%q]\n", name, addrs[1+i], backends[i])
		}
		return text
	}
}

// TestHitlessUpgrade sends SIGUSR2 while 8 clients connect in a loop and 4
// long-lived streams run both ways. A new process takes over the listening
// sockets and the admin API; not one connection fails during the hand-over.
// The old process keeps relaying its streams, byte-exact, and exits 0 once
// they end. The new one serves on and stops cleanly on SIGTERM.
func TestHitlessUpgrade(t *testing.T) {
	t.Parallel()
	var backends []string
	for range 3 {
		backends = append(backends, startBackend(t, echo).addr)
	}
	var g *group
	_, addrs, _ := launchOps(t, 4, upgradeConfig(backends), func(path string) *proc {
		g = startGroup(t, "-c", path)
		return g.proc
	})
	listens := map[string]string{"alpha": addrs[1], "beta": addrs[2], "gamma": addrs[3]}
	fixed := map[string]bool{"alpha": true, "beta": true, "gamma": true}
	l := startLoad(t, newAddrBook(listens), []string{"alpha", "alpha", "alpha", "beta", "beta", "beta", "gamma", "gamma"}, fixed)
	var streams []*stream
	for _, name := range []string{"alpha", "beta", "gamma", "alpha"} {
		streams = append(streams, l.addStream(name, listens[name]))
	}
	l.waitProgress(l.snapshot(), 5, 64<<10)

	from := l.snapshot()
	newPid := upgrade(t, g)
	// Traffic goes on across the hand-over: new connections reach the new
	// process while the streams keep flowing through the old one.
	l.waitProgress(from, 10, 256<<10)
	if !g.leaderRunning() {
		t.Fatalf("the old process exited with its streams still open: %v", g.leaderErr)
	}
	checkNewProcessServes(t, newAdmin(t, addrs[0], ""), streams)

	l.halt()
	l.checkChurn()
	for _, s := range streams {
		n := s.finish(t)
		rec := s.access(g.proc)
		if rec.str("end") != "eof" || rec.num("up") != n || rec.num("down") != n {
			t.Errorf("stream %s: access line %v: want end=eof up=down=%d", s.name, rec, n)
		}
	}
	if code := g.waitLeader(); code != 0 {
		t.Fatalf("old process exit code %d (%v), want 0", code, g.leaderErr)
	}
	for name, addr := range listens {
		if err := echoOnce(addr, "after the old process left\n"); err != nil {
			t.Errorf("rule %s after the old process exited: %v", name, err)
		}
	}
	stopUpgraded(t, g, newPid)
}

// upgrade sends SIGUSR2 to the group's first process and waits until a new
// process has started on the inherited sockets and the old one has stopped
// accepting. It returns the new process's pid.
func upgrade(t *testing.T, g *group) int {
	t.Helper()
	oldPid := g.cmd.Process.Pid
	g.signal(syscall.SIGUSR2)
	started := g.wait("started line of the new process", func(r record) bool {
		return r.str("msg") == "started" && r["inherited"] == true
	})
	newPid := int(started.num("pid"))
	if newPid <= 0 || newPid == oldPid {
		t.Fatalf("new process logged %v; want a pid other than %d", started, oldPid)
	}
	g.wait("old process handing over", func(r record) bool {
		return r.str("msg") == "upgrade: new process is serving; draining this one" && r.num("pid") == int64(newPid)
	})
	// The old process stops its admin API and then its listeners; from
	// this line on only the new process accepts, on the same sockets.
	g.wait("old process draining", func(r record) bool {
		return r.str("msg") == "stopping: draining live connections" && r.str("signal") == syscall.SIGUSR2.String()
	})
	return newPid
}

// checkNewProcessServes asks the admin API, which the new process answers
// now, for its rules and connections: each rule has taken connections, and
// none of the streams, which the old process relays, is among its own.
func checkNewProcessServes(t *testing.T, api *adminClient, streams []*stream) {
	t.Helper()
	for name, r := range api.rules() {
		if r.Counters.ConnectionsTotal == 0 {
			t.Errorf("new process: rule %s has taken no connection: %+v", name, r)
		}
	}
	var clients []string
	for _, s := range streams {
		clients = append(clients, s.c.LocalAddr().String())
	}
	for _, c := range api.connections() {
		if slices.Contains(clients, c.Client) {
			t.Errorf("new process lists stream connection %+v, which the old process relays", c)
		}
	}
}

// stopUpgraded stops the new process with SIGTERM and checks that it exits
// 0 and that both processes logged that they stopped.
func stopUpgraded(t *testing.T, g *group, pid int) {
	t.Helper()
	proc, err := os.FindProcess(pid)
	if err != nil {
		t.Fatalf("find the new process %d: %v", pid, err)
	}
	if err := proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to the new process %d: %v", pid, err)
	}
	g.waitN(2, "stopped lines of both processes", isMsg("stopped"))
	// The old process has exited, so this one is now this test's child
	// (startGroup made the test a subreaper) and can be waited for.
	state, err := proc.Wait()
	if err != nil {
		t.Fatalf("wait for the new process %d: %v", pid, err)
	}
	if state.ExitCode() != 0 {
		t.Fatalf("new process %s after SIGTERM, want exit 0", state)
	}
}
