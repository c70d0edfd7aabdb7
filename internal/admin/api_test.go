package admin

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// decode parses a JSON body into v, failing the test on error.
func decode(t *testing.T, body string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
}

// wantJSONError checks a JSON error response.
func wantJSONError(t *testing.T, resp *http.Response, body string, status int, contains string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d (body %q)", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var e struct{ Error string }
	decode(t, body, &e)
	if !strings.Contains(e.Error, contains) {
		t.Errorf("error %q does not mention %q", e.Error, contains)
	}
}

func TestRulesReportBackendsAndCounters(t *testing.T) {
	ctl := newTestController(t)
	base := startAdmin(t, ctl, "")
	conn, _ := ctl.open("web")
	pingPong(t, conn, "hello, sluice")

	resp, body := do(t, "GET", base+"/api/v1/rules", "")
	if resp.StatusCode != 200 {
		t.Fatalf("GET rules: %s %s", resp.Status, body)
	}
	var got struct{ Rules []RuleStatus }
	decode(t, body, &got)
	if len(got.Rules) != 2 || got.Rules[0].Name != "web" || got.Rules[1].Name != "dns" {
		t.Fatalf("rules = %+v, want web then dns", got.Rules)
	}
	web := got.Rules[0]
	want := Counters{ConnectionsTotal: 1, Active: 1, BytesUp: 13, BytesDown: 13}
	if web.Counters != want {
		t.Errorf("web counters = %+v, want %+v", web.Counters, want)
	}
	if len(web.Backends) != 2 || web.Backends[1] != (BackendStatus{Address: "10.0.0.6:80", Weight: 2, Backup: true, ConnectErrors: 3}) {
		t.Errorf("web backends = %+v", web.Backends)
	}
	// The JSON field names are the API: check them literally.
	for _, key := range []string{`"name":"web"`, `"listen":"127.0.0.1:8080"`, `"protocol":"tcp"`, `"balance":"round-robin"`,
		`"address":"10.0.0.6:80"`, `"up":false`, `"weight":2`, `"backup":true`, `"active":0`, `"connect_errors":3`,
		`"connections_total":1`, `"bytes_up":13`, `"bytes_down":13`, `"rejected":0`, `"udp_sessions":0`} {
		if !strings.Contains(body, key) {
			t.Errorf("rules JSON lacks %s: %s", key, body)
		}
	}
}

func TestEmptyListsAreArrays(t *testing.T) {
	ctl := newTestController(t)
	ctl.rules = []RuleStatus{{Name: "bare"}}
	base := startAdmin(t, ctl, "")
	_, body := do(t, "GET", base+"/api/v1/rules", "")
	if !strings.Contains(body, `"backends":[]`) {
		t.Errorf("a rule without backends should list [] : %s", body)
	}
	_, body = do(t, "GET", base+"/api/v1/connections", "")
	if !strings.Contains(body, `"connections":[]`) || !strings.Contains(body, `"total":0`) {
		t.Errorf("no connections should be [] with total 0: %s", body)
	}
}

func TestConnectionsListFilterLimit(t *testing.T) {
	ctl := newTestController(t)
	base := startAdmin(t, ctl, "")
	c1, id1 := ctl.open("web")
	_, id2 := ctl.open("dns")
	_, id3 := ctl.open("web")
	pingPong(t, c1, "abc")

	var list struct {
		Total       int
		Connections []struct {
			ID             uint64
			Rule, Client   string
			Backend, Proto string
			BytesUp        int64 `json:"bytes_up"`
			BytesDown      int64 `json:"bytes_down"`
			Since          string
		}
	}
	resp, body := do(t, "GET", base+"/api/v1/connections", "")
	if resp.StatusCode != 200 {
		t.Fatalf("GET connections: %s %s", resp.Status, body)
	}
	decode(t, body, &list)
	if list.Total != 3 || len(list.Connections) != 3 {
		t.Fatalf("want 3 connections, got %s", body)
	}
	first := list.Connections[0]
	if first.ID != id1 || first.Rule != "web" || first.Proto != "tcp" || first.BytesUp != 3 || first.BytesDown != 3 ||
		first.Client != c1.LocalAddr().String() || first.Backend != ctl.backend.Addr().String() || first.Since == "" {
		t.Errorf("first connection = %+v", first)
	}
	if !strings.Contains(body, `"now":"`) {
		t.Errorf("connections lack the server time: %s", body)
	}

	_, body = do(t, "GET", base+"/api/v1/connections?rule=web", "")
	decode(t, body, &list)
	if ids := []uint64{list.Connections[0].ID, list.Connections[1].ID}; list.Total != 2 || !slices.Equal(ids, []uint64{id1, id3}) {
		t.Errorf("?rule=web: %s", body)
	}
	_, body = do(t, "GET", base+"/api/v1/connections?limit=1", "")
	decode(t, body, &list)
	if list.Total != 3 || len(list.Connections) != 1 || list.Connections[0].ID != id1 {
		t.Errorf("?limit=1: want total 3 and only id %d, got %s", id1, body)
	}
	_ = id2
	for _, bad := range []string{"-1", "x", "1.5"} {
		resp, body := do(t, "GET", base+"/api/v1/connections?limit="+bad, "")
		wantJSONError(t, resp, body, http.StatusBadRequest, "limit")
	}
}

