package e2e

import (
	"fmt"
	"syscall"
	"testing"
)

// drainConfig returns a config with one rule "drain" to backend and the
// given drain timeout, logging JSON.
func drainConfig(backend, drainTimeout string) func(listen string) string {
	return func(listen string) string {
		return fmt.Sprintf(`log_format = "json"
log_level = "debug"

[defaults]
drain_timeout = %q

[[rule]]
name = "drain"
listen = %q
backends = [%q]
`, drainTimeout, listen, backend)
	}
}

// TestSignalDrains: after SIGTERM or SIGINT sluice refuses new connections,
// a live one keeps working, and sluice exits 0 as soon as it closes, well
// before the drain timeout.
func TestSignalDrains(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			be := startBackend(t, echo)
			p, addr := launchConfig(t, drainConfig(be.addr, "60s"))
			c := dial(t, addr)
			if err := roundTrip(c, "before"); err != nil {
				t.Fatal(err)
			}
			p.signal(sig)
			waitRefused(t, addr)
			if err := roundTrip(c, "during the drain"); err != nil {
				t.Fatalf("live connection after %v: %v", sig, err)
			}
			if !p.running() {
				t.Fatalf("sluice exited with a live connection: %v", p.err)
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if n, err := readEnd(c); n != 0 || err != nil {
				t.Fatalf("live connection end: %d bytes, %v; want EOF", n, err)
			}
			// waitLimit is a third of the drain timeout: exiting in time
			// means sluice noticed the last connection end.
			if code, err := p.waitExit(waitLimit); code != 0 {
				t.Fatalf("sluice exit code %d (%v), want 0", code, err)
			}
			if rec := p.waitAccess(c); rec.str("end") != "eof" {
				t.Errorf("access line %v: want end=eof", rec)
			}
		})
	}
}

// TestDrainTimeoutCuts: a connection still open when drain_timeout passes is
// closed by sluice and logged with end=drained; sluice still exits 0.
func TestDrainTimeoutCuts(t *testing.T) {
	t.Parallel()
	be := startBackend(t, echo)
	p, addr := launchConfig(t, drainConfig(be.addr, "1s"))
	c := dial(t, addr)
	if err := roundTrip(c, "then hold on"); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGTERM)
	if n, err := readEnd(c); n != 0 || isTimeout(err) {
		t.Fatalf("held connection: %d bytes, %v; want it cut by sluice", n, err)
	}
	if code, err := p.waitExit(waitLimit); code != 0 {
		t.Fatalf("sluice exit code %d (%v), want 0", code, err)
	}
	if rec := p.waitAccess(c); rec.str("end") != "drained" {
		t.Errorf("access line %v: want end=drained", rec)
	}
}

// TestSecondSignalExitsAtOnce: a second signal during the drain ends sluice
// while a connection is still open and the drain timeout is far away.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	t.Parallel()
	for _, second := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(second.String(), func(t *testing.T) {
			be := startBackend(t, echo)
			p, addr := launchConfig(t, drainConfig(be.addr, "5m"))
			c := dial(t, addr)
			if err := roundTrip(c, "held through both signals"); err != nil {
				t.Fatal(err)
			}
			p.signal(syscall.SIGTERM)
			waitRefused(t, addr) // the first signal has been handled
			if !p.running() {
				t.Fatalf("sluice exited on the first signal with a live connection: %v", p.err)
			}
			p.signal(second)
			rec := p.wait("the second signal's warning", isMsg("second stop signal: exiting now"))
			if rec.str("level") != "WARN" || rec.str("signal") != second.String() || rec.num("live") != 1 {
				t.Errorf("second signal logged %v, want level WARN, signal %q, live=1", rec, second.String())
			}
			if code, err := p.waitExit(waitLimit); code != 1 {
				t.Errorf("exit code %d (%v) after the second signal, want 1", code, err)
			}
			if n, err := readEnd(c); n != 0 || isTimeout(err) {
				t.Errorf("held connection after the exit: %d bytes, %v; want it cut (EOF or reset)", n, err)
			}
		})
	}
}

// TestDrainCutsConnecting: a connection whose backend has not answered its
// connect yet is cut by the drain timeout like any other (end=drained),
// without waiting for the far longer connect timeout.
func TestDrainCutsConnecting(t *testing.T) {
	t.Parallel()
	dead := blackholeAddr(t)
	p, addrs, _ := launchOps(t, 2, func(addrs []string) string {
		return drainAdminConfig(dead, "300ms")(addrs) + "connect_timeout = \"10m\"\n"
	}, nil)
	c := dial(t, addrs[1])
	// Wait until sluice has accepted the client and is connecting (listed
	// with no backend yet): a late accept would only make the test pass
	// without covering the case.
	if conn := waitListed(t, newAdmin(t, addrs[0], ""), c.LocalAddr().String())[0]; conn.Backend != "" {
		t.Fatalf("listed %+v, want it still connecting (no backend)", conn)
	}
	p.signal(syscall.SIGTERM)
	if n, err := readEnd(c); n != 0 || isTimeout(err) {
		t.Fatalf("connecting client: %d bytes, %v; want it closed by the drain", n, err)
	}
	if code, err := p.waitExit(waitLimit); code != 0 {
		t.Fatalf("sluice exit code %d (%v), want 0", code, err)
	}
	if rec := p.waitAccess(c); rec.str("end") != "drained" || rec.str("backend") != "" {
		t.Errorf("access line %v: want end=drained and no backend", rec)
	}
}
