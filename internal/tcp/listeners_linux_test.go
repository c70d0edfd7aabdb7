package tcp

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"sluice/internal/backend"
	"sluice/internal/conntrack"
	"sluice/internal/relay"
)

// openFDs counts the process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("count descriptors: %v", err)
	}
	return len(entries)
}

// TestListenersWatchedByLoops: n listeners that the engine's loops accept
// from cost the service no descriptor besides their own sockets and no
// goroutine while they are idle; every one carries a connection; and
// CloseListeners ends every one with nil, closing their sockets.
func TestListenersWatchedByLoops(t *testing.T) {
	const n = 200
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ap := netip.MustParseAddrPort(reporter(t, false))
	pool := backend.NewPool(backend.Settings{Name: "t", ConnectTimeout: 5 * time.Second, Backends: []backend.Target{
		{Address: backend.Address{Network: "tcp", Host: ap.Addr().String(), Port: ap.Port()}, Weight: 1},
	}}, nil, logger)
	engine, err := relay.NewEngine(2)
	if err != nil {
		t.Fatalf("the direct path needs the engine: %v", err)
	}
	t.Cleanup(engine.Close)
	svc := NewService(&Rule{Name: "t", Pool: pool, Workers: 2}, Deps{Logger: logger, Pools: relay.NewPools(0), Engine: engine, IDs: &conntrack.IDs{}, Table: conntrack.NewTable()})
	lns := make([]net.Listener, n)
	for i := range lns {
		if lns[i], err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	fds, goroutines := openFDs(t), runtime.NumGoroutine()
	var mu sync.Mutex
	ends := map[net.Listener]error{}
	for _, ln := range lns {
		svc.Take(ln, func(err error) {
			mu.Lock()
			defer mu.Unlock()
			ends[ln] = err
		})
	}
	if got := openFDs(t) - fds; got > 0 {
		t.Errorf("taking %d listeners opened %d more descriptors, want none", n, got)
	}
	if got := runtime.NumGoroutine() - goroutines; got > n/10 {
		t.Errorf("%d idle listeners started %d goroutines, want at most %d", n, got, n/10)
	}
	for i, ln := range lns {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "none\n" {
			t.Fatalf("listener %d: %q %v", i, line, err)
		}
		c.Close()
	}
	svc.CloseListeners()
	svc.Drain(5 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	if len(ends) != n {
		t.Errorf("%d of %d listeners told their end after CloseListeners", len(ends), n)
	}
	for ln, err := range ends {
		if err != nil {
			t.Errorf("%s ended with %v, want nil", ln.Addr(), err)
		}
	}
	if got := fds - openFDs(t); got < n {
		t.Errorf("CloseListeners closed %d descriptors, want the %d listeners'", got, n)
	}
}
