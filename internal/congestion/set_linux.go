package congestion

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Set gives the socket behind rc the algorithm name. It is a no-op for an
// empty name.
func Set(rc syscall.RawConn, name string) error {
	if name == "" {
		return nil
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, name)
	}); err != nil {
		return err
	}
	if serr != nil {
		return os.NewSyscallError("setsockopt TCP_CONGESTION "+name, serr)
	}
	return nil
}

// availablePath lists the algorithms the kernel has loaded.
const availablePath = "/proc/sys/net/ipv4/tcp_available_congestion_control"

// Check reports an error when c names an algorithm this kernel does not
// have, so that a bad setting fails at start-up rather than on every
// connection. An unreadable list is no error: Set then finds out.
func Check(c Choice) error {
	name := c.Named()
	if name == "" {
		return nil
	}
	b, err := os.ReadFile(availablePath)
	if err != nil {
		return nil
	}
	have := strings.Fields(string(b))
	if slices.Contains(have, name) {
		return nil
	}
	// The kernel may load a module for it on first use (as root): try.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		defer unix.Close(fd)
		if unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, name) == nil {
			return nil
		}
	}
	return fmt.Errorf("congestion_control %q: this kernel has no such algorithm (available: %s)", name, strings.Join(have, ", "))
}
