package server

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sluice/internal/metrics"
	"sluice/internal/testkit/loopback"
)

// startMetered starts a server on cfg that counts into a fresh registry,
// and returns it with the registry.
func startMetered(t *testing.T, text string) (*Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m})
	if err := s.Start(parse(t, text)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s, reg
}

// gauge returns the value of the series of family name whose labels
// include want (name, value pairs), and whether there is one.
func gauge(t *testing.T, reg *prometheus.Registry, name string, want ...string) (float64, bool) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.Metric {
			have := map[string]string{}
			for _, l := range m.Label {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i < len(want); i += 2 {
				if have[want[i]] != want[i+1] {
					continue series
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// waitSeries waits (up to 10 s) until the series has the value want.
func waitSeries(t *testing.T, reg *prometheus.Registry, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, _ := gauge(t, reg, name, labels...)
		if v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v", name, labels, v, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// exchange sends n bytes on c and reads the n the echo backend returns.
func exchange(t *testing.T, c net.Conn, n int) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := bytes.Repeat([]byte{'x'}, n)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, msg); err != nil {
		t.Fatal(err)
	}
}

// TestBackendTrafficCounted: three connections through backend A move
// known bytes; sluice_backend_bytes_total of A is their sum, a live
// connection's bytes count while it is open, and a reload that builds a
// new pool keeps counting. The admin API reports the same figures.
func TestBackendTrafficCounted(t *testing.T) {
	echo := func(c net.Conn) { io.Copy(c, c) }
	a, b := loopback.Serve(t, echo), loopback.Serve(t, echo)
	listen := freeAddr(t)
	rule := func(backends string) string {
		return fmt.Sprintf("[[rule]]\nname = \"web\"\nlisten = %q\nbalance = \"first\"\nbackends = [%s]\n", listen, backends)
	}
	srv, reg := startMetered(t, rule(fmt.Sprintf("%q", a)))
	labels := []string{"rule", "web", "route", "", "backend", a}
	up := append(labels[:len(labels):len(labels)], "direction", "up")
	down := append(labels[:len(labels):len(labels)], "direction", "down")

	for _, n := range []int{1000, 2000, 3000} {
		c := dial(t, listen).c
		exchange(t, c, n)
		c.Close()
	}
	waitSeries(t, reg, 6000, "sluice_backend_bytes_total", up...)
	waitSeries(t, reg, 6000, "sluice_backend_bytes_total", down...)
	waitSeries(t, reg, 3, "sluice_backend_connections_total", labels...)
	waitSeries(t, reg, 0, "sluice_backend_connections_active", labels...)

	live := dial(t, listen).c
	exchange(t, live, 500)
	waitSeries(t, reg, 6500, "sluice_backend_bytes_total", up...) // while it is open
	waitSeries(t, reg, 1, "sluice_backend_connections_active", labels...)

	// A new backend list: a new pool, which inherits A's counters; the
	// live connection stays on the old pool.
	if _, err := srv.Reload(parse(t, rule(fmt.Sprintf("%q, %q", a, b)))); err != nil {
		t.Fatal(err)
	}
	exchange(t, live, 250)
	waitSeries(t, reg, 6750, "sluice_backend_bytes_total", down...)
	st := backendOf(t, srv, "web", "", a)
	if st.BytesUp != 6750 || st.BytesDown != 6750 || st.ConnectionsTotal != 4 || st.Active != 1 {
		t.Errorf("API: %+v; want 6750 bytes each way, 4 connections, 1 active", st)
	}
	live.Close()
	waitSeries(t, reg, 0, "sluice_backend_connections_active", labels...)
	if v, _ := gauge(t, reg, "sluice_backend_bytes_total", up...); v != 6750 {
		t.Errorf("after the live connection ended: %v bytes up, want 6750", v)
	}
	rules := srv.Rules()
	if got := rules[0].Backends[0]; got.BytesDown != 6750 || got.ConnectionsTotal != 4 {
		t.Errorf("GET /api/v1/rules backend %+v; want 6750 bytes down, 4 connections", got)
	}
}

// TestTCPOnlyRuleHasNoUDPSeries: sluice_udp_sessions_active exists for a
// rule that forwards UDP only.
func TestTCPOnlyRuleHasNoUDPSeries(t *testing.T) {
	free := freeAddrs(t, 2)
	_, reg := startMetered(t, ruleTOML("web", free[0], freeAddr(t))+
		fmt.Sprintf("[[rule]]\nname = \"dns\"\nlisten = %q\nprotocol = \"udp\"\nbackends = [%q]\n", free[1], freeAddr(t)))
	if _, ok := gauge(t, reg, "sluice_udp_sessions_active", "rule", "web"); ok {
		t.Error("the TCP-only rule web exports sluice_udp_sessions_active")
	}
	if _, ok := gauge(t, reg, "sluice_udp_sessions_active", "rule", "dns"); !ok {
		t.Error("the UDP rule dns exports no sluice_udp_sessions_active")
	}
}
