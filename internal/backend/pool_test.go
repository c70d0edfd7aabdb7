package backend

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sluice/internal/testkit/loopback"
)

// dialName dials through p and returns the name the backend sent.
func dialName(t *testing.T, p *Pool) (string, *Backend) {
	t.Helper()
	conn, b, err := p.Dial(context.Background(), netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer b.Release()
	return readName(t, conn), b
}

func TestDialRefusedTriesNext(t *testing.T) {
	refused := refusedAddr(t)
	good := startNameServer(t, "good", "127.0.0.1:0")
	logs := newLogRecorder()
	rule := Settings{Name: "web", Balance: First, Retries: 1,
		Backends: backends([]Address{refused, good.addr}, nil)}
	p := NewPool(rule, nil, logs.logger())

	name, b := dialName(t, p)
	if name != "good" || b.Address() != good.addr {
		t.Fatalf("served by %q (%v), want good", name, b.Address())
	}
	bad := p.backends[0]
	if bad.ConnectErrors() != 1 || b.ConnectErrors() != 0 {
		t.Fatalf("connect errors %d and %d, want 1 and 0", bad.ConnectErrors(), b.ConnectErrors())
	}
	if bad.Active() != 0 || b.Active() != 0 {
		t.Fatalf("active %d and %d after release, want 0 and 0", bad.Active(), b.Active())
	}
	if bad.ConnectionsTotal() != 0 || b.ConnectionsTotal() != 1 {
		t.Fatalf("connections total %d and %d, want 0 (refused) and 1", bad.ConnectionsTotal(), b.ConnectionsTotal())
	}

	// Without retries the refusal reaches the caller, naming rule and backend.
	rule.Retries = 0
	p = NewPool(rule, nil, nil)
	_, _, err := p.Dial(context.Background(), netip.Addr{})
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Dial without retries: %v, want connection refused", err)
	}
	for _, want := range []string{`rule "web"`, "backend " + refused.String()} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not contain %q", err, want)
		}
	}
}

func TestDialAllDownFailsAtOnce(t *testing.T) {
	a, b := refusedAddr(t), refusedAddr(t)
	logs := newLogRecorder()
	rule := Settings{Name: "web", Balance: RoundRobin, Retries: 1,
		Backends: backends([]Address{a, b}, nil)}
	p := NewPool(rule, nil, logs.logger())
	p.now = newFakeClock().Now

	// Each Dial tries both; the third marks both down (fall 3).
	for i := range passiveFall {
		_, _, err := p.Dial(context.Background(), netip.Addr{})
		if err == nil || errors.Is(err, ErrNoBackend) || !strings.Contains(err.Error(), "2 backends tried") {
			t.Fatalf("Dial %d: %v, want both backends refused", i, err)
		}
	}
	for _, x := range p.backends {
		if x.Up() || logs.count("backend down", x.Address().String()) != 1 {
			t.Fatalf("backend %v: up=%v, %d down records; want down, logged once",
				x.Address(), x.Up(), logs.count("backend down", x.Address().String()))
		}
	}
	for range 5 {
		_, _, err := p.Dial(context.Background(), netip.Addr{})
		if !errors.Is(err, ErrNoBackend) {
			t.Fatalf("Dial with all down: %v, want ErrNoBackend", err)
		}
	}
	for _, x := range p.backends {
		if n := x.ConnectErrors(); n != passiveFall {
			t.Fatalf("backend %v: %d connect errors, want %d: a down backend was dialed", x.Address(), n, passiveFall)
		}
		if n := logs.count("backend down", x.Address().String()); n != 1 {
			t.Fatalf("backend %v: %d down records, want 1", x.Address(), n)
		}
	}
}

