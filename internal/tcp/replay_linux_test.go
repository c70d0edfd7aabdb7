package tcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"sluice/internal/route"
	"sluice/internal/testkit/loopback"
)

// inNetns is set in the environment of a test binary that runs one test in
// a network namespace of its own (see inOwnNetns).
const inNetns = "SLUICE_TEST_IN_NETNS"

// inOwnNetns runs the calling test again, alone, in a new network
// namespace whose sockets get send buffers of at most 4 KiB
// (net.ipv4.tcp_wmem), and reports whether the caller is that run: if
// not, the run is over and the caller returns. It skips where no
// namespace can be made (not root).
func inOwnNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(inNetns) != "" {
		tinySendBuffers(t)
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace of its own")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), inNetns+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err != nil && !errors.As(err, &ee):
		t.Skipf("cannot make a network namespace here: %v", err)
	case err != nil:
		t.Fatalf("in its own network namespace: %v\n%s", err, out)
	case !strings.Contains(string(out), "--- PASS: "+t.Name()):
		t.Fatalf("the test did not run in its namespace:\n%s", out)
	}
	return false
}

// tinySendBuffers brings the namespace's loopback up and caps every new
// TCP socket's send buffer at 4 KiB, as a host tuned for many connections
// might: the kernel no longer grows it once connected.
func tinySendBuffers(t *testing.T) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		t.Fatal(err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/tcp_wmem", []byte("4096 4096 4096"), 0); err != nil {
		t.Fatal(err)
	}
}

// smallWindowEcho is namedEcho on a listener whose connections have a
// small receive buffer: a backend that takes a large first write slowly.
func smallWindowEcho(t *testing.T, name string) string {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<10)
		})
	}}
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	loopback.ServeOn(t, ln, func(c net.Conn) {
		fmt.Fprintf(c, "%s\n", name)
		io.Copy(c, c)
	})
	return ln.Addr().String()
}

// TestRouteReplayLarge: a routed client whose first bytes are nearly 16
// KiB (an HTTP request with a 15 KiB header before its Host) reaches its
// backend intact on the engine, where sluice's socket to the backend takes
// at most 4 KiB at a time: the replayed bytes wait for room as relayed
// bytes do, rather than having to fit in the send buffer at once.
func TestRouteReplayLarge(t *testing.T) {
	if !inOwnNetns(t) {
		return
	}
	f := serveRouted(t, Rule{}, "",
		testRoute{"big", route.Spec{HTTPHost: []string{"big.test"}}, smallWindowEcho(t, "B")})
	request := "GET / HTTP/1.1\r\nX-Pad: " + strings.Repeat("p", 15<<10) + "\r\nHost: big.test\r\n\r\n"
	if len(request) >= route.MaxPeek {
		t.Fatalf("the request is %d bytes, more than is peeked", len(request))
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("access lines: %v", f.logs.access())
		}
	})
	if got := exchange(t, f.addr, 0, []byte(request)); got != "B" {
		t.Errorf("went to %s, want B", got)
	}
	if !f.onEngine("big") {
		t.Error("the routed relay did not run on the engine")
	}
}
