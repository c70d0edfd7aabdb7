package congestion

import (
	"fmt"
	"os"
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

// Get returns the algorithm of the socket behind rc.
func Get(rc syscall.RawConn) (string, error) {
	var name string
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		name, gerr = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION)
	}); err != nil {
		return "", err
	}
	if gerr != nil {
		return "", os.NewSyscallError("getsockopt TCP_CONGESTION", gerr)
	}
	return name, nil
}

// SystemDefault returns the kernel's default algorithm, or "" when it
// cannot be read.
func SystemDefault() string {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Where the kernel lists the algorithms it has, and those any user may set.
const (
	availablePath = "/proc/sys/net/ipv4/tcp_available_congestion_control"
	allowedPath   = "/proc/sys/net/ipv4/tcp_allowed_congestion_control"
)

// Check reports an error when c names an algorithm that this process cannot
// set, because the kernel lacks it or because it is not among those an
// unprivileged process may choose, so that a bad setting fails at start-up
// rather than on every connection. It tries the algorithm on a scratch
// socket, which also loads its module where root may.
func Check(c Choice) error {
	name := c.Named()
	if name == "" {
		return nil
	}
	return Allowed(name)
}

// Allowed reports an error when this process cannot give a socket the
// algorithm name: the kernel lacks it, or it is not among those an
// unprivileged process may choose. It tries name on a scratch socket, which
// also loads its module where root may.
func Allowed(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil // no socket to try it on: Set finds out per connection
	}
	defer unix.Close(fd)
	err = unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, name)
	switch err {
	case nil:
		return nil
	case unix.EPERM:
		return fmt.Errorf("congestion_control %q: this process may not choose it (allowed: %s; see net.ipv4.tcp_allowed_congestion_control)", name, list(allowedPath))
	default:
		return fmt.Errorf("congestion_control %q: this kernel has no such algorithm (available: %s)", name, list(availablePath))
	}
}

// list returns the names in a /proc list file, comma-separated, or
// "unknown".
func list(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(strings.Fields(string(b))) == 0 {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b)), ", ")
}