func TestDialRetriesAreBounded(t *testing.T) {
	addrs := []Address{refusedAddr(t), refusedAddr(t), refusedAddr(t), refusedAddr(t)}
	p := NewPool(Settings{Name: "web", Balance: RoundRobin, Retries: 2,
		Backends: backends(addrs, nil)}, nil, nil)
	_, _, err := p.Dial(context.Background(), netip.Addr{})
	if err == nil || !strings.Contains(err.Error(), "3 backends tried") {
		t.Fatalf("Dial: %v, want 3 backends tried", err)
	}
	total := uint64(0)
	for _, b := range p.backends {
		if b.ConnectErrors() > 1 {
			t.Fatalf("backend %v tried %d times in one Dial", b.Address(), b.ConnectErrors())
		}
		total += b.ConnectErrors()
	}
	if total != 3 {
		t.Fatalf("%d dials, want 3 (1 + retries)", total)
	}
}

func TestDialCancelledIsNotHeldAgainstBackend(t *testing.T) {
	good := startNameServer(t, "good", "127.0.0.1:0")
	p := NewPool(Settings{Name: "web", Backends: backends([]Address{good.addr}, nil)}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 2 * passiveFall {
		if _, _, err := p.Dial(ctx, netip.Addr{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Dial with a cancelled context: %v, want context.Canceled", err)
		}
	}
	b := p.backends[0]
	if !b.Up() || b.ConnectErrors() != 0 || b.Active() != 0 {
		t.Fatalf("after cancelled dials: up=%v errors=%d active=%d, want true 0 0", b.Up(), b.ConnectErrors(), b.Active())
	}
}

func TestDialTimeoutTriesNext(t *testing.T) {
	stuck := stuckAddr(t)
	good := startNameServer(t, "good", "127.0.0.1:0")
	rule := Settings{Name: "web", Balance: First, Retries: 1, ConnectTimeout: 200 * time.Millisecond,
		Backends: backends([]Address{stuck, good.addr}, nil)}
	p := NewPool(rule, nil, nil)
	if name, _ := dialName(t, p); name != "good" {
		t.Fatalf("served by %q, want good", name)
	}
	if n := p.backends[0].ConnectErrors(); n != 1 {
		t.Fatalf("stuck backend: %d connect errors, want 1", n)
	}
	rule.Retries = 0
	_, _, err := NewPool(rule, nil, nil).Dial(context.Background(), netip.Addr{})
	// A timeout, and sluice's own rather than the kernel's (ETIMEDOUT).
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || errors.Is(err, syscall.ETIMEDOUT) {
		t.Fatalf("Dial of a backend that never answers: %v, want the connect timeout", err)
	}
}

// stuckAddr returns a loopback address whose listener never completes a
// handshake.
func stuckAddr(t *testing.T) Address {
	return parseAddr(t, loopback.Silent(t))
}

func TestDialHostNameTriesAddressesInOrder(t *testing.T) {
	good := startNameServer(t, "good", "127.0.0.1:0")
	dns := startDNS(t)
	// 127.0.0.2 has nothing on the port: refused, then 127.0.0.1 answers.
	dns.set(testName, "127.0.0.2", "127.0.0.1")
	r := NewResolver(dns.lookup, nil)
	addr := Address{Network: "tcp", Host: testName, Port: good.addr.Port}
	p := NewPool(Settings{Name: "web", Retries: 0, Backends: backends([]Address{addr}, nil)}, r, nil)
	for range 2 {
		if name, _ := dialName(t, p); name != "good" {
			t.Fatalf("served by %q, want good", name)
		}
	}
	if n := p.backends[0].ConnectErrors(); n != 0 {
		t.Fatalf("%d connect errors, want 0: one good address is enough", n)
	}
	ap, err := p.backends[0].ResolveAddr(context.Background(), 0)
	if err != nil || ap != netip.MustParseAddrPort("127.0.0.2:"+portString(good.addr)) {
		t.Fatalf("ResolveAddr = %v, %v; want the first address", ap, err)
	}

	dns.set(testName, "127.0.0.2")
	r.now = func() time.Time { return time.Now().Add(time.Hour) } // past the TTL
	_, _, err = p.Dial(context.Background(), netip.Addr{})
	if !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), "backend "+addr.String()) {
		t.Fatalf("Dial after re-resolution to a dead address: %v, want refused naming %v", err, addr)
	}
}

