package e2e

import (
	"fmt"
	"net/http"
	"syscall"
	"testing"
)

// healthConfig is the config of the health tests: the admin API on admin and
// rule "web" on listen to backend.
func healthConfig(admin, listen, backend string) string {
	return fmt.Sprintf(`log_format = "json"
admin = %q

[[rule]]
name = "web"
listen = %q
backends = [%q]
`, admin, listen, backend)
}

// TestReloadMovingListenStaysHealthy: a reload that moves a rule's listen
// address closes the old listener itself, which is no failure: /healthz
// stays 200, traffic flows on the new address, a connection made on the old
// one goes on, nothing is logged at ERROR, and a stop afterwards is clean.
func TestReloadMovingListenStaysHealthy(t *testing.T) {
	t.Parallel()
	be := startBackend(t, echo)
	p, addrs, path := launchOps(t, 3, func(addrs []string) string {
		return healthConfig(addrs[0], addrs[1], be.addr)
	}, nil)
	api := newAdmin(t, addrs[0], "")
	held := dial(t, addrs[1])
	if err := roundTrip(held, "before the move"); err != nil {
		t.Fatal(err)
	}

	rewriteFile(t, path, healthConfig(addrs[0], addrs[2], be.addr))
	if rec, _ := reloadOutcome(p, 0); rec.str("msg") != "reloaded" {
		t.Fatalf("reload moving the listener: %v", rec)
	}
	waitRefused(t, addrs[1]) // the old listener is closed
	moved := dial(t, addrs[2])
	if err := roundTrip(moved, "on the new address"); err != nil {
		t.Fatalf("through the moved listener: %v", err)
	}
	if err := roundTrip(held, "after the move"); err != nil {
		t.Fatalf("connection made before the move: %v", err)
	}
	if code, body := api.do(http.MethodGet, "/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz after moving the listener: %d %s, want 200", code, body)
	}
	if got := api.rules()["web"].Listen; got != addrs[2] {
		t.Errorf("API: web listens on %q, want %s", got, addrs[2])
	}

	_, _ = held.Close(), moved.Close()
	p.signal(syscall.SIGTERM)
	if code, err := p.waitExit(waitLimit); code != 0 {
		t.Fatalf("exit %d after SIGTERM: %v", code, err)
	}
}
