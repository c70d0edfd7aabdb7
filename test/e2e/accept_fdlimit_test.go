package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// acceptPausedMsg is sluice's warning when the process is out of
// descriptors for new connections.
const acceptPausedMsg = "accept paused: file descriptor limit of the process reached (raise LimitNOFILE / ulimit -n); backing off"

// TestAcceptPausedDoesNotSpin: sluice under a descriptor limit of 64,
// with one rule whose listener two event loops watch (workers = 2). Idle
// clients take every descriptor, and a flood of new clients keeps the
// accept queue full. The listener is level-triggered: a loop that left it
// in its set while it cannot set a client up would be woken again at once,
// take the next client, fail it for want of a descriptor, and so on for as
// long as the shortage lasts. So over two seconds out of descriptors
// sluice must take only a few clients (the back-off's attempts: 5 ms
// doubling to 1 s, at most one per loop each) and use less than a quarter
// of one core's time, warn once, and serve again once the idle clients
// have gone. (The flood's queued clients then fill sluice up again, each
// time a new episode with its own warning, as before loops accepted.)
func TestAcceptPausedDoesNotSpin(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("prlimit (util-linux) is not installed")
	}
	be := startBackend(t, echo)
	p, addrs, _ := launchOps(t, 1, func(a []string) string {
		return fmt.Sprintf("log_format = \"json\"\n\n[[rule]]\nname = \"r\"\nlisten = %q\nbackends = [%q]\nworkers = 2\n", a[0], be.addr)
	}, func(path string) *proc {
		return startProc(t, nil, "prlimit", "--nofile=64:64", sluiceBin, "-c", path)
	})
	addr := addrs[0]
	var idle []net.Conn
	t.Cleanup(func() {
		for _, c := range idle {
			c.Close()
		}
	})
	// Each client sluice relays costs it two descriptors: 40 are more than
	// fit, and the rest wait in the accept queue.
	for range 40 {
		c, err := net.DialTimeout("tcp", addr, waitLimit)
		if err != nil {
			t.Fatalf("idle client: %v", err)
		}
		idle = append(idle, c)
	}
	p.wait("the accept warning", isMsg(acceptPausedMsg))

	stop := make(chan struct{})
	flooded := make(chan int)
	for range 4 {
		go func() { flooded <- floodConnects(addr, stop) }()
	}
	failed := func() int { return p.count(accessFailed("too many open files")) }
	before, failedBefore := cpuTime(t, p.pid()), failed()
	const window = 2 * time.Second
	time.Sleep(window) // a measuring window, not a wait for a state
	used, taken := cpuTime(t, p.pid())-before, failed()-failedBefore
	close(stop)
	tried := 0
	for range 4 {
		tried += <-flooded
	}
	t.Logf("out of descriptors for %v, %d clients connecting: sluice took %d of them and used %v of CPU", window, tried, taken, used)
	if taken > 40 {
		t.Errorf("sluice took %d clients in %v while out of descriptors: its loops keep accepting from the listener", taken, window)
	}
	if used > window/4 {
		t.Errorf("sluice used %v of CPU in %v while out of descriptors: its loops spin on the listener", used, window)
	}
	if n := p.count(isMsg(acceptPausedMsg)); n != 1 {
		t.Errorf("sluice warned %d times while out of descriptors, want once", n)
	}

	for _, c := range idle {
		c.Close()
	}
	idle = nil
	deadline := time.Now().Add(waitLimit)
	for serveOne(addr, "after the shortage\n") != nil {
		if time.Now().After(deadline) {
			t.Fatal("no client served after the idle ones left")
		}
	}
	// The all-clear comes with a connection set up a second after the last
	// shortage (one episode, however a starved process flaps): clients
	// keep coming until it does.
	for len(p.find(isMsg("accepting again"))) == 0 {
		if time.Now().After(deadline.Add(waitLimit)) {
			t.Fatal("no all-clear while clients were served")
		}
		serveOne(addr, "all clear?\n")
		time.Sleep(100 * time.Millisecond)
	}
}

// cpuTime returns the user and system CPU time the process pid has used,
// from /proc/PID/stat (in clock ticks of 10 ms, as on every Linux sluice
// runs on).
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command name, which is in parentheses: utime
	// and stime are the 14th and 15th of the line.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// floodConnects connects to addr and closes at once, again and again,
// until stop is closed, and returns how many connects it made.
func floodConnects(addr string, stop <-chan struct{}) int {
	n := 0
	for {
		select {
		case <-stop:
			return n
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			n++
		}
	}
}
