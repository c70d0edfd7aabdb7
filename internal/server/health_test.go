package server

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestHealthFollowsListeners: a listener that fails under sluice makes it
// unhealthy, naming the rule; a reload that moves the rule to another
// address replaces the failed listener, and with it the failure. Closing
// listeners itself (the reload, then the stop) is no failure.
func TestHealthFollowsListeners(t *testing.T) {
	a1 := echoServer(t, "a1")
	free := freeAddrs(t, 2)
	l1, l2 := free[0], free[1]
	srv := startServer(t, parse(t, ruleTOML("a", l1, a1)+ruleTOML("b", freeAddr(t), a1)))
	if ok, why := srv.Healthy(); !ok {
		t.Fatalf("healthy after start: false (%s)", why)
	}

	srv.mu.Lock()
	ln := srv.rules[0].lns[0]
	srv.mu.Unlock()
	shutdownListener(t, ln)
	why := waitUnhealthy(t, srv)
	if !strings.Contains(why, `rule "a": listen `+l1) {
		t.Errorf("unhealthy because %q, want it to name rule \"a\" on %s", why, l1)
	}

	if _, err := srv.Reload(parse(t, ruleTOML("a", l2, a1)+ruleTOML("b", freeAddr(t), a1))); err != nil {
		t.Fatal(err)
	}
	if got := dial(t, l2).ask(t, "moved"); got != "a1 moved" {
		t.Fatalf("through the moved listener: %q", got)
	}
	if ok, why := srv.Healthy(); !ok {
		t.Errorf("healthy after moving the failed listener away: false (%s)", why)
	}
}

// shutdownListener breaks ln's socket from under its accept loop, as no part
// of sluice does: shutdown(2) of a listening socket makes accept fail.
func shutdownListener(t *testing.T, ln net.Listener) {
	t.Helper()
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Shutdown(int(fd), unix.SHUT_RDWR) }); err != nil || serr != nil {
		t.Fatalf("shutdown the listener: %v %v", err, serr)
	}
}

// waitUnhealthy waits, boundedly, for srv to report itself unhealthy and
// returns why.
func waitUnhealthy(t *testing.T, srv *Server) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if ok, why := srv.Healthy(); !ok {
			return why
		}
	}
	t.Fatal("still healthy 10 s after a listener failed")
	return ""
}

// TestShutdownKeepsRulesListed: while Shutdown drains, the rule and its live
// connection stay listed, closing the connection ends the drain, and a
// reload is refused.
func TestShutdownKeepsRulesListed(t *testing.T) {
	a1, la := echoServer(t, "a1"), freeAddr(t)
	cfg := parse(t, ruleTOML("a", la, a1)) // drain_timeout 5s
	srv := startServer(t, cfg)
	dial(t, la).ask(t, "hi")

	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		srv.Shutdown()
	}()
	waitUnhealthy(t, srv) // draining
	if rules := srv.Rules(); len(rules) != 1 || rules[0].Name != "a" {
		t.Errorf("rules while draining: %+v, want rule a", rules)
	}
	conns := srv.Connections()
	if len(conns) != 1 || srv.Live() != 1 {
		t.Fatalf("connections while draining: %+v, live %d; want the one", conns, srv.Live())
	}
	if _, err := srv.Reload(cfg); !errors.Is(err, ErrStopping) {
		t.Errorf("reload while draining: %v, want ErrStopping", err)
	}
	if !srv.CloseConnection(conns[0].ID) {
		t.Fatalf("closing connection %d while draining: not found", conns[0].ID)
	}
	select {
	case <-stopped:
	case <-time.After(4 * time.Second): // under the drain timeout of 5 s
		t.Fatal("Shutdown still draining after its last connection was closed")
	}
}
