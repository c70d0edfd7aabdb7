package tcp

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"sluice/internal/backend"
	"sluice/internal/conntrack"
	"sluice/internal/relay"
	"sluice/internal/testkit/loopback"
)

// holdingBackend is a backend that records the clients it sees (each
// sends its number as a first line) and how many it held at once, and
// answers each "ok" once hold says so.
type holdingBackend struct {
	addr string
	hold func() // returns when the connection may be answered
	mu   sync.Mutex
	seen []int
	live int
	peak int
	all  *seenLog // every backend's clients, in the order seen; may be nil
}

// seenLog is the clients several backends saw, in the order seen.
type seenLog struct {
	mu   sync.Mutex
	seen []int
}

func newHoldingBackend(t *testing.T, hold func()) *holdingBackend {
	h := &holdingBackend{hold: hold}
	h.addr = loopback.Serve(t, func(c net.Conn) {
		defer c.Close()
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return
		}
		var n int
		fmt.Sscan(line, &n)
		h.mu.Lock()
		h.seen = append(h.seen, n)
		h.live++
		h.peak = max(h.peak, h.live)
		h.mu.Unlock()
		if h.all != nil {
			h.all.mu.Lock()
			h.all.seen = append(h.all.seen, n)
			h.all.mu.Unlock()
		}
		h.hold()
		h.mu.Lock()
		h.live--
		h.mu.Unlock()
		c.Write([]byte("ok\n"))
	})
	return h
}

// serveQueued starts a Service whose pool is built from st over the
// backends, on the engine (direct) or the net package's path.
func serveQueued(t *testing.T, st backend.Settings, maxConns int, direct bool, backends ...string) *fixture {
	t.Helper()
	logs := &logBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	st.Name, st.ConnectTimeout, st.Retries = "t", time.Second, len(backends)-1
	for _, b := range backends {
		ap := netip.MustParseAddrPort(b)
		st.Backends = append(st.Backends, backend.Target{Address: backend.Address{Network: "tcp", Host: ap.Addr().String(), Port: ap.Port()}, Weight: 1, MaxConns: maxConns})
	}
	rule := Rule{Name: "t", Pool: backend.NewPool(st, nil, logger)}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deps := Deps{Logger: logger, Pools: relay.NewPools(0), IDs: &conntrack.IDs{}, Table: conntrack.NewTable()}
	if direct {
		deps.Engine = newEngine(t)
	}
	svc := NewService(&rule, deps)
	served := make(chan struct{})
	go func() {
		defer close(served)
		svc.Serve(ln)
	}()
	t.Cleanup(func() {
		svc.CloseListeners()
		<-served
		svc.Drain(time.Second)
		if deps.Engine != nil {
			deps.Engine.Close()
		}
	})
	return &fixture{addr: ln.Addr().String(), logs: logs, svc: svc}
}

// queueSettings are pool settings with a queue_timeout and a max_queue.
func queueSettings(timeout time.Duration, maxQueue int) backend.Settings {
	return backend.Settings{QueueTimeout: timeout, MaxQueue: maxQueue}
}

// forEachPath runs f on the engine's path and on the net package's.
func forEachPath(t *testing.T, f func(t *testing.T, direct bool)) {
	for _, direct := range []bool{true, false} {
		name := "net"
		if direct {
			name = "direct"
		}
		t.Run(name, func(t *testing.T) { f(t, direct) })
	}
}

// ask dials addr, sends n as a first line and returns the connection.
func ask(t *testing.T, addr string, n int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "%d\n", n)
	return c
}

// tryAsk is ask for a client that may be refused as it connects: nil
// then.
func tryAsk(t *testing.T, addr string, n int) net.Conn {
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		return nil
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "%d\n", n)
	return c
}

// answer reads the reply of a client from ask within limit.
func answer(c net.Conn, limit time.Duration) (string, error) {
	c.SetReadDeadline(time.Now().Add(limit))
	return bufio.NewReader(c).ReadString('\n')
}

// ends returns the access lines' ends, counted.
func ends(lines []map[string]any) map[string]int {
	out := map[string]int{}
	for _, l := range lines {
		out[l["end"].(string)]++
	}
	return out
}

