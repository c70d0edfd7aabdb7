package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// udpFlow is a steady UDP request/response load: clients on several
// loopback addresses each send a numbered datagram, wait up to a second for
// its echo, and send the next. It counts what was sent and what came back
// (a late echo counts too), so that sent minus received is what was lost.
type udpFlow struct {
	t              *testing.T
	sent, received atomic.Int64
	stop           chan struct{}
	wg             sync.WaitGroup
}

// startUDPFlow starts perHost clients on each of 127.0.0.1 to
// 127.0.0.hosts, sending to addr.
func startUDPFlow(t *testing.T, addr string, hosts, perHost int) *udpFlow {
	t.Helper()
	to, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	f := &udpFlow{t: t, stop: make(chan struct{})}
	for h := 1; h <= hosts; h++ {
		for range perHost {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, byte(h))})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			f.wg.Go(func() { f.client(c, to) })
		}
	}
	t.Cleanup(f.halt)
	return f
}

// client sends numbered datagrams from c until the flow stops, then waits
// a second for the last echoes.
func (f *udpFlow) client(c *net.UDPConn, to *net.UDPAddr) {
	got := make(map[int]bool)
	for seq := 0; ; seq++ {
		select {
		case <-f.stop:
			f.await(c, got, seq, time.Now().Add(time.Second))
			return
		default:
		}
		if _, err := c.WriteToUDP([]byte(strconv.Itoa(seq)), to); err != nil {
			f.t.Errorf("%s: send: %v", c.LocalAddr(), err)
			return
		}
		f.sent.Add(1)
		f.await(c, got, seq, time.Now().Add(time.Second))
	}
}

// await reads echoes on c until the one of seq has come or deadline has
// passed, counting each sequence number once.
func (f *udpFlow) await(c *net.UDPConn, got map[int]bool, seq int, deadline time.Time) {
	buf := make([]byte, 64)
	for !got[seq] {
		c.SetReadDeadline(deadline)
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue // an ICMP error from an earlier moment
		}
		if i, err := strconv.Atoi(string(buf[:n])); err == nil && !got[i] {
			got[i] = true
			f.received.Add(1)
		}
	}
}

// waitProgress waits until n more echoes than from have come back.
func (f *udpFlow) waitProgress(from, n int64) {
	f.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for f.received.Load() < from+n {
		if time.Now().After(deadline) {
			f.t.Fatalf("UDP flow: %d echoes in %v, want %d (sent %d)", f.received.Load()-from, waitLimit, n, f.sent.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// halt stops the clients and waits for their last echoes.
func (f *udpFlow) halt() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	f.wg.Wait()
}

// udpGroupConfig is a config with one UDP rule "dns" served by two loops
// (two sockets) to backend, with the given session timeout.
func udpGroupConfig(backend, timeout string) func(addrs []string) string {
	return func(addrs []string) string {
		return fmt.Sprintf(`log_format = "json"

[[rule]]
name = "dns"
listen = %q
protocol = "udp"
backends = [%q]
workers = 2
udp_session_timeout = %q
drain_timeout = "5m"
`, addrs[0], backend, timeout)
	}
}

// TestUDPGroupAcrossReloadAndUpgrade runs a steady request/response flow
// from 16 clients (four ports on each of four loopback addresses) through
// a UDP rule with two loops, and meanwhile reloads the rule (a changed
// session timeout: the rule keeps its sockets) and upgrades sluice twice
// with SIGUSR2. Every socket of the group goes to the new process, which
// reads them all before the old one stops reading, so not one datagram is
// lost: a socket left behind would lose the clients the kernel hashes to
// it. Each upgraded process exits 0 once its sessions have drained.
func TestUDPGroupAcrossReloadAndUpgrade(t *testing.T) {
	t.Parallel()
	be := startUDPEcho(t, "127.0.0.1:0")
	backend := be.conn.LocalAddr().String()
	var g *group
	_, addrs, path := launchOps(t, 1, udpGroupConfig(backend, "60s"), func(path string) *proc {
		g = startGroup(t, "-c", path)
		return g.proc
	})
	flow := startUDPFlow(t, addrs[0], 4, 4)
	flow.waitProgress(0, 200)

	rewriteFile(t, path, udpGroupConfig(backend, "50s")(addrs))
	signalPid(t, g.cmd.Process.Pid, syscall.SIGHUP)
	if rec := g.wait("the reload", isMsg("reloaded")); !strings.Contains(fmt.Sprint(rec["changed"]), "dns") {
		t.Fatalf("reload logged %v, want rule dns changed", rec)
	}
	flow.waitProgress(flow.received.Load(), 200)

	second := upgrade(t, g, g.cmd.Process.Pid, 1)
	flow.waitProgress(flow.received.Load(), 200)
	if code := g.waitLeader(); code != 0 {
		t.Fatalf("old process exit code %d (%v), want 0", code, g.leaderErr)
	}
	third := upgrade(t, g, second, 2)
	flow.waitProgress(flow.received.Load(), 200)
	if code := waitPid(t, second); code != 0 {
		t.Errorf("second process exit code %d after handing over, want 0", code)
	}
	flow.halt()
	sent, received := flow.sent.Load(), flow.received.Load()
	t.Logf("UDP flow across a reload and two upgrades: %d datagrams sent, %d echoed, %d lost", sent, received, sent-received)
	if sent != received {
		t.Errorf("%d of %d datagrams lost across the reload and the upgrades", sent-received, sent)
	}
	for _, msg := range []string{"inherited socket not used by any rule: closing", "udp sockets kept: workers applies when the address is bound anew"} {
		if n := g.count(isMsg(msg)); n != 0 {
			t.Errorf("logged %q %d times: the group did not pass whole", msg, n)
		}
	}
	stopUpgraded(t, g, third, 3)
}
