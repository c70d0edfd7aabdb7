package e2e

import (
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Shape of the flood in TestUDPOutOfDescriptors: floodPorts client sockets
// each send one datagram per round, a round every floodRound, for
// floodFor: a bounded number of datagrams (about 60,000), far more than
// the sessions that fit under udpFDLimit.
const (
	udpFDLimit = 64
	floodPorts = 200
	floodRound = 10 * time.Millisecond
	floodFor   = 3 * time.Second
)

// udpPausedMsg and udpResumedMsg are what sluice logs when a UDP rule
// cannot open sockets for new sessions, and when it can again.
const (
	udpPausedMsg  = "new sessions paused: cannot open sockets; backing off"
	udpResumedMsg = "opening sessions again"
)

// TestUDPOutOfDescriptors floods a UDP rule of sluice, run under prlimit
// with a small descriptor limit, from many source ports, so that most new
// clients find no descriptor for their session's socket. sluice must say so
// in one warning, not write an access line per datagram (the clients it
// turns away share one line per window, counting their datagrams in
// dropped), not hold the shortage against the backend, and serve a new
// client once the flood has stopped and its sessions have expired.
func TestUDPOutOfDescriptors(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("prlimit (util-linux) is not installed")
	}
	be := startUDPEcho(t, "127.0.0.1:0")
	p, addr := launch(t, "prlimit", func(listen string) []string {
		conf := writeConfig(t, udpConfig(be.conn.LocalAddr().String(), "2s", 0)(listen))
		return []string{"--nofile=" + strconv.Itoa(udpFDLimit), "--", sluiceBin, "-c", conf}
	})
	if lim := p.wait("the descriptor limit", isMsg("file descriptor limit")); lim.num("limit") != udpFDLimit {
		t.Fatalf("sluice runs with %v, want limit %d from prlimit", lim, udpFDLimit)
	}
	to, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	sent := flood(t, to)
	t.Logf("flood: %d datagrams from %d ports in %v", sent, floodPorts, time.Since(began).Round(time.Millisecond))

	// The sessions that got a socket expire 2 s after the flood; then a new
	// client must be served (the rule backs off for up to a second between
	// attempts, so it may take a few tries).
	c := udpClient(t)
	deadline := time.Now().Add(waitLimit)
	for {
		err := udpRoundTrip(c, addr, []byte("after the flood"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new client served after the flood: %v", err)
		}
	}
	elapsed := time.Since(began)
	lines, bytes := p.logVolume()
	t.Logf("from the flood's start until a new client was served (%v) sluice logged %d lines, %d bytes",
		elapsed.Round(time.Millisecond), lines, bytes)
	p.wait("the warning", isMsg(udpPausedMsg))
	// The all-clear comes with a session opened a second after the last
	// failure (one episode, however a starved process flaps): new clients
	// keep coming until it does.
	for len(p.find(isMsg(udpResumedMsg))) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no all-clear while new clients were served")
		}
		udpRoundTrip(udpClient(t), addr, []byte("all clear?"))
		time.Sleep(100 * time.Millisecond)
	}
	if n := len(p.find(isMsg(udpPausedMsg))); n != 1 {
		t.Errorf("sluice warned %d times, want once", n)
	}
	if down := p.find(isMsg("backend down")); len(down) > 0 {
		t.Errorf("the shortage was held against the backend: %v", down[0])
	}
	checkShortageLines(t, p, elapsed)
}

// checkShortageLines checks the access lines of clients that found no
// socket: a few per second at most (one per window), saying why, and
// counting the datagrams turned away.
func checkShortageLines(t *testing.T, p *proc, elapsed time.Duration) {
	t.Helper()
	failed := p.find(func(r record) bool { return r.str("msg") == "access" && r.str("end") == "connect-failed" })
	served := p.find(func(r record) bool { return r.str("msg") == "access" && r.str("end") != "connect-failed" })
	t.Logf("%d connect-failed access lines and %d of sessions served in %v", len(failed), len(served), elapsed.Round(time.Millisecond))
	if limit := 2 + int(2*elapsed.Seconds()); len(failed) > limit {
		t.Fatalf("%d connect-failed access lines in %v, want at most %d (a few per second), first: %v",
			len(failed), elapsed.Round(time.Millisecond), limit, failed[0])
	}
	if len(failed) == 0 {
		t.Fatal("no access line for the clients turned away")
	}
	var dropped int64
	for _, r := range failed {
		if !strings.Contains(r.str("error"), "too many open files") {
			t.Errorf("access line %v: want the cause", r)
		}
		dropped += max(r.num("dropped"), 0)
	}
	if dropped < int64(floodPorts) {
		t.Errorf("the connect-failed lines count %d dropped datagrams, want at least one per port turned away (%d)", dropped, floodPorts)
	}
}

// flood sends from floodPorts client sockets to to, a datagram from each
// per round, for floodFor, and returns how many datagrams it sent. Replies
// are not read.
func flood(t *testing.T, to *net.UDPAddr) int {
	t.Helper()
	clients := make([]*net.UDPConn, floodPorts)
	for i := range clients {
		clients[i] = udpClient(t)
	}
	const senders = 4
	var wg sync.WaitGroup
	counts := make([]int, senders)
	stop := time.Now().Add(floodFor)
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := []byte("flood " + strconv.Itoa(g))
			tick := time.NewTicker(floodRound)
			defer tick.Stop()
			for time.Now().Before(stop) {
				for i := g; i < len(clients); i += senders {
					if _, err := clients[i].WriteToUDP(msg, to); err == nil {
						counts[g]++
					}
				}
				<-tick.C
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, n := range counts {
		total += n
	}
	return total
}

// logVolume returns how many lines and bytes the process has written to
// stderr so far.
func (p *proc) logVolume() (lines, bytes int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		bytes += len(l) + 1
	}
	return len(p.lines), bytes
}
