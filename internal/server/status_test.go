package server

import (
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"sluice/internal/metrics"
)

func TestRulesReportRouteMatchersAndCounts(t *testing.T) {
	ssh, web, def := echoServer(t, "ssh"), echoServer(t, "web"), echoServer(t, "def")
	la := freeAddr(t)
	cfg := routedConfig(t, la, ssh, web)
	rc := &cfg.Rules[0]
	rc.Routes[1].HTTPHost = []string{"www.example.com"}
	rc.Backends = parse(t, ruleTOML("x", la, def)).Rules[0].Backends
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m})
	if err := srv.Start(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)

	const get = "GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n"
	for first, want := range map[string]string{"SSH-2.0-x\n": "ssh SSH-2.0-x", get: "web GET / HTTP/1.1", "EHLO x\n": "def EHLO x"} {
		if got := askRouted(t, la, first); got != want {
			t.Fatalf("client sending %q got %q, want %q", first, got, want)
		}
	}
	if got := askRouted(t, la, get); got != "web GET / HTTP/1.1" {
		t.Fatalf("second http client: %q", got)
	}

	st := srv.Rules()[0]
	if len(st.Routes) != 2 {
		t.Fatalf("routes %+v, want ssh and web", st.Routes)
	}
	ssh0, web1 := st.Routes[0], st.Routes[1]
	if ssh0.Name != "ssh" || !slices.Equal(ssh0.Detect, []string{"ssh"}) || ssh0.SNI != nil || ssh0.HTTPHost != nil || ssh0.Connections != 1 {
		t.Errorf("route ssh %+v, want detect [ssh] and 1 connection", ssh0)
	}
	if web1.Name != "web" || !slices.Equal(web1.Detect, []string{"http"}) || !slices.Equal(web1.HTTPHost, []string{"www.example.com"}) ||
		web1.ALPN != nil || web1.Connections != 2 {
		t.Errorf("route web %+v, want detect [http], http_host [www.example.com] and 2 connections", web1)
	}
	if st.DefaultRouteConnections == nil || *st.DefaultRouteConnections != 1 {
		t.Errorf("default route connections %v, want 1", st.DefaultRouteConnections)
	}
	if len(st.Backends) != 1 || st.Backends[0].Address != def {
		t.Errorf("default route backends %+v, want %s", st.Backends, def)
	}
	if st.Certificates != nil {
		t.Errorf("certificates %+v of a rule that terminates no TLS", st.Certificates)
	}
	// The API may modify what it gets: the matchers are copies.
	web1.HTTPHost[0] = "changed"
	if got := srv.Rules()[0].Routes[1].HTTPHost[0]; got != "www.example.com" {
		t.Errorf("changing the reported matchers changed the server's: %q", got)
	}
}

func TestRulesWithoutRoutesReportNoRouteCounts(t *testing.T) {
	la := freeAddr(t)
	srv := startServer(t, parse(t, ruleTOML("plain", la, echoServer(t, "b"))))
	st := srv.Rules()[0]
	if st.Routes != nil || st.DefaultRouteConnections != nil || st.Certificates != nil {
		t.Errorf("a rule without routes reports %+v", st)
	}
}
