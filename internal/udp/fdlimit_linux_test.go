package udp

import (
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sluice/internal/metrics"
)

// TestOutOfDescriptors runs the process out of descriptors while new
// clients arrive. The rule says so once, pauses new sessions and writes
// one access line for all the clients it turned away meanwhile
// (connect-failed, saying why, counting their datagrams in dropped), not
// one per client or datagram; it counts each client turned away once in
// sluice_rejected_total{reason="no-socket"}, not per datagram; it does not
// count the shortage against the backend, and it serves again once
// descriptors are back.
func TestOutOfDescriptors(t *testing.T) {
	for _, portable := range []bool{false, true} {
		t.Run(map[bool]string{false: "loop", true: "portable"}[portable], func(t *testing.T) {
			testOutOfDescriptors(t, portable)
		})
	}
}

func testOutOfDescriptors(t *testing.T, portable bool) {
	const turnedAway = 20
	be := startBackend(t, "127.0.0.1", echo)
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	f := start(t, options{cfg: backends("", be.addr()), portable: portable, rule: Rule{Metrics: m.Rule("test")}})
	clients := make([]*net.UDPConn, turnedAway)
	for i := range clients {
		clients[i] = client(t, "")
	}
	c2 := client(t, "")
	f.mustExchange(t, client(t, ""), "ready?", "ready?")
	restore := noDescriptors(t)
	before := f.svc.Stats().Dropped
	openedBefore := m.Rule("test").Counters().ConnectionsTotal
	for _, c := range clients {
		for range 2 {
			if _, err := c.WriteToUDP([]byte("no room"), f.addr); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.logs.waitN(t, 1, "the warning", isMsg(pausedMsg))
	waitFor(t, "every datagram dropped", func() bool { return f.svc.Stats().Dropped-before >= 2*turnedAway })
	// A client is either turned away by the pause or one of the sessions
	// opened before it began (whose socket then failed); such a session's
	// client may be turned away with its next datagram too.
	opened := int64(m.Rule("test").Counters().ConnectionsTotal - openedBefore)
	counted := f.svc.Stats().Rejected[ReasonNoSocket]
	if counted < turnedAway-opened || counted > turnedAway {
		t.Errorf("%d clients turned away counted (%d sessions opened before the pause), want %d to %d: once per client, not per datagram",
			counted, opened, turnedAway-opened, turnedAway)
	}
	if exported := rejectedTotal(t, reg, ReasonNoSocket); exported != counted {
		t.Errorf("sluice_rejected_total{reason=%q} = %d, want %d", ReasonNoSocket, exported, counted)
	}
	restore()
	f.mustExchange(t, c2, "room again", "room again")
	// The all-clear comes with a session opened a second after the last
	// failure: new clients keep coming until it does.
	for deadline := time.Now().Add(10 * time.Second); len(f.logs.find(isMsg(resumedMsg))) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no all-clear while new clients were served")
		}
		f.mustExchange(t, client(t, ""), "all clear?", "all clear?")
		time.Sleep(100 * time.Millisecond)
	}
	rec := f.logs.waitN(t, 1, "the turned-away clients' line", func(r record) bool {
		return r.Msg == "access" && r.Attrs["end"] == "connect-failed"
	})[0]
	// c2's first datagrams may have come while the pause was still on.
	if dropped := f.svc.Stats().Dropped - before; !strings.Contains(rec.Attrs["error"], "too many open files") ||
		rec.Int(t, "dropped") < 2*turnedAway || rec.Int(t, "dropped") != dropped {
		t.Errorf("access line %v: want the cause and every datagram dropped meanwhile (%d, at least %d)", rec.Attrs, dropped, 2*turnedAway)
	}
	if n := len(f.logs.find(func(r record) bool { return r.Msg == "access" && r.Attrs["end"] == "connect-failed" })); n != 1 {
		t.Errorf("%d connect-failed access lines for %d clients, want one", n, turnedAway)
	}
	if n := len(f.logs.find(isMsg(pausedMsg))); n != 1 {
		t.Errorf("warned %d times, want once", n)
	}
	if b := f.pool.Backends()[0]; b.ConnectErrors() != 0 || !b.Up() {
		t.Errorf("backend up=%v with %d connect errors: a local shortage was held against it", b.Up(), b.ConnectErrors())
	}
}

