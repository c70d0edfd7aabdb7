package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sluice/internal/admin"
	"sluice/internal/testkit/loopback"
)

// backendOf returns the status of the backend with address of rule (or
// of its route) as the server reports it.
func backendOf(t *testing.T, s *Server, rule, route, address string) admin.BackendStatus {
	t.Helper()
	list, err := s.Backends(rule, route)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range list {
		if b.Address == address {
			return b
		}
	}
	t.Fatalf("rule %q route %q has no backend %q: %+v", rule, route, address, list)
	return admin.BackendStatus{}
}

// set changes a backend through the server as the API does.
func set(t *testing.T, s *Server, rule, route, address, state string, weight int) {
	t.Helper()
	var ch admin.BackendChange
	if state != "" {
		ch.State = &state
	}
	if weight != 0 {
		ch.Weight = &weight
	}
	if _, err := s.SetBackend(rule, route, address, ch); err != nil {
		t.Fatal(err)
	}
}

// askAll asks n new connections which backend serves them.
func askAll(t *testing.T, addr string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		c := dial(t, addr)
		name, _, _ := strings.Cut(c.ask(t, "hi"), " ")
		got[name]++
		c.c.Close()
	}
	return got
}

// TestBackendStateSurvivesReload: a drained backend stays drained and a
// runtime weight stays across a reload that rebuilds the pool, until a
// reload changes that backend's weight in the file, which resets it.
func TestBackendStateSurvivesReload(t *testing.T) {
	a, b := echoServer(t, "a"), echoServer(t, "b")
	listen := freeAddr(t)
	cfgText := func(extra string) string {
		return fmt.Sprintf("[[rule]]\nname = \"web\"\nlisten = %q\n%sbackends = [%q, { address = %q, weight = %s }]\n",
			listen, extra, a, b, map[bool]string{true: "3", false: "1"}[strings.Contains(extra, "#w3")])
	}
	s := startServer(t, parse(t, cfgText("")))
	set(t, s, "web", "", a, "drain", 0)
	set(t, s, "web", "", b, "", 7)
	if got := askAll(t, listen, 6); got["a"] != 0 {
		t.Fatalf("a drained, yet served %v", got)
	}

	if _, err := s.Reload(parse(t, cfgText("retries = 2\n"))); err != nil {
		t.Fatal(err)
	}
	if st := backendOf(t, s, "web", "", a); st.State != "drain" || st.LastChange == nil {
		t.Fatalf("a after reload: %+v, want drained with its change time", st)
	}
	if st := backendOf(t, s, "web", "", b); st.Weight != 7 || st.ConfigWeight != 1 {
		t.Fatalf("b after reload: weight %d (file %d), want 7 (1)", st.Weight, st.ConfigWeight)
	}
	if got := askAll(t, listen, 6); got["a"] != 0 {
		t.Fatalf("a drained before the reload, yet served %v after it", got)
	}

	if _, err := s.Reload(parse(t, cfgText("retries = 2\n#w3\n"))); err != nil {
		t.Fatal(err)
	}
	if st := backendOf(t, s, "web", "", b); st.Weight != 3 || st.ConfigWeight != 3 {
		t.Fatalf("b after the file changed its weight to 3: weight %d (file %d)", st.Weight, st.ConfigWeight)
	}
	if st := backendOf(t, s, "web", "", a); st.State != "drain" {
		t.Fatalf("a after the second reload: %+v", st)
	}
	rules := s.Rules()
	if got := rules[0].Backends[0]; got.State != "drain" || got.Health != "up" {
		t.Fatalf("GET rules reports a as %+v", got)
	}
}

