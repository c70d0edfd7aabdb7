package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// notifier tells a service manager what sluice is doing, in systemd's
// notification protocol (sd_notify): a datagram of NAME=value lines to the
// unix socket named by $NOTIFY_SOCKET. READY=1 once every listener serves,
// RELOADING=1 and READY=1 around a reload, STOPPING=1 when a drain begins,
// and MAINPID= from a process that took over by hitless upgrade, so that
// systemd follows it instead of counting the service as stopped when the
// old process exits (the unit needs NotifyAccess=all for that). Without
// $NOTIFY_SOCKET it does nothing.
type notifier struct {
	addr *net.UnixAddr // nil: no service manager listens
}

// notifySocketEnv names the service manager's socket.
const notifySocketEnv = "NOTIFY_SOCKET"

// newNotifier reads $NOTIFY_SOCKET. It leaves the variable set, so that a
// process started by a hitless upgrade can notify too.
func newNotifier() *notifier {
	path := os.Getenv(notifySocketEnv)
	if path == "" {
		return &notifier{}
	}
	if strings.HasPrefix(path, "@") { // an abstract socket
		path = "\x00" + path[1:]
	}
	return &notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// send writes the state lines as one datagram. A service manager that does
// not answer is no reason to stop serving: the error is for the log.
func (n *notifier) send(lines ...string) error {
	if n.addr == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("notify %s: %w", n.addr.Name, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(lines, "\n") + "\n")); err != nil {
		return fmt.Errorf("notify %s: %w", n.addr.Name, err)
	}
	return nil
}

// ready says sluice serves, as process pid (the main process from now on).
func (n *notifier) ready(pid int) error {
	return n.send("READY=1", fmt.Sprintf("MAINPID=%d", pid))
}

// reloading says a reload began; READY=1 (ready) says it ended.
func (n *notifier) reloading() error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return err
	}
	usec := ts.Nano() / int64(time.Microsecond)
	return n.send("RELOADING=1", fmt.Sprintf("MONOTONIC_USEC=%d", usec))
}

// stopping says a graceful stop began.
func (n *notifier) stopping() error { return n.send("STOPPING=1") }
