package server

import (
	"bufio"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"sluice/internal/backend"
	"sluice/internal/config"
)

// routedConfig is a config of one rule on listen with no backends of its
// own and a route per name: an SSH-detecting route "ssh" to the first
// backend and an HTTP one "web" to the second. The routes are built in Go
// (with the rule's backend side as a validated config would give them)
// until the config file reads them.
func routedConfig(t *testing.T, listen, ssh, web string) *config.Config {
	t.Helper()
	cfg := parse(t, ruleTOML("edge", listen, ssh))
	rc := &cfg.Rules[0]
	up := func(addr string) config.Upstream {
		u := rc.Upstream
		u.Backends = parse(t, ruleTOML("x", listen, addr)).Rules[0].Backends
		return u
	}
	rc.Routes = []config.Route{
		{Name: "ssh", Detect: []string{"ssh"}, Upstream: up(ssh)},
		{Name: "web", Detect: []string{"http"}, Upstream: up(web)},
	}
	rc.Backends = nil
	rc.PeekTimeout = 2 * time.Second
	return cfg
}

// askRouted sends first as a client's first bytes and returns the backend's
// answer line.
func askRouted(t *testing.T, addr, first string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte(first))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.TrimSpace(line)
}

// routePools returns the rule's route pools by name.
func routePools(s *Server) map[string]*backend.Pool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]*backend.Pool{}
	for name, p := range s.rules[0].routes {
		out[name] = p
	}
	return out
}

func TestRoutesReload(t *testing.T) {
	ssh1, web1, web2 := echoServer(t, "ssh1"), echoServer(t, "web1"), echoServer(t, "web2")
	la := freeAddr(t)
	srv := startServer(t, routedConfig(t, la, ssh1, web1))
	if got := askRouted(t, la, "SSH-2.0-x\n"); got != "ssh1 SSH-2.0-x" {
		t.Fatalf("ssh client: %q", got)
	}
	if got := askRouted(t, la, "GET / HTTP/1.0\n\n"); got != "web1 GET / HTTP/1.0" {
		t.Fatalf("http client: %q", got)
	}
	if got := askRouted(t, la, "EHLO x\n"); !strings.HasPrefix(got, "error") {
		t.Fatalf("unmatched client without a default route: %q, want closed", got)
	}
	before := routePools(srv)
	if _, err := srv.Reload(routedConfig(t, la, ssh1, web2)); err != nil {
		t.Fatal(err)
	}
	after := routePools(srv)
	if after["ssh"] != before["ssh"] {
		t.Error("an unchanged route's pool was replaced")
	}
	if after["web"] == before["web"] {
		t.Error("a changed route kept its pool")
	}
	if got := askRouted(t, la, "GET / HTTP/1.0\n\n"); got != "web2 GET / HTTP/1.0" {
		t.Fatalf("http client after reload: %q", got)
	}
	var states []string
	for _, b := range srv.backendStates() {
		states = append(states, b.Rule+"/"+b.Route+" "+b.Backend)
	}
	if want := []string{"edge/ssh " + ssh1, "edge/web " + web2}; !slices.Equal(states, want) {
		t.Errorf("backend metrics %q, want %q", states, want)
	}
	st := srv.Rules()[0]
	if len(st.Routes) != 2 || st.Routes[1].Name != "web" || len(st.Routes[1].Backends) != 1 || len(st.Backends) != 0 {
		t.Fatalf("status %+v, want two routes with a backend each and no default", st)
	}
}
