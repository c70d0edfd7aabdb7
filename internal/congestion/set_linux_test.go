package congestion

import (
	"net"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// algorithm reads back the congestion control of c's socket.
func algorithm(t *testing.T, c *net.TCPConn) string {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var name string
	var gerr error
	rc.Control(func(fd uintptr) {
		name, gerr = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION)
	})
	if gerr != nil {
		t.Fatal(gerr)
	}
	return name
}

// TestSet sets reno (always built in) on a real connection and reads it
// back; an empty name leaves the socket alone.
func TestSet(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := c.(*net.TCPConn)
	before := algorithm(t, tc)
	rc, _ := tc.SyscallConn()
	if err := Set(rc, ""); err != nil || algorithm(t, tc) != before {
		t.Fatalf("Set(\"\"): err %v, algorithm %q, want %q untouched", err, algorithm(t, tc), before)
	}
	if err := Set(rc, "reno"); err != nil {
		t.Fatal(err)
	}
	if got := algorithm(t, tc); got != "reno" {
		t.Errorf("after Set(reno): %q", got)
	}
	err = Set(rc, "nosuchcc")
	if err == nil || !strings.Contains(err.Error(), "TCP_CONGESTION nosuchcc") {
		t.Errorf("Set(nosuchcc): got %v, want an error naming it", err)
	}
}

func TestCheck(t *testing.T) {
	for _, ok := range []string{"auto", "system", "reno"} {
		c, _ := Parse(ok)
		if err := Check(c); err != nil {
			t.Errorf("Check(%s): %v", ok, err)
		}
	}
	c, _ := Parse("nosuchcc")
	err := Check(c)
	if err == nil || !strings.Contains(err.Error(), `congestion_control "nosuchcc": this kernel has no such algorithm (available: `) || !strings.Contains(err.Error(), "reno") {
		t.Errorf("Check(nosuchcc): got %v", err)
	}
}
