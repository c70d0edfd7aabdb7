package relay

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"sluice/internal/access"
	"sluice/internal/testkit/loopback"
)

// tinyBuffer is the send and receive buffer size asked for on the sockets
// of TestConnectingFirstWaits; the kernel doubles it, and a little more.
const tinyBuffer = 2 << 10

// gatedSink is a backend whose sockets have a tiny receive buffer, and
// which reads nothing of a connection until open is closed (or ten seconds
// passed), then all of it, and hands it to got.
func gatedSink(t *testing.T, open chan struct{}, got chan []byte) netip.AddrPort {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, tinyBuffer)
		})
	}}
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	loopback.ServeOn(t, ln, func(c net.Conn) {
		select {
		case <-open:
		case <-time.After(10 * time.Second): // the test gave up
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c)
		got <- b
	})
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// pattern returns n bytes that differ from their neighbours, so that a
// byte out of place shows.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// TestConnectingFirstWaits: a relay's First bytes (64 KiB) to a backend
// that takes them slowly (a tiny send buffer on sluice's socket, a tiny
// receive buffer on the backend's, which reads nothing at first) wait for
// room as any chunk does: they all arrive, after the Dialer's prelude and
// before the client's bytes, and count once as bytes up.
func TestConnectingFirstWaits(t *testing.T) {
	e := newEngine(t, 1)
	open, got := make(chan struct{}), make(chan []byte, 1)
	addr := gatedSink(t, open, got)
	bfd := startConnect(t, addr) // SO_SNDBUF set now holds: it stops the kernel growing the buffer
	if err := unix.SetsockoptInt(bfd, unix.SOL_SOCKET, unix.SO_SNDBUF, tinyBuffer); err != nil {
		t.Fatal(err)
	}
	client, fd := clientSocket(t)
	if _, err := client.Write([]byte("early ")); err != nil {
		t.Fatal(err)
	}
	first := pattern(64 << 10)
	o := &outcomes{prelude: "PROXY "}
	var counters Counters
	var ruleUp atomic.Int64
	_, done := runConnecting(fd, Connecting{FD: bfd, Timeout: 5 * time.Second, Dialer: o, First: first},
		Options{Engine: e, Counters: &counters, RuleUp: &ruleUp})
	// With the backend reading nothing, only a part of First fits in the
	// buffers: the rest waits for room.
	waitFor(t, "the first bytes to start", func() bool { return counters.Up.Load() > 0 })
	if n := counters.Up.Load(); n >= int64(len(first)) {
		t.Fatalf("%d bytes went with the backend reading nothing: the buffers are not tiny", n)
	}
	if _, err := client.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	client.CloseWrite()
	close(open)
	want := append(append([]byte("PROXY "), first...), "early late"...)
	select {
	case b := <-got:
		if !bytes.Equal(b, want) {
			t.Fatalf("the backend got %d bytes, not the %d of prelude, First and the client's in order", len(b), len(want))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the backend got nothing")
	}
	res := waitResult(t, done)
	up := int64(len(first) + len("early late"))
	if res.End != access.EOF || res.Up != up || counters.Up.Load() != up || ruleUp.Load() != up {
		t.Errorf("result %+v, live %d, rule %d: want eof and %d bytes up in each", res, counters.Up.Load(), ruleUp.Load(), up)
	}
}

// TestConnectingFirstNextBackend: First goes to the backend that connects,
// once, whether the connect before it was refused or its socket was
// turned down by the Dialer; the turned-down one gets none of it.
func TestConnectingFirstNextBackend(t *testing.T) {
	e := newEngine(t, 1)
	for _, tc := range []struct {
		name   string
		refuse int // sockets the Dialer turns down once connected
	}{
		{"refused", 0},
		{"turned down", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			closed := make(chan []byte, 1)
			firstAddr := refusingAddr(t)
			if tc.refuse > 0 {
				firstAddr = netip.MustParseAddrPort(loopback.Serve(t, func(c net.Conn) {
					c.SetReadDeadline(time.Now().Add(5 * time.Second))
					b, _ := io.ReadAll(c) // until sluice closes it
					closed <- b
				}))
			}
			client, fd := clientSocket(t)
			o := &outcomes{refuse: tc.refuse, next: []int{startConnect(t, echoAddr(t))}}
			first := []byte("hello, ")
			_, done := runConnecting(fd, Connecting{FD: startConnect(t, firstAddr), Timeout: 2 * time.Second, Dialer: o, First: first}, Options{Engine: e})
			if _, err := client.Write([]byte("world")); err != nil {
				t.Fatal(err)
			}
			client.CloseWrite()
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if got, err := io.ReadAll(client); err != nil || string(got) != "hello, world" {
				t.Fatalf("echo: %q, %v; want %q", got, err, "hello, world")
			}
			if res := waitResult(t, done); res.End != access.EOF || res.Up != 12 || res.Down != 12 {
				t.Errorf("result %+v: want eof, 12 bytes each way", res)
			}
			if errs := o.seen(); len(errs) != 2 || errs[0] == nil || errs[1] != nil {
				t.Fatalf("told %v: want a failure, then a success", errs)
			}
			if tc.refuse > 0 && !errors.Is(o.seen()[0], errRefused) {
				t.Errorf("first outcome %v: want Connected's error", o.seen()[0])
			}
			if tc.refuse == 0 {
				return
			}
			select {
			case b := <-closed:
				if len(b) != 0 {
					t.Errorf("the turned-down backend got %q, want nothing", b)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the turned-down socket was not closed")
			}
		})
	}
}
