package server

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"sluice/internal/config"
	"sluice/internal/testkit/loopback"
)

// echoServer is a backend that answers every line with its own name and the
// line, so a test can tell which backend it reached.
func echoServer(t *testing.T, name string) string {
	return loopback.Serve(t, func(c net.Conn) {
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			fmt.Fprintf(c, "%s %s\n", name, sc.Text())
		}
	})
}

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string { return loopback.Refusing(t) }

// freeAddrs returns n distinct loopback addresses nothing listens on: all
// are picked while the others are still held, so the kernel cannot hand
// out one port twice, as freeAddr called n times may.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("pick a free port: %v", err)
		}
		defer ln.Close()
		addrs[i] = ln.Addr().String()
	}
	return addrs
}

// parse builds a config from TOML text.
func parse(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.toml", []byte(text))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, text)
	}
	return cfg
}

// ruleTOML is one [[rule]] block.
func ruleTOML(name, listen string, backends ...string) string {
	return fmt.Sprintf("[[rule]]\nname = %q\nlisten = %q\nbackends = [%q]\ndrain_timeout = \"5s\"\n", name, listen, strings.Join(backends, `", "`))
}

func startServer(t *testing.T, cfg *config.Config) *Server {
	t.Helper()
	s := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.Start(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// client is a line-oriented connection through sluice.
type client struct {
	c  net.Conn
	sc *bufio.Scanner
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{c: c, sc: bufio.NewScanner(c)}
}

// ask sends a line and returns the answer, failing the test on error.
func (c *client) ask(t *testing.T, line string) string {
	t.Helper()
	c.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintln(c.c, line); err != nil {
		t.Fatalf("write: %v", err)
	}
	if !c.sc.Scan() {
		t.Fatalf("read: %v", c.sc.Err())
	}
	return c.sc.Text()
}

func TestReloadByDiff(t *testing.T) {
	a1, b1, b2, c1 := echoServer(t, "a1"), echoServer(t, "b1"), echoServer(t, "b2"), echoServer(t, "c1")
	free := freeAddrs(t, 4)
	la, lb, lc, lgone := free[0], free[1], free[2], free[3]
	srv := startServer(t, parse(t, ruleTOML("a", la, a1)+ruleTOML("b", lb, b1)+ruleTOML("gone", lgone, a1)))

	liveA := dial(t, la)
	liveB := dial(t, lb)
	liveGone := dial(t, lgone)
	for _, c := range []*client{liveA, liveB, liveGone} {
		c.ask(t, "hi")
	}

	rep, err := srv.Reload(parse(t, ruleTOML("a", la, a1)+ruleTOML("b", lb, b2)+ruleTOML("c", lc, c1)))
	if err != nil {
		t.Fatal(err)
	}
	want := Report{Added: []string{"c"}, Removed: []string{"gone"}, Changed: []string{"b"}, Unchanged: []string{"a"}}
	if fmt.Sprint(rep) != fmt.Sprint(want) {
		t.Fatalf("report %+v, want %+v", rep, want)
	}
	// Live connections of every kind carry on, on their old backends.
	if got := liveA.ask(t, "x"); got != "a1 x" {
		t.Fatalf("unchanged rule's live connection: %q", got)
	}
	if got := liveB.ask(t, "x"); got != "b1 x" {
		t.Fatalf("changed rule's live connection: %q", got)
	}
	if got := liveGone.ask(t, "x"); got != "a1 x" {
		t.Fatalf("removed rule's live connection: %q", got)
	}
	// New connections see the new config.
	if got := dial(t, lb).ask(t, "y"); got != "b2 y" {
		t.Fatalf("changed rule, new connection: %q", got)
	}
	if got := dial(t, lc).ask(t, "y"); got != "c1 y" {
		t.Fatalf("added rule: %q", got)
	}
	if c, err := net.DialTimeout("tcp", lgone, time.Second); err == nil {
		c.Close()
		t.Fatal("removed rule still accepts")
	}
	if srv.Live() != 5 {
		t.Fatalf("live = %d, want 5", srv.Live())
	}
}

func TestReloadMovesListener(t *testing.T) {
	a1 := echoServer(t, "a1")
	free := freeAddrs(t, 2)
	l1, l2 := free[0], free[1]
	srv := startServer(t, parse(t, ruleTOML("a", l1, a1)))
	live := dial(t, l1)
	live.ask(t, "hi")
	if _, err := srv.Reload(parse(t, ruleTOML("a", l2, a1))); err != nil {
		t.Fatal(err)
	}
	if got := dial(t, l2).ask(t, "z"); got != "a1 z" {
		t.Fatalf("new address: %q", got)
	}
	if c, err := net.DialTimeout("tcp", l1, time.Second); err == nil {
		c.Close()
		t.Fatal("old address still accepts")
	}
	if got := live.ask(t, "still"); got != "a1 still" {
		t.Fatalf("live connection on the old address: %q", got)
	}
}

// TestReloadFailureChangesNothing: a new config with an address that cannot
// be bound is refused whole, with every error, and the old rules serve on.
func TestReloadFailureChangesNothing(t *testing.T) {
	a1, a2 := echoServer(t, "a1"), echoServer(t, "a2")
	free := freeAddrs(t, 2)
	la, lnew := free[0], free[1]
	busy1, busy2 := echoServer(t, "busy"), echoServer(t, "busy")
	srv := startServer(t, parse(t, ruleTOML("a", la, a1)))
	_, err := srv.Reload(parse(t, ruleTOML("a", la, a2)+ruleTOML("n", lnew, a1)+ruleTOML("x", busy1, a1)+ruleTOML("y", busy2, a1)))
	if err == nil {
		t.Fatal("reload with addresses in use succeeded")
	}
	for _, want := range []string{
		fmt.Sprintf("rule \"x\": listen %s: address already in use", busy1),
		fmt.Sprintf("rule \"y\": listen %s: address already in use", busy2),
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if got := dial(t, la).ask(t, "q"); got != "a1 q" {
		t.Fatalf("old rule after failed reload: %q", got)
	}
	if c, err := net.DialTimeout("tcp", lnew, time.Second); err == nil {
		c.Close()
		t.Fatal("a rule of the failed reload is listening")
	}
	srv.mu.Lock()
	names := []string{}
	for _, r := range srv.rules {
		names = append(names, r.cfg.Name)
	}
	srv.mu.Unlock()
	if !slices.Equal(names, []string{"a"}) {
		t.Fatalf("rules after failed reload: %v", names)
	}
}

// TestStartFailureBindsNothing: one bad listen address fails the start and
// leaves no other listener open.
func TestStartFailureBindsNothing(t *testing.T) {
	a1 := echoServer(t, "a1")
	good, busy := freeAddr(t), echoServer(t, "busy")
	s := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	err := s.Start(parse(t, ruleTOML("good", good, a1)+ruleTOML("bad", busy, a1)))
	if err == nil || err.Error() != fmt.Sprintf("rule \"bad\": listen %s: address already in use", busy) {
		t.Fatalf("error %v", err)
	}
	if c, err := net.DialTimeout("tcp", good, time.Second); err == nil {
		c.Close()
		t.Fatal("the good rule is listening after a failed start")
	}
}

// TestReloadRenameKeepsSockets: renaming a rule while keeping its listen
// address hands its listener and live connections to the new name, where
// binding anew would find the address in use.
func TestReloadRenameKeepsSockets(t *testing.T) {
	a1, a2 := echoServer(t, "a1"), echoServer(t, "a2")
	l := freeAddr(t)
	srv := startServer(t, parse(t, ruleTOML("old", l, a1)))
	live := dial(t, l)
	live.ask(t, "hi")
	rep, err := srv.Reload(parse(t, ruleTOML("new", l, a2)))
	if err != nil {
		t.Fatal(err)
	}
	want := Report{Added: []string{}, Removed: []string{"old"}, Changed: []string{"new"}, Unchanged: []string{}}
	if fmt.Sprint(rep) != fmt.Sprint(want) {
		t.Fatalf("report %+v, want %+v", rep, want)
	}
	if got := live.ask(t, "still"); got != "a1 still" {
		t.Fatalf("live connection after the rename: %q", got)
	}
	if got := dial(t, l).ask(t, "x"); got != "a2 x" {
		t.Fatalf("new connection after the rename: %q", got)
	}
	if rules := srv.Rules(); len(rules) != 1 || rules[0].Name != "new" {
		t.Fatalf("rules after the rename: %+v", rules)
	}
}

// TestReloadCongestionControl: a new congestion_control rebuilds the
// backend pool (whose dialer applies it), and one the kernel lacks fails
// the reload, naming the rule, and changes nothing.
func TestReloadCongestionControl(t *testing.T) {
	a1 := echoServer(t, "a1")
	la := freeAddr(t)
	srv := startServer(t, parse(t, ruleTOML("a", la, a1)))
	pool := func() any {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return srv.rules[0].pool
	}
	before := pool()
	if _, err := srv.Reload(parse(t, ruleTOML("a", la, a1)+"congestion_control = \"reno\"\n")); err != nil {
		t.Fatal(err)
	}
	if pool() == before {
		t.Error("congestion_control changed but the backend pool was kept")
	}
	if got := dial(t, la).ask(t, "q"); got != "a1 q" {
		t.Fatalf("after reload: %q", got)
	}
	kept := pool()
	_, err := srv.Reload(parse(t, ruleTOML("a", la, a1)+"congestion_control = \"nosuchcc\"\n"))
	if err == nil || !strings.Contains(err.Error(), `rule "a": congestion_control "nosuchcc": this kernel has no such algorithm`) {
		t.Fatalf("reload to an unknown algorithm: %v", err)
	}
	if pool() != kept {
		t.Error("a failed reload replaced the pool")
	}
}

// TestReloadRightAfterStart: a reload right after the start moves a
// listener and closes the old one, and a stop then returns (the tcp
// package's TestCloseRightAfterTake holds the accept loops back).
func TestReloadRightAfterStart(t *testing.T) {
	a1 := echoServer(t, "a1")
	free := freeAddrs(t, 2)
	l1, l2 := free[0], free[1]
	srv := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv.Start(parse(t, ruleTOML("a", l1, a1))); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Reload(parse(t, ruleTOML("a", l2, a1))); err != nil {
		t.Fatal(err)
	}
	c := dial(t, l2)
	if got := c.ask(t, "z"); got != "a1 z" {
		t.Fatalf("new address: %q", got)
	}
	c.c.Close()
	if c, err := net.DialTimeout("tcp", l1, time.Second); err == nil {
		c.Close()
		t.Error("old address still accepts")
	}
	stopped := make(chan struct{})
	go func() {
		srv.Shutdown()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown still waiting 10 s after it began")
	}
}

// TestReloadRenameRenamesPool: a renamed rule's backend pool speaks with
// the new name (in its errors and logs), as every other setting of the
// pool takes the new value.
func TestReloadRenameRenamesPool(t *testing.T) {
	free := freeAddrs(t, 2)
	l, dead := free[0], free[1]
	srv := startServer(t, parse(t, ruleTOML("old", l, dead)))
	if _, err := srv.Reload(parse(t, ruleTOML("new", l, dead))); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	pool := srv.rules[0].pool
	srv.mu.Unlock()
	_, _, err := pool.Dial(t.Context(), netip.MustParseAddr("127.0.0.1"))
	if err == nil || !strings.Contains(err.Error(), `rule "new"`) {
		t.Fatalf("dial through the renamed rule's pool: %v, want an error naming rule \"new\"", err)
	}
}
