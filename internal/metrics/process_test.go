package metrics

import (
	"errors"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// TestBackendTraffic: a backend's connections, live connections and bytes
// from the backend source are exported under its rule, route and address.
func TestBackendTraffic(t *testing.T) {
	m, get := newServed(t)
	m.SetBackendSource(func() []BackendState {
		return []BackendState{
			{Rule: "web", Backend: "10.0.0.5:80", Up: true, Connections: 12, Active: 3, BytesUp: 1500, BytesDown: 90000},
			{Rule: "edge", Route: "app", Backend: "10.0.0.6:80", Up: true, Connections: 1, BytesUp: 7},
		}
	})
	fams := get()
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sluice_backend_connections_total", []string{"rule", "web", "route", "", "backend", "10.0.0.5:80"}, 12},
		{"sluice_backend_connections_active", []string{"rule", "web", "route", "", "backend", "10.0.0.5:80"}, 3},
		{"sluice_backend_bytes_total", []string{"rule", "web", "route", "", "backend", "10.0.0.5:80", "direction", "up"}, 1500},
		{"sluice_backend_bytes_total", []string{"rule", "web", "route", "", "backend", "10.0.0.5:80", "direction", "down"}, 90000},
		{"sluice_backend_connections_total", []string{"rule", "edge", "route", "app", "backend", "10.0.0.6:80"}, 1},
		{"sluice_backend_bytes_total", []string{"rule", "edge", "route", "app", "backend", "10.0.0.6:80", "direction", "up"}, 7},
	}
	for _, c := range checks {
		if got := mustValue(t, fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	wantTypes(t, fams, map[string]dto.MetricType{
		"sluice_backend_connections_total":  dto.MetricType_COUNTER,
		"sluice_backend_connections_active": dto.MetricType_GAUGE,
		"sluice_backend_bytes_total":        dto.MetricType_COUNTER,
	})
}

// TestBuildInfoAndReloads: sluice_build_info names the versions; the
// reload counters count by result, starting at zero; the last load time
// is the start's until a reload succeeds, and a failed one leaves it.
func TestBuildInfoAndReloads(t *testing.T) {
	m, get := newServed(t)
	m.SetBuildInfo("1.2.3", "go1.99")
	start := time.Unix(1700000000, 0)
	m.ConfigLoaded(start)
	fams := get()
	if v := mustValue(t, fams, "sluice_build_info", "version", "1.2.3", "goversion", "go1.99"); v != 1 {
		t.Errorf("sluice_build_info = %v, want 1", v)
	}
	for _, result := range []string{"ok", "error"} {
		if v := mustValue(t, fams, "sluice_config_reloads_total", "result", result); v != 0 {
			t.Errorf("reloads %s = %v before any, want 0", result, v)
		}
	}
	if v := mustValue(t, fams, "sluice_config_last_reload_success_timestamp_seconds"); v != 1700000000 {
		t.Errorf("last reload time %v, want the start's", v)
	}

	m.Reloaded(nil, start.Add(time.Minute))
	m.Reloaded(errors.New("bad config"), start.Add(2*time.Minute))
	m.Reloaded(errors.New("bad config"), start.Add(3*time.Minute))
	fams = get()
	if v := mustValue(t, fams, "sluice_config_reloads_total", "result", "ok"); v != 1 {
		t.Errorf("reloads ok = %v, want 1", v)
	}
	if v := mustValue(t, fams, "sluice_config_reloads_total", "result", "error"); v != 2 {
		t.Errorf("reloads failed = %v, want 2", v)
	}
	if v := mustValue(t, fams, "sluice_config_last_reload_success_timestamp_seconds"); v != 1700000060 {
		t.Errorf("last reload time %v, want the successful reload's", v)
	}
	wantTypes(t, fams, map[string]dto.MetricType{
		"sluice_build_info":                                   dto.MetricType_GAUGE,
		"sluice_config_reloads_total":                         dto.MetricType_COUNTER,
		"sluice_config_last_reload_success_timestamp_seconds": dto.MetricType_GAUGE,
	})
}

// TestTCPOnlyRuleHasNoUDPSeries: sluice_udp_sessions_active is exported
// for a rule that forwards UDP, and for one with sessions still open (a
// reload made it TCP-only), not for a TCP-only rule.
func TestTCPOnlyRuleHasNoUDPSeries(t *testing.T) {
	m, get := newServed(t)
	web, dns, was := m.Rule("web"), m.Rule("dns"), m.Rule("was")
	web.ConnOpened()
	dns.SetUDP(true)
	was.UDPSessionOpened()
	fams := get()
	if _, ok := value(fams, "sluice_udp_sessions_active", "rule", "web"); ok {
		t.Error("the TCP-only rule web exports sluice_udp_sessions_active")
	}
	if v := mustValue(t, fams, "sluice_udp_sessions_active", "rule", "dns"); v != 0 {
		t.Errorf("dns: %v UDP sessions, want 0", v)
	}
	if v := mustValue(t, fams, "sluice_udp_sessions_active", "rule", "was"); v != 1 {
		t.Errorf("was: %v UDP sessions, want 1", v)
	}
}

// wantTypes checks the type of each family named.
func wantTypes(t *testing.T, fams map[string]*dto.MetricFamily, types map[string]dto.MetricType) {
	t.Helper()
	for name, typ := range types {
		if f := fams[name]; f == nil || f.GetType() != typ {
			t.Errorf("family %s: got %v, want type %v", name, f.GetType(), typ)
		}
	}
}
