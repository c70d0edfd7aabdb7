package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// drainAdminConfig is drainConfig with the admin API on addrs[0] and the
// rule on addrs[1].
func drainAdminConfig(backend, drainTimeout string) func(addrs []string) string {
	return func(addrs []string) string {
		return fmt.Sprintf("admin = %q\n", addrs[0]) + drainConfig(backend, drainTimeout)(addrs[1])
	}
}

// waitListed polls GET /api/v1/connections until it lists exactly the
// clients want (by local address) and returns the listing.
func waitListed(t *testing.T, api *adminClient, want ...string) []apiConn {
	t.Helper()
	want = slices.Sorted(slices.Values(want)) // a copy: the caller's order stays
	var got []string
	var conns []apiConn
	for deadline := time.Now().Add(waitLimit); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		conns, got = api.connections(), nil
		for _, c := range conns {
			got = append(got, c.Client)
		}
		slices.Sort(got)
		if slices.Equal(got, want) {
			return conns
		}
	}
	t.Fatalf("the API lists connections from %q, want %q", got, want)
	return nil
}

// TestDrainKeepsConnectionsListed: while sluice drains after SIGTERM, its
// rule and live connections stay in the admin API, an operator can close
// one of them there, and the second signal reports the true live count.
func TestDrainKeepsConnectionsListed(t *testing.T) {
	t.Parallel()
	be := startBackend(t, echo)
	p, addrs, _ := launchOps(t, 2, drainAdminConfig(be.addr, "5m"), nil)
	api := newAdmin(t, addrs[0], "")
	conns := dialMany(t, addrs[1], 3)
	if err := roundTripAll(conns); err != nil {
		t.Fatal(err)
	}
	clients := []string{conns[0].LocalAddr().String(), conns[1].LocalAddr().String(), conns[2].LocalAddr().String()}
	waitListed(t, api, clients...)

	p.signal(syscall.SIGTERM)
	if rec := p.wait("the drain", isMsg("stopping: draining live connections")); rec.num("live") != 3 {
		t.Errorf("drain began with %v, want live=3", rec)
	}
	waitRefused(t, addrs[1])
	listed := waitListed(t, api, clients...)
	if rule, ok := api.rules()["drain"]; !ok || rule.Listen != addrs[1] {
		t.Errorf("API during the drain: rule drain %+v (listed: %v), want it on %s", rule, ok, addrs[1])
	}
	if code, body := api.do(http.MethodGet, "/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /healthz during the drain: %d %s, want 503", code, body)
	}

	victim := slices.IndexFunc(listed, func(c apiConn) bool { return c.Client == clients[0] })
	api.call(http.MethodDelete, "/api/v1/connections/"+strconv.FormatUint(listed[victim].ID, 10), http.StatusNoContent, nil)
	if n, err := readEnd(conns[0]); n != 0 || isTimeout(err) {
		t.Fatalf("connection closed by DELETE: %d bytes, %v; want EOF or reset", n, err)
	}
	if rec := p.waitAccess(conns[0]); rec.str("end") != "closed" {
		t.Errorf("access line %v: want end=closed", rec)
	}
	waitListed(t, api, clients[1:]...)
	if err := roundTripAll(conns[1:]); err != nil {
		t.Fatalf("the other connections during the drain: %v", err)
	}

	p.signal(syscall.SIGTERM)
	if rec := p.wait("the second signal", isMsg("second stop signal: exiting now")); rec.num("live") != 2 {
		t.Errorf("second signal logged %v, want live=2", rec)
	}
	if code, err := p.waitExit(waitLimit); code != 1 {
		t.Errorf("exit code %d (%v) after the second signal, want 1", code, err)
	}
}

// TestReloadDuringDrain: a reload asked for while sluice drains after
// SIGTERM, by SIGHUP or by the admin API, changes nothing and is logged at
// WARN ("reload ignored: sluice is shutting down"), not as an error of
// sluice's: the run logs no ERROR line (proc.stop checks). The live
// connection carries on.
func TestReloadDuringDrain(t *testing.T) {
	t.Parallel()
	be := startBackend(t, echo)
	p, addrs, _ := launchOps(t, 2, drainAdminConfig(be.addr, "5m"), nil)
	api := newAdmin(t, addrs[0], "")
	c := dial(t, addrs[1])
	if err := roundTrip(c, "held through the drain"); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGTERM)
	p.wait("the drain", isMsg("stopping: draining live connections"))
	ignored := isMsg("reload ignored: sluice is shutting down")
	p.signal(syscall.SIGHUP)
	if rec := p.wait("the SIGHUP's warning", ignored); rec.str("level") != "WARN" || rec.str("signal") != syscall.SIGHUP.String() {
		t.Errorf("SIGHUP during the drain logged %v, want level WARN, signal %q", rec, syscall.SIGHUP.String())
	}
	if code, body := api.do(http.MethodPost, "/api/v1/reload"); code == http.StatusOK {
		t.Errorf("POST /api/v1/reload during the drain: %d %s, want it refused", code, body)
	}
	if recs := p.waitN(2, "the API reload's warning", ignored); recs[1].str("level") != "WARN" {
		t.Errorf("an API reload during the drain logged %v, want level WARN", recs[1])
	}
	if err := roundTrip(c, "after the reloads"); err != nil {
		t.Fatalf("live connection during the drain: %v", err)
	}
	c.Close()
	if code, err := p.waitExit(waitLimit); code != 0 {
		t.Fatalf("sluice exit code %d (%v), want 0", code, err)
	}
}

// TestStopDuringSlowReload: a stop signal is served at once even while a
// reload is still reading its config file. The file is swapped for a FIFO
// that nobody writes, so the reload is held in its read for as long as the
// test likes; sluice must drain and exit 0 all the same.
func TestStopDuringSlowReload(t *testing.T) {
	t.Parallel()
	be := startBackend(t, echo)
	p, addrs, path := launchOps(t, 2, drainAdminConfig(be.addr, "5m"), nil)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	// The test holds the FIFO open (read-write opens at once): the reload's
	// open succeeds and its read waits for bytes that never come.
	fifo, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fifo.Close()
	p.signal(syscall.SIGHUP)
	// A reload in its read holds the FIFO open for reading: wait for that.
	waitReaderOn(t, p.cmd.Process.Pid, path)
	c := dial(t, addrs[1])
	if err := roundTrip(c, "while the reload reads"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	p.signal(syscall.SIGTERM)
	if code, err := p.waitExit(waitLimit); code != 0 {
		t.Fatalf("sluice exit code %d (%v) after SIGTERM during a reload, want 0", code, err)
	}
}

// waitReaderOn waits until process pid has path open.
func waitReaderOn(t *testing.T, pid int, path string) {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	for deadline := time.Now().Add(waitLimit); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		fds, _ := os.ReadDir(dir)
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && target == path {
				return
			}
		}
	}
	t.Fatalf("process %d never opened %s", pid, path)
}
