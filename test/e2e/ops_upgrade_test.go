package e2e

import (
	"fmt"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"
)

// upgradeConfig is the hitless-upgrade test's config: admin API on
// addrs[0], rules alpha, beta and gamma on addrs[1:] to the given echo
// backends, and a drain timeout far beyond the test's length; workers,
// unless zero, in [defaults].
func upgradeConfig(backends []string, workers int) func(addrs []string) string {
	return func(addrs []string) string {
		text := fmt.Sprintf("log_format = \"json\"\nadmin = %q\n\n[defaults]\ndrain_timeout = \"5m\"\n", addrs[0])
		if workers > 0 {
			text += fmt.Sprintf("workers = %d\n", workers)
		}
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
// they end. Then the new process is upgraded in turn, with the clients
// still going, and the third one stops cleanly on SIGTERM.
func TestHitlessUpgrade(t *testing.T) { testHitlessUpgrade(t, 0) }

// TestHitlessUpgradeTwoWorkers is TestHitlessUpgrade with two event loops
// accepting for every rule (workers = 2): the listening socket that both
// loops watch is handed over as one, and not one connection fails.
func TestHitlessUpgradeTwoWorkers(t *testing.T) { testHitlessUpgrade(t, 2) }

// testHitlessUpgrade runs TestHitlessUpgrade with the given workers.
func testHitlessUpgrade(t *testing.T, workers int) {
	t.Parallel()
	var backends []string
	for range 3 {
		backends = append(backends, startBackend(t, echo).addr)
	}
	var g *group
	_, addrs, _ := launchOps(t, 4, upgradeConfig(backends, workers), func(path string) *proc {
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
	second := upgrade(t, g, g.cmd.Process.Pid, 1)
	// Traffic goes on across the hand-over: new connections reach the new
	// process while the streams keep flowing through the old one.
	l.waitProgress(from, 10, 256<<10)
	if !g.leaderRunning() {
		t.Fatalf("the old process exited with its streams still open: %v", g.leaderErr)
	}
	checkNewProcessServes(t, newAdmin(t, addrs[0], ""), streams)
	for _, s := range streams {
		s.stop()
	}
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

	from = l.snapshot()
	third := upgrade(t, g, second, 2)
	l.waitProgress(from, 10, 0)
	if code := waitPid(t, second); code != 0 {
		t.Errorf("second process exit code %d after handing over, want 0", code)
	}
	l.halt()
	l.checkChurn()
	for name, addr := range listens {
		if err := echoOnce(addr, "after two upgrades\n"); err != nil {
			t.Errorf("rule %s after two upgrades: %v", name, err)
		}
	}
	stopUpgraded(t, g, third, 3)
}

// upgrade sends SIGUSR2 to the process pid of the group, the n-th to be
// upgraded, and waits until a new process has started on the inherited
// sockets and the old one has stopped accepting. It returns the new
// process's pid.
func upgrade(t *testing.T, g *group, pid, n int) int {
	t.Helper()
	signalPid(t, pid, syscall.SIGUSR2)
	started := g.waitN(n, "started line of the new process", func(r record) bool {
		return r.str("msg") == "started" && r["inherited"] == true
	})[n-1]
	newPid := int(started.num("pid"))
	if newPid <= 0 || newPid == pid {
		t.Fatalf("new process logged %v; want a pid other than %d", started, pid)
	}
	g.wait("old process handing over", func(r record) bool {
		return r.str("msg") == "upgrade: new process is serving; draining this one" && r.num("pid") == int64(newPid)
	})
	// The old process stops its admin API and then its listeners; from
	// this line on only the new process accepts, on the same sockets.
	g.waitN(n, "old process draining", func(r record) bool {
		return r.str("msg") == "stopping: draining live connections" && r.str("signal") == syscall.SIGUSR2.String()
	})
	return newPid
}

// signalPid sends sig to the process pid.
func signalPid(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("signal %v to sluice %d: %v", sig, pid, err)
	}
}

// waitPid waits for the process pid, a child of this test process, to
// exit and returns its exit code (-1 when a signal ended it).
func waitPid(t *testing.T, pid int) int {
	t.Helper()
	proc, err := os.FindProcess(pid)
	if err != nil {
		t.Fatalf("find sluice %d: %v", pid, err)
	}
	type result struct {
		state *os.ProcessState
		err   error
	}
	done := make(chan result, 1)
	go func() {
		state, err := proc.Wait()
		done <- result{state, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("wait for sluice %d: %v", pid, r.err)
		}
		return r.state.ExitCode()
	case <-time.After(waitLimit):
		t.Fatalf("sluice %d still runs after %v", pid, waitLimit)
		return -1
	}
}

// checkNewProcessServes asks the admin API, which the new process answers
// now, for its rules and connections: each rule has taken connections, and
// none of the streams, which the old process relays, is among its own.
func checkNewProcessServes(t *testing.T, api *adminClient, streams []*stream) {
	t.Helper()
	// The clients keep connecting; the first round trips after the
	// hand-over may all have been accepted by the old process just before
	// it stopped, so each rule gets until waitLimit to show one here.
	deadline := time.Now().Add(waitLimit)
	for name, r := range api.rules() {
		for r.Counters.ConnectionsTotal == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond) // poll: the counters have no signal
			r = api.rules()[name]
		}
		if r.Counters.ConnectionsTotal == 0 {
			t.Errorf("new process: rule %s has taken no connection within %v: %+v", name, waitLimit, r)
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

// stopUpgraded stops the process pid, the last of the group, with SIGTERM
// and checks that it exits 0 and that all n processes logged that they
// stopped.
func stopUpgraded(t *testing.T, g *group, pid, n int) {
	t.Helper()
	signalPid(t, pid, syscall.SIGTERM)
	g.waitN(n, "stopped lines of every process", isMsg("stopped"))
	// Its parent has exited, so it is now this test's child (startGroup
	// made the test a subreaper) and can be waited for.
	if code := waitPid(t, pid); code != 0 {
		t.Fatalf("last process exit code %d after SIGTERM, want 0", code)
	}
}
