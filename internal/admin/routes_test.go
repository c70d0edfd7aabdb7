package admin

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// edgeRule is a routed rule as the server reports it: two routes (the
// second without backends), a default route with one backend that is
// down, and two certificates, the rule's own expiring at ruleCert and the
// first route's at routeCert.
func edgeRule(routeCert, ruleCert time.Time) RuleStatus {
	def := uint64(4)
	return RuleStatus{
		Name: "edge", Listen: "0.0.0.0:443", Protocol: "tcp", Balance: "round-robin",
		Backends:                []BackendStatus{{Address: "10.0.0.9:443", Up: false, Weight: 1}},
		DefaultRouteConnections: &def,
		Routes: []RouteStatus{
			{Name: "app", SNI: []string{"app.example.com", "*.example.org"}, ALPN: []string{"h2"}, Balance: "least-conn",
				Connections: 7, Backends: []BackendStatus{
					{Address: "10.0.0.5:443", Up: true, Weight: 1},
					{Address: "10.0.0.6:443", Up: false, Weight: 1, ConnectErrors: 2},
				}},
			{Name: "ssh", Detect: []string{"ssh"}, HTTPHost: []string{"www.example.com"}, Balance: "first", Connections: 2},
		},
		Certificates: []CertStatus{
			{Name: "app.example.com", NotAfter: routeCert, Route: "app"},
			{Name: "edge.example.net", NotAfter: ruleCert},
		},
	}
}

func TestRulesReportRoutesAndCertificates(t *testing.T) {
	ctl := newTestController(t)
	expiry := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	ctl.rules = append([]RuleStatus{edgeRule(expiry, expiry.Add(time.Hour))}, ctl.rules...)
	base := startAdmin(t, ctl, "")

	resp, body := do(t, "GET", base+"/api/v1/rules", "")
	if resp.StatusCode != 200 {
		t.Fatalf("GET rules: %s %s", resp.Status, body)
	}
	// The JSON field names are the API: check them literally.
	for _, key := range []string{
		`"routes":[{"name":"app","sni":["app.example.com","*.example.org"],"alpn":["h2"],"balance":"least-conn","backends":[`,
		`{"address":"10.0.0.6:443","state":"","up":false,"health":"","weight":1,"config_weight":0,"backup":false,"active":0,"connect_errors":2,"connections_total":0,"bytes_up":0,"bytes_down":0}],"connections":7}`,
		`{"name":"ssh","http_host":["www.example.com"],"detect":["ssh"],"balance":"first","backends":[],"connections":2}]`,
		`"default_route_connections":4`,
		`"certificates":[{"name":"app.example.com","not_after":"2030-01-02T03:04:05Z","route":"app"},` +
			`{"name":"edge.example.net","not_after":"2030-01-02T04:04:05Z"}]`,
	} {
		if !strings.Contains(body, key) {
			t.Errorf("rules JSON lacks %s: %s", key, body)
		}
	}
	var got struct{ Rules []map[string]json.RawMessage }
	decode(t, body, &got)
	if len(got.Rules) != 3 {
		t.Fatalf("want 3 rules: %s", body)
	}
	// A rule without routes or certificates says nothing of them.
	for _, key := range []string{"routes", "default_route_connections", "certificates"} {
		if v, ok := got.Rules[1][key]; ok {
			t.Errorf("rule web without routes has %q: %s", key, v)
		}
	}
}

// setRouteConnections sets the connection count of a route of a rule.
func (c *testController) setRouteConnections(rule, route string, n uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.rules {
		for j := range c.rules[i].Routes {
			if c.rules[i].Name == rule && c.rules[i].Routes[j].Name == route {
				c.rules[i].Routes[j].Connections = n
			}
		}
	}
}
