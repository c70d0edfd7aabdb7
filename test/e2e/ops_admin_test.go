package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// adminConfig is the admin tests' config: admin API on addrs[0] with token
// (none when empty), rule "web" on addrs[1] to backend, and rule "locked"
// on addrs[2], which denies the test's clients on 127.0.0.1.
func adminConfig(backend, token string) func(addrs []string) string {
	return func(addrs []string) string {
		return fmt.Sprintf(`log_format = "json"
admin = %q
admin_token = %q

[[rule]]
name = "web"
listen = %q
backends = [%q]

[[rule]]
name = "locked"
listen = %q
backends = [%q]
deny = ["127.0.0.1/32"]
`, addrs[0], token, addrs[1], backend, addrs[2], backend)
	}
}

// scrape fetches /metrics and parses it as Prometheus text.
func scrape(t *testing.T, api *adminClient) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := api.do(http.MethodGet, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return families
}

// metricValue returns the value of the counter or gauge name with exactly
// the given labels, and whether there is one.
func metricValue(families map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	mf := families[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, lp := range m.GetLabel() {
			if labels[lp.GetName()] != lp.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// mustMetric is metricValue that fails the test when the series is missing.
func mustMetric(t *testing.T, families map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := metricValue(families, name, labels)
	if !ok {
		t.Fatalf("/metrics has no %s%v", name, labels)
	}
	return v
}

// findConn polls GET /api/v1/connections until a connection from client
// has moved up and down bytes each way, and returns it.
func findConn(t *testing.T, api *adminClient, client string, up, down int64) apiConn {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	var last []apiConn
	for time.Now().Before(deadline) {
		last = api.connections()
		for _, c := range last {
			if c.Client == client && c.Up == up && c.Down == down {
				return c
			}
		}
		time.Sleep(10 * time.Millisecond) // poll; counters have no signal
	}
	t.Fatalf("no live connection from %s with %d bytes up and %d down within %v; listed: %+v",
		client, up, down, waitLimit, last)
	return apiConn{}
}

// TestAdminAPI drives the admin API of a running sluice as an operator
// would: health, rules with moving counters, the live connection list,
// closing a connection, and Prometheus metrics, including a rejection.
func TestAdminAPI(t *testing.T) {
	t.Parallel()
	be := startBackend(t, echo)
	p, addrs, _ := launchOps(t, 3, adminConfig(be.addr, ""), nil)
	api := newAdmin(t, addrs[0], "")

	if code, body := api.do(http.MethodGet, "/healthz"); code != http.StatusOK || string(body) != "ok\n" {
		t.Errorf("GET /healthz: %d %q, want 200 \"ok\\n\"", code, body)
	}
	before, m0 := api.rules()["web"], scrape(t, api)
	upBefore := mustMetric(t, m0, "sluice_bytes_total", map[string]string{"rule": "web", "direction": "up"})

	c := dial(t, addrs[1])
	const msg = "hello, admin\n"
	if err := roundTrip(c, msg); err != nil {
		t.Fatal(err)
	}
	conn := findConn(t, api, c.LocalAddr().String(), int64(len(msg)), int64(len(msg)))
	if conn.Rule != "web" || conn.Backend != be.addr || conn.Proto != "tcp" {
		t.Errorf("listed connection %+v: want rule web, backend %s, proto tcp", conn, be.addr)
	}
	after := api.rules()["web"]
	if after.Counters.ConnectionsTotal != before.Counters.ConnectionsTotal+1 || after.Counters.Active != 1 ||
		after.Counters.BytesUp != before.Counters.BytesUp+int64(len(msg)) ||
		after.Counters.BytesDown != before.Counters.BytesDown+int64(len(msg)) {
		t.Errorf("rule web counters went from %+v to %+v; want one more connection, 1 active, %d more bytes each way",
			before.Counters, after.Counters, len(msg))
	}
	if len(after.Backends) != 1 || after.Backends[0].Address != be.addr || !after.Backends[0].Up {
		t.Errorf("rule web backends %+v: want %s up", after.Backends, be.addr)
	}

	checkMetrics(t, api, be.addr, upBefore+float64(len(msg)))
	checkDenied(t, p, api, addrs[2])

	id := strconv.FormatUint(conn.ID, 10)
	api.call(http.MethodDelete, "/api/v1/connections/"+id, http.StatusNoContent, nil)
	if n, err := readEnd(c); n != 0 || err != nil {
		t.Errorf("client after DELETE: %d bytes, %v; want EOF", n, err)
	}
	// The rule as well as the client: the denied connection to rule locked
	// may have had the same local port.
	rec := p.wait("access line of the closed connection", func(r record) bool {
		return r.str("msg") == "access" && r.str("rule") == "web" && r.str("client") == c.LocalAddr().String()
	})
	if rec.str("end") != "closed" {
		t.Errorf("access line %v: want end=closed", rec)
	}
	api.call(http.MethodDelete, "/api/v1/connections/"+id, http.StatusNotFound, nil)
	if conns := api.connections(); len(conns) != 0 {
		t.Errorf("connections listed after the only one was closed: %+v", conns)
	}
}

// checkMetrics scrapes /metrics with one connection through rule web and
// checks the counters and the backend's health.
func checkMetrics(t *testing.T, api *adminClient, backend string, wantUp float64) {
	t.Helper()
	m := scrape(t, api)
	web := map[string]string{"rule": "web"}
	if v := mustMetric(t, m, "sluice_connections_total", web); v < 1 {
		t.Errorf("sluice_connections_total{rule=web} = %v, want at least 1", v)
	}
	if v := mustMetric(t, m, "sluice_connections_active", web); v != 1 {
		t.Errorf("sluice_connections_active{rule=web} = %v, want 1", v)
	}
	up := map[string]string{"rule": "web", "direction": "up"}
	if v := mustMetric(t, m, "sluice_bytes_total", up); v != wantUp {
		t.Errorf("sluice_bytes_total{rule=web,direction=up} = %v, want %v", v, wantUp)
	}
	if v := mustMetric(t, m, "sluice_backend_up", map[string]string{"rule": "web", "route": "", "backend": backend}); v != 1 {
		t.Errorf("sluice_backend_up{rule=web,backend=%s} = %v, want 1", backend, v)
	}
	for name, mf := range m {
		for _, series := range mf.GetMetric() {
			for _, lp := range series.GetLabel() {
				if strings.Contains(lp.GetValue(), "127.0.0.1:") && lp.GetName() != "backend" {
					t.Errorf("%s is labelled %s=%q: metrics must not name clients", name, lp.GetName(), lp.GetValue())
				}
			}
		}
	}
}

// checkDenied connects to rule locked, which denies the client, and checks
// the refusal in the access log, /metrics and the rule's counters.
func checkDenied(t *testing.T, p *proc, api *adminClient, addr string) {
	t.Helper()
	// sluice resets a refused client at once, so the reset may already
	// fail the connect.
	c, err := net.DialTimeout("tcp", addr, waitLimit)
	if err == nil {
		n, rerr := readEnd(c)
		_ = c.Close()
		if n != 0 || isTimeout(rerr) {
			t.Errorf("denied client: %d bytes, %v; want the connection closed", n, rerr)
		}
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("denied client: dial %s: %v; want a connection that sluice closes", addr, err)
	}
	rec := p.wait("access line of rule locked", func(r record) bool {
		return r.str("msg") == "access" && r.str("rule") == "locked"
	})
	if rec.str("end") != "rejected:denied" || rec.str("backend") != "" {
		t.Errorf("access line %v: want end=rejected:denied and no backend", rec)
	}
	denied := map[string]string{"rule": "locked", "reason": "denied"}
	if v := mustMetric(t, scrape(t, api), "sluice_rejected_total", denied); v != 1 {
		t.Errorf("sluice_rejected_total{rule=locked,reason=denied} = %v, want 1", v)
	}
	if got := api.rules()["locked"].Counters.Rejected; got != 1 {
		t.Errorf("API: rule locked counts %d rejections, want 1", got)
	}
}

// TestAdminToken: with admin_token set, every endpoint answers 401 without
// the token or with a wrong one, and 200 with it; a refused reload reloads
// nothing.
func TestAdminToken(t *testing.T) {
	t.Parallel()
	const token = "e2e-admin-token"
	be := startBackend(t, echo)
	p, addrs, _ := launchOps(t, 3, adminConfig(be.addr, token), nil)
	for _, tc := range []struct {
		method, path string
		ok           int
	}{
		{http.MethodGet, "/healthz", http.StatusOK},
		{http.MethodGet, "/api/v1/rules", http.StatusOK},
		{http.MethodGet, "/api/v1/connections", http.StatusOK},
		{http.MethodGet, "/metrics", http.StatusOK},
		{http.MethodPost, "/api/v1/reload", http.StatusOK},
	} {
		for _, sent := range []string{"", "wrong-" + token} {
			if code, body := newAdmin(t, addrs[0], sent).do(tc.method, tc.path); code != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: %d %s, want 401", tc.method, tc.path, sent, code, body)
			}
		}
		if code, body := newAdmin(t, addrs[0], token).do(tc.method, tc.path); code != tc.ok {
			t.Errorf("%s %s with the token: %d %s, want %d", tc.method, tc.path, code, body, tc.ok)
		}
	}
	// The one reload logged; any the refused requests made would come
	// before it, so they are all in by now.
	p.wait("reloaded", isMsg("reloaded"))
	if n := p.count(isMsg("reloaded")); n != 1 {
		t.Errorf("sluice reloaded %d times, want once (only the request with the token)", n)
	}
}

// TestAdminTokenRotates: a reload with a new admin_token makes the old one
// fail and the new one work at once, without a restart.
func TestAdminTokenRotates(t *testing.T) {
	t.Parallel()
	be := startBackend(t, echo)
	p, addrs, path := launchOps(t, 3, adminConfig(be.addr, "first-token"), nil)
	if code, body := newAdmin(t, addrs[0], "first-token").do(http.MethodGet, "/api/v1/rules"); code != http.StatusOK {
		t.Fatalf("first token: %d %s", code, body)
	}
	rewriteFile(t, path, adminConfig(be.addr, "second-token")(addrs))
	p.signal(syscall.SIGHUP)
	p.wait("admin_token changed", isMsg("reload: admin_token changed; requests now need the new one"))
	if code, body := newAdmin(t, addrs[0], "first-token").do(http.MethodGet, "/api/v1/rules"); code != http.StatusUnauthorized {
		t.Errorf("old token after the reload: %d %s, want 401", code, body)
	}
	if code, body := newAdmin(t, addrs[0], "second-token").do(http.MethodGet, "/api/v1/rules"); code != http.StatusOK {
		t.Errorf("new token after the reload: %d %s, want 200", code, body)
	}
}

// TestAdminMovesOnReload: a reload that changes the admin address moves the
// API there at once (even a reload asked for through the API itself gets
// its answer), one that cannot bind the new address keeps the running API,
// and one without an address stops it.
func TestAdminMovesOnReload(t *testing.T) {
	t.Parallel()
	be := startBackend(t, echo)
	config := func(admin, listen string) string {
		text := "log_format = \"json\"\n"
		if admin != "" {
			text += fmt.Sprintf("admin = %q\n", admin)
		}
		return text + fmt.Sprintf("\n[[rule]]\nname = \"web\"\nlisten = %q\nbackends = [%q]\n", listen, be.addr)
	}
	p, addrs, path := launchOps(t, 3, func(addrs []string) string { return config(addrs[0], addrs[1]) }, nil)
	p.allowErrors("the test moves the admin API to an address in use, which sluice refuses")
	first, second := addrs[0], addrs[2]
	if code, body := newAdmin(t, first, "").do(http.MethodGet, "/healthz"); code != http.StatusOK {
		t.Fatalf("GET /healthz on %s: %d %s", first, code, body)
	}

	rewriteFile(t, path, config(second, addrs[1]))
	if code, body := newAdmin(t, first, "").do(http.MethodPost, "/api/v1/reload"); code != http.StatusOK {
		t.Fatalf("POST /api/v1/reload moving the API: %d %s", code, body)
	}
	p.wait("the API moved", isMsg("reload: admin API moved"))
	if code, body := newAdmin(t, second, "").do(http.MethodGet, "/healthz"); code != http.StatusOK {
		t.Fatalf("GET /healthz on the new address %s: %d %s", second, code, body)
	}
	waitRefused(t, first)

	// The backend's address is taken: the API stays where it is.
	rewriteFile(t, path, config(be.addr, addrs[1]))
	p.signal(syscall.SIGHUP)
	rec := p.wait("the move refused", isMsg("reload: admin address not changed"))
	if !strings.Contains(rec.str("error"), "address already in use") {
		t.Errorf("refused move: %v, want the cause", rec)
	}
	if code, body := newAdmin(t, second, "").do(http.MethodGet, "/healthz"); code != http.StatusOK {
		t.Fatalf("GET /healthz after the refused move: %d %s", code, body)
	}

	rewriteFile(t, path, config("", addrs[1]))
	p.signal(syscall.SIGHUP)
	p.wait("the API stopped", isMsg("reload: admin API stopped"))
	waitRefused(t, second)
	c := dial(t, addrs[1])
	if err := roundTrip(c, "rules still serve\n"); err != nil {
		t.Fatalf("through rule web after the API stopped: %v", err)
	}
}

// TestAdminListsConnecting: a connection whose backend has not answered its
// connect yet is listed, with no backend, and an operator can close it.
func TestAdminListsConnecting(t *testing.T) {
	t.Parallel()
	dead := blackholeAddr(t)
	p, addrs, _ := launchOps(t, 2, func(addrs []string) string {
		return fmt.Sprintf("log_format = \"json\"\nadmin = %q\n\n[[rule]]\nname = \"slow\"\nlisten = %q\nbackends = [%q]\nconnect_timeout = \"10m\"\n", addrs[0], addrs[1], dead)
	}, nil)
	api := newAdmin(t, addrs[0], "")
	c := dial(t, addrs[1])
	var listed apiConn
	for deadline := time.Now().Add(waitLimit); listed.ID == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the connecting client %s was never listed", c.LocalAddr())
		}
		for _, ac := range api.connections() {
			if ac.Client == c.LocalAddr().String() {
				listed = ac
			}
		}
	}
	if listed.Backend != "" || listed.Rule != "slow" {
		t.Fatalf("listed %+v; want rule slow and no backend yet", listed)
	}
	api.call(http.MethodDelete, "/api/v1/connections/"+strconv.FormatUint(listed.ID, 10), http.StatusNoContent, nil)
	if n, err := readEnd(c); n != 0 || isTimeout(err) {
		t.Fatalf("closed client: %d bytes, %v; want it closed", n, err)
	}
	if rec := p.waitAccess(c); rec.str("end") != "closed" {
		t.Errorf("access line %v: want end=closed", rec)
	}
}