func portString(a Address) string {
	_, port, _ := net.SplitHostPort(a.String())
	return port
}

func TestDialFollowsReResolution(t *testing.T) {
	one := startNameServer(t, "one", "127.0.0.1:0")
	startNameServer(t, "two", "127.0.0.3:"+portString(one.addr))
	dns := startDNS(t)
	dns.set(testName, "127.0.0.1")
	r := NewResolver(dns.lookup, nil)
	clock := newFakeClock()
	r.now = clock.Now
	addr := Address{Network: "tcp", Host: testName, Port: one.addr.Port}
	p := NewPool(Settings{Name: "web", ResolveTTL: time.Minute,
		Backends: backends([]Address{addr}, nil)}, r, nil)

	if name, _ := dialName(t, p); name != "one" {
		t.Fatalf("served by %q, want one", name)
	}
	dns.set(testName, "127.0.0.3")
	if name, _ := dialName(t, p); name != "one" {
		t.Fatalf("served by %q within the TTL, want one", name)
	}
	clock.Advance(time.Minute)
	if name, _ := dialName(t, p); name != "two" {
		t.Fatalf("served by %q after the TTL, want two", name)
	}
}

func TestDialUnix(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "b.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	s := &nameServer{name: "unix", ln: ln}
	go s.serve()
	t.Cleanup(func() { ln.Close() })
	addr := Address{Network: "unix", Path: path}
	p := NewPool(Settings{Name: "sock", Backends: backends([]Address{addr}, nil)}, nil, nil)
	if name, _ := dialName(t, p); name != "unix" {
		t.Fatalf("served by %q, want unix", name)
	}
	if _, err := p.backends[0].ResolveAddr(context.Background(), 0); err == nil {
		t.Fatal("ResolveAddr of a unix backend succeeded")
	}
}

func TestDialBalancesOverRealBackends(t *testing.T) {
	servers := []*nameServer{
		startNameServer(t, "a", "127.0.0.1:0"),
		startNameServer(t, "b", "127.0.0.1:0"),
		startNameServer(t, "c", "127.0.0.1:0"),
	}
	addrs := []Address{servers[0].addr, servers[1].addr, servers[2].addr}
	p := NewPool(Settings{Name: "web", Balance: RoundRobin,
		Backends: backends(addrs, []int{2, 1, 1})}, nil, nil)
	var got strings.Builder
	for range 8 {
		name, _ := dialName(t, p)
		got.WriteString(name)
	}
	if got.String() != "abcaabca" {
		t.Fatalf("served by %s, want abcaabca", got.String())
	}
}

func TestPassiveDownAndRecoveryOverRealListener(t *testing.T) {
	good := startNameServer(t, "good", "127.0.0.1:0")
	flaky := refusedAddr(t)
	logs := newLogRecorder()
	p := NewPool(Settings{Name: "web", Balance: RoundRobin, Retries: 1,
		Backends: backends([]Address{flaky, good.addr}, nil)}, nil, logs.logger())
	clock := newFakeClock()
	p.now = clock.Now

	for range 10 {
		if name, _ := dialName(t, p); name != "good" {
			t.Fatalf("served by %q, want good", name)
		}
	}
	fb := p.backends[0]
	if fb.Up() || fb.ConnectErrors() != passiveFall || logs.count("backend down", flaky.String()) != 1 {
		t.Fatalf("flaky: up=%v errors=%d, want down after exactly %d", fb.Up(), fb.ConnectErrors(), passiveFall)
	}
	// The backend comes to life; after the cool-down one trial finds it.
	startNameServer(t, "revived", flaky.String())
	clock.Advance(cooldownMin)
	if name, _ := dialName(t, p); name != "revived" {
		t.Fatalf("trial served by %q, want revived", name)
	}
	if !fb.Up() || logs.count("backend up", flaky.String()) != 1 {
		t.Fatal("a successful trial did not bring the backend up, logged once")
	}
	if rec, _ := logs.last("backend up", flaky.String()); rec.Attrs["rule"] != "web" || rec.Attrs["reason"] == "" {
		t.Fatalf("backend up record %v lacks rule or reason", rec.Attrs)
	}
}

