package tcp

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"sluice/internal/admit"
	"sluice/internal/backend"
	"sluice/internal/conntrack"
	"sluice/internal/relay"
)

// loopCounts counts the connections each engine loop accepted.
type loopCounts struct {
	mu sync.Mutex
	n  map[relay.Loop]int
}

func (c *loopCounts) add(at relay.Loop) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[at]++
}

// loops returns how many loops have accepted since the last take.
func (c *loopCounts) loops() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.n)
}

// take returns the counts so far and starts again from zero.
func (c *loopCounts) take() map[relay.Loop]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = make(map[relay.Loop]int)
	return n
}

// serveLoops starts a Service for rule, with workers loops of a
// two-loop engine accepting, in front of the backend at addr, and counts
// what each loop accepts.
func serveLoops(t *testing.T, rule Rule, workers int, addr string) (*fixture, *loopCounts) {
	t.Helper()
	logs := &logBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	ap := netip.MustParseAddrPort(addr)
	rule.Name, rule.Workers = "t", workers
	rule.Pool = backend.NewPool(backend.Settings{Name: "t", ConnectTimeout: 5 * time.Second, Backends: []backend.Target{
		{Address: backend.Address{Network: "tcp", Host: ap.Addr().String(), Port: ap.Port()}, Weight: 1},
	}}, nil, logger)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	engine, err := relay.NewEngine(2)
	if err != nil {
		t.Fatal(err)
	}
	svc := NewService(&rule, Deps{Logger: logger, Pools: relay.NewPools(0), Engine: engine, IDs: &conntrack.IDs{}, Table: conntrack.NewTable()})
	counts := &loopCounts{n: make(map[relay.Loop]int)}
	svc.accepted = counts.add
	serve := svc.take(ln)
	if l := svc.serving(); l.direct == nil || l.direct.watch.Loops() != min(workers, 2) {
		t.Fatalf("the listener is not watched by %d loops", min(workers, 2))
	}
	served := make(chan error, 1)
	go func() { served <- serve() }()
	t.Cleanup(func() {
		svc.CloseListeners()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		svc.Drain(5 * time.Second)
		engine.Close()
	})
	return &fixture{addr: ln.Addr().String(), logs: logs, svc: svc}, counts
}

// sources returns n local addresses to dial from: 127.0.0.2 on.
func sources(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("127.0.0.%d", 2+i)
	}
	return out
}

// TestEveryLoopAccepts: with two loops watching a listener, connections
// from many source addresses, dialed in parallel bursts, are each served
// and logged exactly once, and more than one loop accepts them.
func TestEveryLoopAccepts(t *testing.T) {
	f, counts := serveLoops(t, Rule{}, 2, reporter(t, false))
	clients := map[string]int{}
	total := 0
	for round := 0; ; round++ {
		srcs := sources(40)
		local := make([]string, len(srcs))
		var wg sync.WaitGroup
		for i, src := range srcs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				line, c, err := dialFrom(t, src, f.addr)
				if line != "none" {
					t.Errorf("client from %s: %q, %v", src, line, err)
					return
				}
				local[i] = c.LocalAddr().String()
				c.Close()
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		total += len(srcs)
		for _, a := range local {
			clients[a]++
		}
		if counts.loops() > 1 {
			break
		}
		if round == 50 {
			t.Fatalf("one loop accepted all of %d connections", total)
		}
	}
	for _, l := range f.logs.waitAccess(t, total) {
		if l["end"] != "eof" {
			t.Errorf("access line %v", l)
		}
		clients[l["client"].(string)]--
	}
	for c, n := range clients {
		if n != 0 {
			t.Errorf("client %s: %d more connections than access lines", c, n)
		}
	}
	if n := len(f.logs.access()); n != total {
		t.Errorf("%d access lines for %d connections", n, total)
	}
	t.Logf("%d connections; per loop: %v", total, counts.take())
}

// TestLimitsExactAcrossLoops: max_connections and max_connections_per_ip
// hold exactly when two loops admit at once. Each round, clients from 8
// addresses open 10 connections each in parallel and hold them: exactly
// 3 per address, and 10 in all, are admitted; the rest are refused. The
// rounds go on until one had both loops accepting.
func TestLimitsExactAcrossLoops(t *testing.T) {
	const maxConns, perIP, ips, each = 10, 3, 8, 10
	g := admit.NewGate(admit.Policy{MaxConnections: maxConns, MaxConnectionsPerIP: perIP})
	f, counts := serveLoops(t, Rule{Gate: g}, 2, echoBackend(t))
	lines := 0
	for round := 0; ; round++ {
		admitted, conns := hammer(t, f.addr, sources(ips), each)
		total := 0
		for src, n := range admitted {
			if n > perIP {
				t.Errorf("round %d: %d connections from %s admitted, limit %d", round, n, src, perIP)
			}
			total += n
		}
		if total != maxConns {
			t.Errorf("round %d: %d connections admitted, want exactly %d", round, total, maxConns)
		}
		for _, c := range conns {
			c.Close()
		}
		lines += ips * each
		f.logs.waitAccess(t, lines) // every slot released
		if t.Failed() {
			return
		}
		if len(counts.take()) > 1 {
			t.Logf("both loops admitted in round %d", round)
			return
		}
		if round == 20 {
			t.Fatal("one loop accepted every connection of 20 rounds")
		}
	}
}

// hammer opens each connections from every source address in parallel and
// returns, per source, how many are admitted (an echo comes back), and
// every connection, still open.
func hammer(t *testing.T, addr string, srcs []string, each int) (map[string]int, []net.Conn) {
	t.Helper()
	var mu sync.Mutex
	admitted := map[string]int{}
	var conns []net.Conn
	var wg sync.WaitGroup
	for _, src := range srcs {
		for range each {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					return // refused at once
				}
				ok := echoOnce(c, "x", 5*time.Second) == nil
				mu.Lock()
				defer mu.Unlock()
				conns = append(conns, c)
				if ok {
					admitted[src]++
				}
			}()
		}
	}
	wg.Wait()
	return admitted, conns
}

// TestOneWorkerOneLoop: a rule with workers = 1 is accepted by one loop
// of the engine, however many clients come at once.
func TestOneWorkerOneLoop(t *testing.T) {
	f, counts := serveLoops(t, Rule{}, 1, reporter(t, false))
	var wg sync.WaitGroup
	const n = 200
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			line, c, err := dialFrom(t, sources(50)[i%50], f.addr)
			if line != "none" {
				t.Errorf("client %d: %q, %v", i, line, err)
				return
			}
			c.Close()
		}()
	}
	wg.Wait()
	f.logs.waitAccess(t, n)
	if got := counts.take(); len(got) != 1 {
		t.Fatalf("per loop: %v; want one loop", got)
	}
}
