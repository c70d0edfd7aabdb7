package server

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// openFDs counts the process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(entries)
}

// TestListenersCostOneDescriptorEach: rules added by a reload cost one
// descriptor and no goroutine per listening port while they are idle;
// each still carries a connection, and a reload that removes them gives
// their descriptors back.
func TestListenersCostOneDescriptorEach(t *testing.T) {
	const n = 200
	a1 := echoServer(t, "a1")
	addrs := freeAddrs(t, n+1)
	one := parse(t, ruleTOML("r0", addrs[0], a1))
	srv := startServer(t, one)
	if srv.engine == nil {
		t.Skip("no engine on this platform: every listener has its accept goroutine")
	}
	var text strings.Builder
	text.WriteString(ruleTOML("r0", addrs[0], a1))
	for i, a := range addrs[1:] {
		text.WriteString(ruleTOML(fmt.Sprintf("r%d", i+1), a, a1))
	}
	many := parse(t, text.String())
	fds, goroutines := openFDs(t), runtime.NumGoroutine()
	if _, err := srv.Reload(many); err != nil {
		t.Fatal(err)
	}
	if got := openFDs(t) - fds; got > n+n/20 {
		t.Errorf("%d listeners added %d descriptors, want at most %d", n, got, n+n/20)
	}
	if got := runtime.NumGoroutine() - goroutines; got > n/10 {
		t.Errorf("%d idle listeners added %d goroutines, want at most %d", n, got, n/10)
	}
	for i, a := range addrs {
		c := dial(t, a)
		if got := c.ask(t, "hi"); got != "a1 hi" {
			t.Fatalf("listener %d (%s): %q", i, a, got)
		}
		c.c.Close()
	}
	if _, err := srv.Reload(one); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for openFDs(t) > fds+n/20 {
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors open 10 s after the reload removed %d listeners, %d before they were added", openFDs(t), n, fds)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
