package e2e

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fdKinds counts a process's open descriptors: sockets and everything else
// (pipes, epoll, eventfd, files).
func fdKinds(t *testing.T, pid int) (sockets, others int) {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("list fds of sluice: %v", err)
	}
	for _, e := range ents {
		target, err := os.Readlink(dir + "/" + e.Name())
		if err != nil {
			continue // closed between ReadDir and Readlink
		}
		if strings.HasPrefix(target, "socket:") {
			sockets++
		} else {
			others++
		}
	}
	return sockets, others
}

// warmUp relays one connection through sluice at addr and waits for its
// access line, so that whatever sluice sets up lazily on the first
// connection exists before a baseline is taken.
func warmUp(t *testing.T, p *proc, addr string) {
	t.Helper()
	c := dial(t, addr)
	if err := roundTrip(c, "warm-up"); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	p.waitAccess(c)
}

// sluiceGoroutines makes sluice dump its goroutines with SIGQUIT (it exits)
// and returns the stacks of those running sluice's own code; the runtime's
// goroutines (GC workers and the like) come and go and are left out.
func sluiceGoroutines(t *testing.T, p *proc) []string {
	t.Helper()
	p.signal(syscall.SIGQUIT)
	if _, err := p.waitExit(waitLimit); err == nil {
		t.Fatalf("sluice exited cleanly on SIGQUIT; want a goroutine dump")
	}
	var stacks []string
	for _, g := range strings.Split(p.stderr(), "\n\n") {
		if i := strings.Index(g, "goroutine "); i >= 0 {
			g = g[i:]
		}
		if strings.HasPrefix(g, "goroutine ") &&
			(strings.Contains(g, "\nsluice/") || strings.Contains(g, "\nmain.")) {
			stacks = append(stacks, g)
		}
	}
	if len(stacks) == 0 {
		t.Fatalf("no goroutine of sluice in its SIGQUIT dump:\n%s", p.stderr())
	}
	return stacks
}

// maxIdleWorkers is the cap of sluice's pool of idle worker goroutines.
const maxIdleWorkers = 64

// withoutIdleWorkers drops the stacks of idle pool workers, those waiting
// for a task in workers.(*Pool).work, and returns how many it dropped.
func withoutIdleWorkers(stacks []string) ([]string, int) {
	var out []string
	idle := 0
	for _, g := range stacks {
		if strings.Contains(g, "[chan receive") && strings.Contains(g, "sluice/internal/workers.(*Pool).work(") &&
			strings.Count(g, "\nsluice/") == strings.Count(g, "\nsluice/internal/workers.") {
			idle++
			continue
		}
		out = append(out, g)
	}
	return out, idle
}

// TestResourcesReturnToBaseline: after many connections come and go, sluice
// holds exactly the sockets it held before, no more other descriptors than
// its bounded splice-pipe pool (32 idle pipes, so 64) can explain, and as
// many goroutines of its own as a sluice that only ever relayed one
// connection.
func TestResourcesReturnToBaseline(t *testing.T) {
	t.Parallel()
	const n, pipePool = 200, 64
	be := startBackend(t, echo)
	ref, refAddr := launchQuick(t, sluiceBin, nil, be.addr)
	warmUp(t, ref, refAddr)
	p, addr := launchQuick(t, sluiceBin, nil, be.addr)
	warmUp(t, p, addr)
	baseSockets, baseOthers := fdKinds(t, p.pid())

	conns := dialMany(t, addr, n)
	if err := roundTripAll(conns); err != nil {
		t.Fatal(err)
	}
	// The measurement must see the connections, or it proves nothing.
	if s, _ := fdKinds(t, p.pid()); s < baseSockets+2*n {
		t.Fatalf("sluice has %d sockets with %d connections open, want at least %d", s, n, baseSockets+2*n)
	}
	for _, c := range conns {
		_ = c.Close()
	}
	p.waitN(n+1, "access", isMsg("access"))

	deadline := time.Now().Add(waitLimit)
	for {
		s, o := fdKinds(t, p.pid())
		if s == baseSockets && o <= baseOthers+pipePool {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sluice holds %d sockets and %d other fds, baseline %d and %d (+%d pipes)",
				s, o, baseSockets, baseOthers, pipePool)
		}
		time.Sleep(20 * time.Millisecond) // poll; /proc has no change signal
	}

	want, got := sluiceGoroutines(t, ref), sluiceGoroutines(t, p)
	// Idle workers (goroutines kept with grown stacks for the next
	// connection) are bounded by their pool and end after a few idle
	// seconds; they are not connections' goroutines.
	want, _ = withoutIdleWorkers(want)
	got, idle := withoutIdleWorkers(got)
	if idle > maxIdleWorkers {
		t.Fatalf("%d idle workers, more than the pool's cap of %d", idle, maxIdleWorkers)
	}
	t.Logf("goroutines running sluice code: %d in a fresh sluice, %d (+%d idle workers) after %d connections", len(want), len(got), idle, n)
	if len(got) != len(want) {
		t.Fatalf("after %d connections closed sluice runs %d goroutines of its own, a fresh one %d; now:\n\n%s",
			n, len(got), len(want), strings.Join(got, "\n\n"))
	}
}
