package e2e

import (
	"errors"
	"net"
	"testing"
)

// TestFailoverToNextBackend: with balance=first the first backend is always
// tried first; when it refuses or does not answer within the connect
// timeout, the connection goes to the next backend and the client never
// notices.
func TestFailoverToNextBackend(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		dead func(*testing.T) string
	}{
		{"refused", freeAddr},
		{"timed out", blackholeAddr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := startBackend(t, echo)
			flags := []string{"--balance", "first", "--connect-timeout", "500ms"}
			p, addr := launchQuick(t, sluiceBin, flags, tc.dead(t), be.addr)
			for i := 0; i < 2; i++ {
				c := dial(t, addr)
				if err := roundTrip(c, "through the second backend"); err != nil {
					t.Fatalf("connection %d: %v", i, err)
				}
				if err := c.CloseWrite(); err != nil {
					t.Fatal(err)
				}
				if n, err := readEnd(c); n != 0 || err != nil {
					t.Fatalf("connection %d: end: %d bytes, %v; want EOF", i, n, err)
				}
				rec := p.waitAccess(c)
				if rec.str("backend") != be.addr || rec.str("end") != "eof" {
					t.Errorf("access line %v: want backend=%s end=eof", rec, be.addr)
				}
			}
		})
	}
}

// TestAllBackendsDown: when every backend refuses, the client is closed
// without waiting for anything and the access line says connect-failed with
// the error.
func TestAllBackendsDown(t *testing.T) {
	t.Parallel()
	p, addr := launchQuick(t, sluiceBin, []string{"--connect-timeout", "1s"},
		freeAddr(t), freeAddr(t))
	c := dial(t, addr)
	// The client sends nothing: sluice has to close it on its own. readEnd
	// only gives up after waitLimit, far beyond any retry budget here.
	if n, err := readEnd(c); n != 0 || isTimeout(err) {
		t.Fatalf("client got %d bytes, %v; want it closed", n, err)
	}
	rec := p.waitAccess(c)
	if rec.str("end") != "connect-failed" || rec.str("error") == "" {
		t.Errorf("access line %v: want end=connect-failed with an error", rec)
	}
	if rec.num("up") != 0 || rec.num("down") != 0 {
		t.Errorf("access line %v: want up=0 down=0", rec)
	}
}

// isTimeout reports whether err is a deadline or timeout error.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
