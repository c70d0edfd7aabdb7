package admin

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestListenRefusesNonLoopbackWithoutToken(t *testing.T) {
	ctl := newTestController(t)
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:0", "admin.example.com:0"} {
		s, err := Listen(addr, Options{Controller: ctl})
		if err == nil {
			s.Shutdown(t.Context())
			t.Errorf("Listen(%q) without a token succeeded", addr)
			continue
		}
		if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "admin_token") {
			t.Errorf("Listen(%q): error %q should name the address and admin_token", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0", "[::1]:0"} {
		s, err := Listen(addr, Options{Controller: ctl})
		if err != nil {
			if strings.Contains(addr, "::1") && strings.Contains(err.Error(), "assign requested address") {
				continue // no IPv6 loopback on this machine
			}
			t.Errorf("Listen(%q): %v", addr, err)
			continue
		}
		s.Shutdown(t.Context())
	}
}

func TestServeChecksTheListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Serve(ln, Options{Controller: newTestController(t), Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(t.Context())
	resp, _ := do(t, "GET", "http://"+s.Addr().String()+"/healthz", "tok")
	if resp.StatusCode != 200 {
		t.Errorf("inherited listener: healthz %d", resp.StatusCode)
	}
	for _, addr := range []string{"0.0.0.0:9", "10.0.0.1:80"} {
		if loopbackHost(addr) {
			t.Errorf("loopbackHost(%q) = true", addr)
		}
	}
}

func TestListenBusyPortNamesAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Listen(ln.Addr().String(), Options{Controller: newTestController(t)})
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) || !strings.HasPrefix(err.Error(), "admin: ") {
		t.Fatalf("Listen on a busy port: %v, want an admin error naming %s", err, ln.Addr())
	}
}

// blockingReload is a controller whose Reload waits to be released.
type blockingReload struct {
	*testController
	entered chan struct{}
	release chan struct{}
}

func (b blockingReload) Reload() (ReloadReport, error) {
	close(b.entered)
	<-b.release
	return ReloadReport{Unchanged: []string{"web"}}, nil
}

func TestShutdownLetsRequestsFinish(t *testing.T) {
	ctl := blockingReload{newTestController(t), make(chan struct{}), make(chan struct{})}
	s, err := Listen("127.0.0.1:0", Options{Controller: ctl})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + s.Addr().String()
	type result struct {
		status int
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Post(base+"/api/v1/reload", "", nil)
		if err != nil {
			got <- result{err: err}
			return
		}
		resp.Body.Close()
		got <- result{status: resp.StatusCode}
	}()
	<-ctl.entered
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		stopped <- s.Shutdown(ctx)
	}()
	// Once shutting down, the server accepts no new connection; wait for
	// that, bounded, before releasing the request in flight.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr().String(), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the server still accepts connections while shutting down")
		}
		time.Sleep(5 * time.Millisecond) // the listener closes asynchronously; nothing to wait on
	}
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned (%v) while a request was in flight", err)
	default:
	}
	close(ctl.release)
	if r := <-got; r.err != nil || r.status != 200 {
		t.Errorf("request in flight during shutdown: status %d, err %v; want 200", r.status, r.err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestShutdownDeadlineCutsStuckRequests(t *testing.T) {
	ctl := blockingReload{newTestController(t), make(chan struct{}), make(chan struct{})}
	defer close(ctl.release)
	s, err := Listen("127.0.0.1:0", Options{Controller: ctl})
	if err != nil {
		t.Fatal(err)
	}
	clientErr := make(chan error, 1)
	go func() {
		resp, err := http.Post("http://"+s.Addr().String()+"/api/v1/reload", "", nil)
		if err == nil {
			resp.Body.Close()
		}
		clientErr <- err
	}()
	<-ctl.entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); err == nil || !strings.Contains(err.Error(), "admin: shutdown") {
		t.Errorf("Shutdown with an expired context: %v, want an admin shutdown error", err)
	}
	if err := <-clientErr; err == nil {
		t.Error("the stuck request got a response, want its connection cut")
	}
}

// TestSetTokenRotates: a new token applies to the next request and the old
// one stops working; no token is refused on an address that is not
// loopback.
func TestSetTokenRotates(t *testing.T) {
	s, err := Listen("0.0.0.0:0", Options{Controller: newTestController(t), Token: "old"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(t.Context())
	_, port, _ := net.SplitHostPort(s.Addr().String())
	url := "http://127.0.0.1:" + port + "/api/v1/rules"
	status := func(token string) int {
		resp, _ := do(t, "GET", url, token)
		return resp.StatusCode
	}
	if got := status("old"); got != http.StatusOK {
		t.Fatalf("old token before the change: %d", got)
	}
	if err := s.SetToken("new"); err != nil {
		t.Fatal(err)
	}
	if got := status("old"); got != http.StatusUnauthorized {
		t.Errorf("old token after the change: %d, want 401", got)
	}
	if got := status("new"); got != http.StatusOK {
		t.Errorf("new token: %d, want 200", got)
	}
	if err := s.SetToken(""); err == nil || !strings.Contains(err.Error(), "admin_token") {
		t.Errorf("dropping the token on a wildcard address: %v, want refused", err)
	}
	if got := status("new"); got != http.StatusOK {
		t.Errorf("token after a refused change: %d, want 200", got)
	}
}
