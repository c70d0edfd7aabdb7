package loopback

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
)

// Ports below the kernel's usual ephemeral range (32768-60999), where
// PortRange looks: a port there is not taken from under a test by the
// local end of some connection.
const (
	rangeLow  = 10000
	rangeHigh = 32768
)

// PortRange finds n consecutive ports on 127.0.0.1 that bind (a function
// that opens what the test needs on one port: a listener, say) accepts,
// and returns the first. What bind opened stays open until the test ends.
// It starts at a random port and moves past a port that will not bind, or
// to another random port; the test fails when no such run turns up.
func PortRange(t testing.TB, n int, bind func(port uint16) (io.Closer, error)) uint16 {
	t.Helper()
	base, held := findRange(t, n, bind)
	t.Cleanup(func() { closeAll(held) })
	return base
}

// FreePorts returns the first of n consecutive ports on 127.0.0.1 that are
// free for TCP and UDP: a moment ago they bound, and they are closed again,
// for the program under test to bind.
func FreePorts(t testing.TB, n int) uint16 {
	t.Helper()
	base, held := findRange(t, n, bindBoth)
	closeAll(held)
	return base
}

// findRange is PortRange's search: it returns the first port and what
// bind opened on each.
func findRange(t testing.TB, n int, bind func(uint16) (io.Closer, error)) (uint16, []io.Closer) {
	t.Helper()
	base := rangeLow + rand.IntN(rangeHigh-rangeLow-n)
	for range 500 {
		held, failed := bindRun(base, n, bind)
		if failed < 0 {
			return uint16(base), held
		}
		closeAll(held)
		// Past the port that failed, unless that was the first: then the
		// run starts somewhere else, not one port on in a block of ports
		// another program holds.
		base = failed + 1
		if len(held) == 0 || base+n > rangeHigh {
			base = rangeLow + rand.IntN(rangeHigh-rangeLow-n)
		}
	}
	t.Fatalf("no run of %d free ports on 127.0.0.1 in %d-%d", n, rangeLow, rangeHigh)
	return 0, nil
}

// bindRun binds ports base to base+n-1 and returns what it opened, and
// the port that failed, or -1.
func bindRun(base, n int, bind func(uint16) (io.Closer, error)) ([]io.Closer, int) {
	held := make([]io.Closer, 0, n)
	for p := base; p < base+n; p++ {
		c, err := bind(uint16(p))
		if err != nil {
			return held, p
		}
		held = append(held, c)
	}
	return held, -1
}

// bindBoth binds port on 127.0.0.1 for TCP and for UDP.
func bindBoth(port uint16) (io.Closer, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return closers{ln, pc}, nil
}

// closers closes each of its members.
type closers []io.Closer

func (cs closers) Close() error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// closeAll closes every one of cs.
func closeAll(cs []io.Closer) {
	for _, c := range cs {
		c.Close()
	}
}
