package admin

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Backends implements Controller over the test rules.
func (c *testController) Backends(rule, route string) ([]BackendStatus, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	list, err := c.backendsLocked(rule, route)
	if err != nil {
		return nil, err
	}
	return append([]BackendStatus(nil), (*list)...), nil
}

// backendsLocked returns the backends of rule or its route; c.mu is held.
func (c *testController) backendsLocked(rule, route string) (*[]BackendStatus, error) {
	for i := range c.rules {
		r := &c.rules[i]
		if r.Name != rule {
			continue
		}
		if route == "" {
			return &r.Backends, nil
		}
		for j := range r.Routes {
			if r.Routes[j].Name == route {
				return &r.Routes[j].Backends, nil
			}
		}
		return nil, fmt.Errorf("rule %q has no route %q: %w", rule, route, ErrNotFound)
	}
	return nil, fmt.Errorf("no rule %q: %w", rule, ErrNotFound)
}

// SetBackend implements Controller over the test rules: states and
// weights are checked as the server's backends check them.
func (c *testController) SetBackend(rule, route, address string, ch BackendChange) (BackendStatus, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	list, err := c.backendsLocked(rule, route)
	if err != nil {
		return BackendStatus{}, err
	}
	for i := range *list {
		b := &(*list)[i]
		if b.Address != address {
			continue
		}
		if ch.State != nil && *ch.State != "ready" && *ch.State != "drain" && *ch.State != "maint" {
			return BackendStatus{}, fmt.Errorf("%w: state %q: want ready, drain or maint", ErrInvalid, *ch.State)
		}
		if ch.Weight != nil && *ch.Weight < 1 {
			return BackendStatus{}, fmt.Errorf("%w: weight %d: must be 1 or more", ErrInvalid, *ch.Weight)
		}
		if ch.State != nil {
			b.State = *ch.State
		}
		if ch.Weight != nil {
			b.Weight = *ch.Weight
		}
		return *b, nil
	}
	return BackendStatus{}, fmt.Errorf("no backend %q: %w", address, ErrNotFound)
}

// put sends a PUT with a JSON body and returns the response and its body.
func put(t *testing.T, url, token, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestBackendEndpoints: the routes reach the controller with the rule,
// route and path-unescaped address; bodies are checked; errors map to
// 404 and 400; the token is required.
func TestBackendEndpoints(t *testing.T) {
	ctl := newTestController(t)
	ctl.rules = append(ctl.rules, RuleStatus{Name: "edge", Backends: []BackendStatus{{Address: "unix:/run/own.sock", State: "ready", Weight: 1}},
		Routes: []RouteStatus{{Name: "app", Backends: []BackendStatus{{Address: "unix:/run/app.sock", State: "ready", Weight: 1}}}}})
	base := startAdmin(t, ctl, "tok")
	unixApp := base + "/api/v1/rules/edge/routes/app/backends/" + url.PathEscape("unix:/run/app.sock")
	if !strings.Contains(unixApp, "%2F") {
		t.Fatalf("%s: the slashes are not escaped", unixApp)
	}

	resp, body := put(t, unixApp, "tok", `{"state": "drain", "weight": 5}`)
	if resp.StatusCode != 200 {
		t.Fatalf("PUT %s: %s %s", unixApp, resp.Status, body)
	}
	var reply backendReply
	decode(t, body, &reply)
	if reply.Rule != "edge" || reply.Route != "app" || reply.Backend.State != "drain" || reply.Backend.Weight != 5 ||
		!strings.Contains(reply.Note, "reload") {
		t.Fatalf("reply %+v", reply)
	}
	resp, body = do(t, "GET", base+"/api/v1/rules/edge/routes/app/backends", "tok")
	if resp.StatusCode != 200 || !strings.Contains(body, `"state":"drain"`) {
		t.Fatalf("GET route backends: %s %s", resp.Status, body)
	}
	resp, body = do(t, "GET", base+"/api/v1/rules/edge/backends", "tok")
	if resp.StatusCode != 200 || !strings.Contains(body, `"address":"unix:/run/own.sock"`) || strings.Contains(body, "app.sock") {
		t.Fatalf("GET rule backends: %s %s", resp.Status, body)
	}

	web := base + "/api/v1/rules/web/backends/10.0.0.6:80"
	for _, c := range []struct {
		url, body string
		status    int
		contains  string
	}{
		{web, `{"state": "up"}`, 400, `state "up"`},
		{web, `{"weight": 0}`, 400, "weight 0"},
		{web, `{"weight": "heavy"}`, 400, "JSON"},
		{web, `{"state": "drain", "colour": "red"}`, 400, "colour"},
		{web, `{}`, 400, "nothing to change"},
		{web, `not json`, 400, "JSON"},
		{base + "/api/v1/rules/nope/backends/10.0.0.6:80", `{"state": "drain"}`, 404, `no rule "nope"`},
		{base + "/api/v1/rules/web/backends/10.0.0.7:80", `{"state": "drain"}`, 404, `no backend "10.0.0.7:80"`},
		{base + "/api/v1/rules/edge/routes/nope/backends/x", `{"state": "drain"}`, 404, `no route "nope"`},
	} {
		resp, body := put(t, c.url, "tok", c.body)
		wantJSONError(t, resp, body, c.status, c.contains)
	}
	resp, body = do(t, "GET", base+"/api/v1/rules/nope/backends", "tok")
	wantJSONError(t, resp, body, 404, `no rule "nope"`)
	resp, body = put(t, web, "", `{"state": "drain"}`)
	wantJSONError(t, resp, body, 401, "token")
	resp, body = put(t, web, "wrong", `{"state": "drain"}`)
	wantJSONError(t, resp, body, 401, "token")
	resp, body = do(t, "DELETE", web, "tok")
	wantJSONError(t, resp, body, 405, "PUT")
	if b, _ := ctl.Backends("web", ""); b[1].State != "" {
		t.Fatalf("a refused change changed the backend: %+v", b[1])
	}
}