// TestDrainLogsTurnedAway writes the access line of the clients a pause
// turned away at once when a drain starts, as it does for refusals.
func TestDrainLogsTurnedAway(t *testing.T) {
	be := startBackend(t, "127.0.0.1", echo)
	f := start(t, options{cfg: backends("", be.addr())})
	c := client(t, "")
	f.mustExchange(t, client(t, ""), "ready?", "ready?")
	restore := noDescriptors(t)
	if _, err := c.WriteToUDP([]byte("no room"), f.addr); err != nil {
		t.Fatal(err)
	}
	f.logs.waitN(t, 1, "the warning", isMsg(pausedMsg))
	restore()
	drain(t, f)
	if rec := f.logs.find(accessOf(c.LocalAddr(), "connect-failed")); len(rec) != 1 || rec[0].Int(t, "dropped") != 1 {
		t.Fatalf("access lines %v, want the turned-away client's, with its datagram dropped", rec)
	}
}

// rejectedTotal returns the sluice_rejected_total series of reason in reg.
func rejectedTotal(t *testing.T, reg *prometheus.Registry, reason string) int64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "sluice_rejected_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return int64(mt.GetCounter().GetValue())
				}
			}
		}
	}
	return 0
}

// noDescriptors lowers the process's descriptor limit so that no new
// descriptor can be opened, until the function it returns (or the test's
// end) restores it.
func noDescriptors(t *testing.T) (restore func()) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	// A new descriptor takes the lowest free number; with the limit there,
	// there is none to take.
	low := lim
	low.Cur = uint64(lowestFreeFD(t))
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skip("cannot lower RLIMIT_NOFILE:", err)
	}
	restore = func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Errorf("restore RLIMIT_NOFILE: %v", err)
		}
	}
	t.Cleanup(restore)
	return restore
}

// Messages of a pause for want of sockets, as the tests expect them.
const (
	pausedMsg  = "new sessions paused: cannot open sockets; backing off"
	resumedMsg = "opening sessions again"
)

// isMsg matches records whose message is msg.
func isMsg(msg string) func(record) bool { return func(r record) bool { return r.Msg == msg } }

// lowestFreeFD returns the lowest descriptor number not in use.
func lowestFreeFD(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	used := map[int]bool{}
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err == nil {
			used[n] = true
		}
	}
	// ReadDir's own descriptor is listed, and closed again by now.
	for n := 0; ; n++ {
		if !used[n] || isClosedFD(n) {
			return n
		}
	}
}

// isClosedFD reports whether descriptor n is not open.
func isClosedFD(n int) bool {
	_, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(n))
	return err != nil
}

// TestStartsOutOfDescriptors starts the service while the process is out of
// descriptors: it says so, keeps trying, and serves once there are some.
func TestStartsOutOfDescriptors(t *testing.T) {
	be := startBackend(t, "127.0.0.1", echo)
	c := client(t, "")
	var restore func()
	f := start(t, options{cfg: backends("", be.addr()), beforeServe: func() { restore = noDescriptors(t) }})
	rec := f.logs.waitN(t, 1, "the warning", isMsg("cannot receive; backing off"))[0]
	restore()
	if !strings.Contains(rec.Attrs["error"], "too many open files") {
		t.Errorf("warning %v: want the cause", rec.Attrs)
	}
	f.mustExchange(t, c, "there now", "there now")
	f.logs.waitN(t, 1, "the all-clear", isMsg("receiving again"))
}