func TestCloseConnection(t *testing.T) {
	ctl := newTestController(t)
	base := startAdmin(t, ctl, "")
	keep, keepID := ctl.open("web")
	victim, id := ctl.open("web")

	resp, body := do(t, "DELETE", fmt.Sprintf("%s/api/v1/connections/%d", base, id), "")
	if resp.StatusCode != http.StatusNoContent || body != "" {
		t.Fatalf("DELETE live connection: %s %q, want 204 and no body", resp.Status, body)
	}
	waitEOF(t, victim)
	ctl.waitGone(id)
	if got := ctl.closed(); !slices.Equal(got, []uint64{id}) {
		t.Errorf("controller asked to close %v, want [%d]", got, id)
	}
	pingPong(t, keep, "still here") // the other connection is untouched
	_, body = do(t, "GET", base+"/api/v1/connections", "")
	if strings.Contains(body, fmt.Sprintf(`"id":%d,`, id)) || !strings.Contains(body, fmt.Sprintf(`"id":%d,`, keepID)) {
		t.Errorf("after close, list = %s", body)
	}

	resp, body = do(t, "DELETE", fmt.Sprintf("%s/api/v1/connections/%d", base, id), "")
	wantJSONError(t, resp, body, http.StatusNotFound, fmt.Sprint(id))
	resp, body = do(t, "DELETE", base+"/api/v1/connections/999999", "")
	wantJSONError(t, resp, body, http.StatusNotFound, "no such live connection")
	for _, bad := range []string{"abc", "-3", "18446744073709551616"} {
		resp, body = do(t, "DELETE", base+"/api/v1/connections/"+bad, "")
		wantJSONError(t, resp, body, http.StatusBadRequest, bad)
	}
}

func TestReload(t *testing.T) {
	ctl := newTestController(t)
	base := startAdmin(t, ctl, "")
	ctl.setReload(ReloadReport{Added: []string{"new"}, Changed: []string{"web"}, Unchanged: []string{"dns"}}, nil)
	resp, body := do(t, "POST", base+"/api/v1/reload", "")
	if resp.StatusCode != 200 {
		t.Fatalf("reload: %s %s", resp.Status, body)
	}
	want := `{"added":["new"],"removed":[],"changed":["web"],"unchanged":["dns"]}` + "\n"
	if body != want {
		t.Errorf("reload body = %q, want %q", body, want)
	}

	ctl.setReload(ReloadReport{}, errors.Join(
		errors.New(`sluice.toml:14: rule "web": backend "10.0.0.5": missing port`),
		errors.New(`sluice.toml:20: rule "dns": unknown key "balanse"`)))
	resp, body = do(t, "POST", base+"/api/v1/reload", "")
	wantJSONError(t, resp, body, http.StatusBadRequest, "missing port")
	var fail struct {
		Error  string
		Errors []string
	}
	decode(t, body, &fail)
	if len(fail.Errors) != 2 || !strings.Contains(fail.Errors[1], `unknown key "balanse"`) || !hasLine(fail.Error, fail.Errors[0]) {
		t.Errorf("reload failure = %+v, want both errors, one per line", fail)
	}
	if ctl.reloadCount() != 2 {
		t.Errorf("controller reloaded %d times, want 2", ctl.reloadCount())
	}
}

func TestHealthz(t *testing.T) {
	ctl := newTestController(t)
	base := startAdmin(t, ctl, "")
	resp, body := do(t, "GET", base+"/healthz", "")
	if resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("healthy: %s %q", resp.Status, body)
	}
	ctl.setHealth(false, `rule "web": listen 127.0.0.1:8080: not listening`)
	resp, body = do(t, "GET", base+"/healthz", "")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `rule "web"`) {
		t.Errorf("unhealthy: %s %q, want 503 with the reason", resp.Status, body)
	}
}