// TestBackendStateRestoredFromPredecessor: what BackendStates hands over
// is set on the new server's backends before they serve, but for a weight
// the file has changed since.
func TestBackendStateRestoredFromPredecessor(t *testing.T) {
	a, b := echoServer(t, "a"), echoServer(t, "b")
	old := startServer(t, parse(t, fmt.Sprintf("[[rule]]\nname = \"web\"\nlisten = %q\nbackends = [%q, %q]\n", freeAddr(t), a, b)))
	set(t, old, "web", "", a, "maint", 4)
	set(t, old, "web", "", b, "", 9)
	saved := old.BackendStates()

	listen := freeAddr(t)
	text := fmt.Sprintf("[[rule]]\nname = \"web\"\nlisten = %q\nbackends = [%q, { address = %q, weight = 2 }]\n", listen, a, b)
	s := New(Options{Logger: old.logger})
	s.saved = s.decodeSaved(saved)
	if err := s.Start(parse(t, text)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	if st := backendOf(t, s, "web", "", a); st.State != "maint" || st.Weight != 4 || st.Health != "maint" {
		t.Fatalf("a restored as %+v, want maint with weight 4", st)
	}
	if st := backendOf(t, s, "web", "", b); st.Weight != 2 {
		t.Fatalf("b's weight %d, want the file's new 2", st.Weight)
	}
	if got := askAll(t, listen, 4); got["b"] != 4 {
		t.Fatalf("served %v, want b only", got)
	}
}

// apiController is the server as the admin API's Controller; reloading
// is not part of these tests.
type apiController struct{ *Server }

func (apiController) Reload() (admin.ReloadReport, error) { return admin.ReloadReport{}, nil }

// TestBackendAPI drives the real server through the real admin API: a
// route's unix backend addressed with escaped slashes, the rule's own
// backends, and the errors.
func TestBackendAPI(t *testing.T) {
	dir, err := os.MkdirTemp("", "sl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "app.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	loopback.ServeOn(t, ln, func(c net.Conn) { io.Copy(c, c) })
	own := echoServer(t, "own")
	cfg := routedConfig(t, freeAddr(t), own, "unix:"+sock)
	cfg.Rules[0].Backends = parse(t, ruleTOML("x", freeAddr(t), own)).Rules[0].Backends
	s := startServer(t, cfg)
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.Serve(aln, admin.Options{Controller: apiController{s}, Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	base := "http://" + aln.Addr().String() + "/api/v1/rules/edge"

	status, body := call(t, "PUT", base+"/routes/web/backends/"+url.PathEscape("unix:"+sock), "tok", `{"state":"maint","weight":3}`)
	if status != 200 || !strings.Contains(body, `"state":"maint"`) || !strings.Contains(body, `"health":"maint"`) ||
		!strings.Contains(body, `"weight":3`) || !strings.Contains(body, "reload") {
		t.Fatalf("PUT the unix backend: %d %s", status, body)
	}
	if st := backendOf(t, s, "edge", "web", "unix:"+sock); st.State != "maint" {
		t.Fatalf("the route's backend is %+v", st)
	}
	status, body = call(t, "GET", base+"/backends", "tok", "")
	var list struct{ Backends []admin.BackendStatus }
	if err := json.Unmarshal([]byte(body), &list); status != 200 || err != nil || len(list.Backends) != 1 || list.Backends[0].State != "ready" {
		t.Fatalf("GET the rule's own backends: %d %s", status, body)
	}
	for _, c := range []struct {
		method, path, token, body string
		status                    int
	}{
		{"PUT", "/backends/" + url.PathEscape(own), "tok", `{"state":"sleep"}`, 400},
		{"PUT", "/backends/" + url.PathEscape(own), "tok", fmt.Sprintf(`{"weight":%d}`, int64(1)<<31), 400},
		{"PUT", "/backends/" + url.PathEscape("unix:"+sock), "tok", `{"state":"drain"}`, 404}, // the route's, not the rule's
		{"PUT", "/routes/nope/backends/x", "tok", `{"state":"drain"}`, 404},
		{"GET", "/routes/web/backends", "", "", 401},
		{"PUT", "/backends/" + url.PathEscape(own), "", `{"state":"drain"}`, 401},
	} {
		if status, body := call(t, c.method, base+c.path, c.token, c.body); status != c.status {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, status, body, c.status)
		}
	}
	if st := backendOf(t, s, "edge", "", own); st.State != "ready" || st.Weight != 1 {
		t.Fatalf("refused changes changed the backend: %+v", st)
	}
}

// call makes one admin API request and returns its status and body.
func call(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