func TestInheritKeepsHealthAndCounters(t *testing.T) {
	a, b := testAddr(1), testAddr(2)
	old := NewPool(Settings{Name: "web", Backends: backends([]Address{a, b}, nil)}, nil, nil)
	markDown(t, old.backends[0])
	held, err := old.Pick(netip.Addr{})
	if err != nil || held != old.backends[1] {
		t.Fatalf("Pick = %v, %v; want the up backend", held, err)
	}

	c := testAddr(3)
	next := NewPool(Settings{Name: "web", Backends: backends([]Address{c, b, a}, nil)}, nil, nil)
	next.Inherit(old)
	na, nb, nc := next.backends[2], next.backends[1], next.backends[0]
	if na.Up() || na.ConnectErrors() != old.backends[0].ConnectErrors() {
		t.Fatalf("inherited a: up=%v errors=%d; want down with the old count", na.Up(), na.ConnectErrors())
	}
	if !nb.Up() || nb.Active() != 1 {
		t.Fatalf("inherited b: up=%v active=%d; want up with the old connection", nb.Up(), nb.Active())
	}
	if !nc.Up() || nc.ConnectErrors() != 0 {
		t.Fatal("a new backend did not start fresh")
	}
	held.Settle(3, 7) // the old connection ends
	held.Release()
	if nb.Active() != 0 {
		t.Fatalf("after the old connection ended the new pool counts %d, want 0", nb.Active())
	}
	if up, down := nb.Settled(); up != 3 || down != 7 || nb.ConnectionsTotal() != 1 || nb.Tally() != held.Tally() {
		t.Fatalf("inherited b: settled %d/%d, total %d; want the old connection's 3/7 and 1, one tally",
			up, down, nb.ConnectionsTotal())
	}
}

// TestDialPrelude: Attempts.Dial writes the prelude once connected, before
// handing the connection out. A prelude the backend does not take within
// the connect timeout is a failed connect, held against that backend, and
// the next one is tried.
func TestDialPrelude(t *testing.T) {
	stuck := loopback.Serve(t, func(c net.Conn) { <-t.Context().Done() }) // never reads
	got := make(chan int, 1)
	reads := loopback.Serve(t, func(c net.Conn) {
		c.SetReadDeadline(time.Now().Add(waitLimit))
		n, _ := io.Copy(io.Discard, c)
		got <- int(n)
	})
	logs := newLogRecorder()
	// The timeout bounds the write to the stuck backend and must also let
	// the whole prelude reach the reading one on a loaded machine.
	p := NewPool(Settings{Name: "web", Balance: First, Retries: 1, ConnectTimeout: 2 * time.Second,
		Backends: backends([]Address{parseAddr(t, stuck), parseAddr(t, reads)}, nil)}, nil, logs.logger())
	// More than the socket buffers of both ends hold: the stuck backend
	// never reads, so its receive buffer never grows past tcp_rmem's
	// default, and the send buffer stops at tcp_wmem's maximum (4 MiB).
	prelude := make([]byte, 24<<20)
	var a Attempts
	p.Begin(&a, netip.Addr{}, prelude, nil)
	conn, b, err := a.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if n := <-got; n != len(prelude) {
		t.Fatalf("backend read %d bytes, want the prelude's %d", n, len(prelude))
	}
	if b.Address().String() != reads || p.backends[0].ConnectErrors() != 1 {
		t.Fatalf("connected to %v, first backend's errors %d; want %v, 1", b.Address(), p.backends[0].ConnectErrors(), reads)
	}
	rec, ok := logs.last("connect failed, trying next backend", "")
	if want := "write tcp"; !ok || !strings.Contains(rec.Attrs["error"], want) || !strings.Contains(rec.Attrs["error"], "i/o timeout") {
		t.Fatalf("logged %v; want the prelude's %q timing out", rec.Attrs, want)
	}
	b.Release()
}