// TestQueueServesEveryClientInOrder: with max_connections = 2 on each of
// two backends and a queue_timeout, 50 clients that connect one after the
// other are all served, none refused, never more than 2 at once on a
// backend, and, on the engine's path, in the order they came (each within
// the 4 slots that free concurrently of its place).
func TestQueueServesEveryClientInOrder(t *testing.T) {
	forEachPath(t, func(t *testing.T, direct bool) {
		hold := func() { time.Sleep(20 * time.Millisecond) }
		b1, b2 := newHoldingBackend(t, hold), newHoldingBackend(t, hold)
		all := &seenLog{}
		b1.all, b2.all = all, all
		f := serveQueued(t, queueSettings(10*time.Second, 1024), 2, direct, b1.addr, b2.addr)
		const n = 50
		conns := make([]net.Conn, n)
		for i := range n {
			conns[i] = ask(t, f.addr, i)
		}
		// Each client reads its answer and closes, freeing its slot, on
		// its own: one read in turn would hold up the queue.
		var wg sync.WaitGroup
		for i, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if got, err := answer(c, 15*time.Second); got != "ok\n" {
					t.Errorf("client %d: %q %v", i, got, err)
				}
				c.Close()
			}()
		}
		wg.Wait()
		lines := f.logs.waitAccess(t, n)
		if e := ends(lines); e["eof"] != n {
			t.Fatalf("ends %v; want %d eof", e, n)
		}
		for _, b := range []*holdingBackend{b1, b2} {
			b.mu.Lock()
			if b.peak > 2 {
				t.Errorf("a backend held %d connections at once; max_connections is 2", b.peak)
			}
			b.mu.Unlock()
		}
		all.mu.Lock()
		served := all.seen
		all.mu.Unlock()
		t.Logf("order seen: %v", served)
		if !direct {
			// On the net package's path each connection reaches the queue
			// from a goroutine of its own, in the order they run: near
			// arrival order, not exactly it.
			return
		}
		for pos, client := range served {
			if d := pos - client; d > 4 || d < -4 {
				t.Errorf("client %d was served %d-th: %v", client, pos, served)
				break
			}
		}
	})
}

// TestQueueTimeoutRefuses: a client that waits longer than queue_timeout
// for a backend that stays full is refused with rejected:queue-timeout,
// no sooner than the timeout and within a second after.
func TestQueueTimeoutRefuses(t *testing.T) {
	forEachPath(t, func(t *testing.T, direct bool) {
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		b := newHoldingBackend(t, func() { <-release })
		const timeout = 300 * time.Millisecond
		f := serveQueued(t, queueSettings(timeout, 1024), 1, direct, b.addr)
		ask(t, f.addr, 0)
		waitSeen(t, b, 1)
		began := time.Now()
		c := ask(t, f.addr, 1)
		_, err := answer(c, 5*time.Second)
		waited := time.Since(began)
		if err == nil || waited < timeout || waited > timeout+time.Second {
			t.Fatalf("waiting client ended after %v with %v; want closed after %v (+1 s at most)", waited, err, timeout)
		}
		lines := f.logs.waitAccess(t, 1)
		if e := lines[0]["end"]; e != "rejected:queue-timeout" {
			t.Fatalf("end %v; want rejected:queue-timeout", e)
		}
	})
}

// TestQueueFullRefuses: with max_queue = 3, of 10 clients that find
// every backend full 3 wait and 7 are refused at once
// (rejected:queue-full, well before the queue_timeout); once the
// backends are free the 3 are served.
func TestQueueFullRefuses(t *testing.T) {
	forEachPath(t, func(t *testing.T, direct bool) {
		release := make(chan struct{})
		b := newHoldingBackend(t, func() { <-release })
		f := serveQueued(t, queueSettings(time.Minute, 3), 1, direct, b.addr)
		first := ask(t, f.addr, 0)
		waitSeen(t, b, 1)
		conns := make([]net.Conn, 10)
		for i := range conns {
			conns[i] = tryAsk(t, f.addr, i+1)
		}
		lines := f.logs.waitAccess(t, 7)
		if e := ends(lines); e["rejected:queue-full"] != 7 || len(lines) != 7 {
			t.Fatalf("ends %v; want 7 rejected:queue-full", e)
		}
		close(release)
		if got, err := answer(first, 10*time.Second); got != "ok\n" {
			t.Fatalf("first client: %q %v", got, err)
		}
		first.Close()
		// Read every answer at once: the clients queued first are not
		// known (on the net package's path each waits in its own
		// goroutine), and each frees its slot only once it closes.
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for _, c := range conns {
			if c == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, _ := answer(c, 10*time.Second)
				c.Close()
				mu.Lock()
				defer mu.Unlock()
				if got == "ok\n" {
					ok++
				}
			}()
		}
		wg.Wait()
		if ok != 3 {
			t.Fatalf("%d waiting clients served; want 3", ok)
		}
		if e := ends(f.logs.waitAccess(t, 11)); e["eof"] != 4 {
			t.Fatalf("ends %v; want 4 eof", e)
		}
	})
}

// waitSeen waits, boundedly, until b has seen n clients.
func waitSeen(t *testing.T, b *holdingBackend, n int) {
	t.Helper()
	for range 1000 {
		b.mu.Lock()
		got := len(b.seen)
		b.mu.Unlock()
		if got >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("backend saw fewer than %d clients", n)
}