func TestWrongMethodAndUnknownPath(t *testing.T) {
	ctl := newTestController(t)
	base := startAdmin(t, ctl, "")
	cases := []struct{ method, path, allow string }{
		{"POST", "/", "GET, HEAD"},
		{"DELETE", "/metrics", "GET, HEAD"},
		{"POST", "/healthz", "GET, HEAD"},
		{"PUT", "/api/v1/rules", "GET, HEAD"},
		{"POST", "/api/v1/connections", "GET, HEAD"},
		{"GET", "/api/v1/connections/1", "DELETE"},
		{"GET", "/api/v1/reload", "POST"},
	}
	for _, c := range cases {
		resp, body := do(t, c.method, base+c.path, "")
		wantJSONError(t, resp, body, http.StatusMethodNotAllowed, "not allowed")
		if got := resp.Header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}
	if ctl.reloadCount() != 0 || len(ctl.closed()) != 0 {
		t.Error("a wrong method reached the controller")
	}
	resp, body := do(t, "GET", base+"/nope", "")
	wantJSONError(t, resp, body, http.StatusNotFound, "/nope")
	resp, body = do(t, "GET", base+"/api/v1/connections/1/extra", "")
	wantJSONError(t, resp, body, http.StatusNotFound, "no such endpoint")
}

func TestMetricsScrape(t *testing.T) {
	ctl := newTestController(t)
	base := startAdmin(t, ctl, "")
	conn, _ := ctl.open("web")
	pingPong(t, conn, "0123456789")
	ctl.setBackendUp("web", "10.0.0.6:80", false)

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	find := func(name string, labels map[string]string) float64 {
		for _, m := range fams[name].GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if fmt.Sprint(got) == fmt.Sprint(labels) {
				return metricValue(m)
			}
		}
		t.Fatalf("no %s%v in /metrics", name, labels)
		return 0
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"sluice_bytes_total", map[string]string{"rule": "web", "direction": "up"}, 10},
		{"sluice_bytes_total", map[string]string{"rule": "web", "direction": "down"}, 10},
		{"sluice_connections_total", map[string]string{"rule": "web"}, 1},
		{"sluice_connections_active", map[string]string{"rule": "web"}, 1},
		{"sluice_backend_up", map[string]string{"rule": "web", "route": "", "backend": "10.0.0.6:80"}, 0},
		{"sluice_backend_up", map[string]string{"rule": "dns", "route": "", "backend": "10.0.0.9:53"}, 1},
		{"sluice_backend_connect_errors_total", map[string]string{"rule": "web", "route": "", "backend": "10.0.0.6:80"}, 3},
	}
	for _, c := range checks {
		if got := find(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// metricValue returns a counter's or gauge's value.
func metricValue(m *dto.Metric) float64 {
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

func TestMetricsOffWithoutGatherer(t *testing.T) {
	ctl := newTestController(t)
	s, err := Listen("127.0.0.1:0", Options{Controller: ctl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(t.Context()) })
	resp, body := do(t, "GET", "http://"+s.Addr().String()+"/metrics", "")
	wantJSONError(t, resp, body, http.StatusNotFound, "metrics")
}

var (
	inlineScript = regexp.MustCompile(`(?s)<script>(.*?)</script>`)
	inlineStyle  = regexp.MustCompile(`(?s)<style>(.*?)</style>`)
	// externalRef finds anything a page would fetch from elsewhere.
	externalRef = regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:|//)|url\(\s*["']?(https?:|//)|@import`)
)

func TestDashboardIsSelfContainedWithStrictCSP(t *testing.T) {
	ctl := newTestController(t)
	base := startAdmin(t, ctl, "")
	resp, body := do(t, "GET", base+"/", "")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	if externalRef.MatchString(body) {
		t.Errorf("dashboard refers to something outside itself: %q", externalRef.FindString(body))
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("CSP %q lacks %q", csp, d)
		}
	}
	scripts, styles := inlineScript.FindAllStringSubmatch(body, -1), inlineStyle.FindAllStringSubmatch(body, -1)
	if len(scripts) != 1 || len(styles) != 1 || len(scripts[0][1]) < 1000 {
		t.Fatalf("want one inline script and one inline style, got %d and %d", len(scripts), len(styles))
	}
	for _, s := range []string{scripts[0][1], styles[0][1]} {
		sum := sha256.Sum256([]byte(s))
		if h := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, h) {
			t.Errorf("CSP does not allow the inline element by hash %s", h)
		}
	}
	resp, body = do(t, "HEAD", base+"/", "")
	if resp.StatusCode != 200 || body != "" || resp.ContentLength < 1000 {
		t.Errorf("HEAD /: %s, %d body bytes, length %d", resp.Status, len(body), resp.ContentLength)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("security headers missing: %v", resp.Header)
	}
}
