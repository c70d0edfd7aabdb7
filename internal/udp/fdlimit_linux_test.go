package udp

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestOutOfDescriptors runs the process out of descriptors while a new
// client arrives: its session ends connect-failed, saying why, without
// counting against the backend, and the rule serves again once descriptors
// are back.
func TestOutOfDescriptors(t *testing.T) {
	be := startBackend(t, "127.0.0.1", echo)
	f := start(t, options{cfg: backends("", be.addr())})
	c1, c2 := client(t, ""), client(t, "")
	f.mustExchange(t, client(t, ""), "ready?", "ready?")
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	// A new descriptor takes the lowest free number; with the limit there,
	// there is none to take.
	low := lim
	low.Cur = uint64(lowestFreeFD(t))
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skip("cannot lower RLIMIT_NOFILE:", err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) })
	if _, err := c1.WriteToUDP([]byte("no room"), f.addr); err != nil {
		t.Fatal(err)
	}
	rec := f.logs.waitN(t, 1, "the failed session", accessOf(c1.LocalAddr(), "connect-failed"))[0]
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rec.Attrs["error"], "too many open files") {
		t.Errorf("access line %v: want the cause", rec.Attrs)
	}
	if b := f.pool.Backends()[0]; b.ConnectErrors() != 0 || !b.Up() {
		t.Errorf("backend up=%v with %d connect errors: a local shortage was held against it", b.Up(), b.ConnectErrors())
	}
	f.mustExchange(t, c2, "room again", "room again")
}

// lowestFreeFD returns the lowest descriptor number not in use.
func lowestFreeFD(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	used := map[int]bool{}
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err == nil {
			used[n] = true
		}
	}
	// ReadDir's own descriptor is listed, and closed again by now.
	for n := 0; ; n++ {
		if !used[n] || isClosedFD(n) {
			return n
		}
	}
}

// isClosedFD reports whether descriptor n is not open.
func isClosedFD(n int) bool {
	_, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(n))
	return err != nil
}

// TestStartsOutOfDescriptors starts the service while the process is out of
// descriptors: it says so, keeps trying, and serves once there are some.
func TestStartsOutOfDescriptors(t *testing.T) {
	be := startBackend(t, "127.0.0.1", echo)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	c := client(t, "")
	f := start(t, options{cfg: backends("", be.addr()), beforeServe: func() {
		low := lim
		low.Cur = uint64(lowestFreeFD(t))
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
			t.Skip("cannot lower RLIMIT_NOFILE:", err)
		}
		t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) })
	}})
	rec := f.logs.waitN(t, 1, "the warning", func(r record) bool { return r.Msg == "cannot receive; backing off" })[0]
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rec.Attrs["error"], "too many open files") {
		t.Errorf("warning %v: want the cause", rec.Attrs)
	}
	f.mustExchange(t, c, "there now", "there now")
	f.logs.waitN(t, 1, "the all-clear", func(r record) bool { return r.Msg == "receiving again" })
}
