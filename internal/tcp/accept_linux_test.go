package tcp

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"sluice/internal/conntrack"
	"sluice/internal/relay"
)

// TestServeEndsHowTheListenerEnded: on both accept paths, Serve returns nil
// when sluice closed the listener itself (CloseListeners: a stop, a reload
// moving or removing it, an upgrade), and the error when the listener
// failed under it (here the socket is shut down, which no part of sluice
// does).
func TestServeEndsHowTheListenerEnded(t *testing.T) {
	for _, path := range []string{"direct", "net"} {
		for _, end := range []string{"closed", "failed"} {
			t.Run(path+"/"+end, func(t *testing.T) {
				var engine *relay.Engine
				if path == "direct" {
					var err error
					if engine, err = relay.NewEngine(1); err != nil {
						t.Fatalf("the direct path needs the engine: %v", err)
					}
					t.Cleanup(engine.Close)
				}
				svc, ln, served := serveListener(t, engine)
				if direct := svc.serving().direct != nil; direct != (path == "direct") {
					t.Fatalf("Serve took the direct path: %v, want %v", direct, path == "direct")
				}
				if end == "closed" {
					svc.CloseListeners()
				} else {
					shutdownListener(t, ln)
				}
				var err error
				select {
				case err = <-served:
				case <-time.After(10 * time.Second):
					t.Fatal("Serve still accepting 10 s after the listener ended")
				}
				if end == "closed" && err != nil {
					t.Errorf("Serve after CloseListeners: %v, want nil", err)
				}
				if end == "failed" && err == nil {
					t.Errorf("Serve after the listener was shut down: nil, want the error")
				}
				svc.CloseListeners()
			})
		}
	}
}

// serveListener runs Serve on a new loopback listener until it returns (its
// result then comes on the channel) and waits until Serve has taken the
// listener.
func serveListener(t *testing.T, engine *relay.Engine) (*Service, *net.TCPListener, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := NewService(&Rule{Name: "t"}, Deps{Logger: logger, Pools: relay.NewPools(0), Engine: engine, IDs: &conntrack.IDs{}, Table: conntrack.NewTable()})
	served := make(chan error, 1)
	go func() { served <- svc.Serve(ln) }()
	for deadline := time.Now().Add(10 * time.Second); svc.serving() == nil; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Serve did not take the listener within 10 s")
		}
	}
	t.Cleanup(func() { ln.Close() })
	return svc, ln.(*net.TCPListener), served
}

// serving returns the listener that Serve took, or nil before it has.
func (s *Service) serving() *listening {
	s.listener.Lock()
	defer s.listener.Unlock()
	if len(s.lns) == 0 {
		return nil
	}
	return s.lns[0]
}

// shutdownListener breaks ln's socket from under its accept loop:
// shutdown(2) of a listening socket makes accept fail with EINVAL.
func shutdownListener(t *testing.T, ln *net.TCPListener) {
	t.Helper()
	rc, err := ln.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Shutdown(int(fd), unix.SHUT_RDWR) }); err != nil || serr != nil {
		t.Fatalf("shutdown the listener: %v %v", err, serr)
	}
}

// TestCloseRightAfterTake: CloseListeners right after Take, before or
// while the accept loop's goroutine starts, closes the listener, and the
// loop returns nil at once, on both accept paths (the direct one's
// duplicate socket included).
func TestCloseRightAfterTake(t *testing.T) {
	engine, err := relay.NewEngine(1)
	if err != nil {
		t.Fatalf("the direct path needs the engine: %v", err)
	}
	t.Cleanup(engine.Close)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, e := range []*relay.Engine{engine, nil} {
		for i := range 50 {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			svc := NewService(&Rule{Name: "t"}, Deps{Logger: logger, Pools: relay.NewPools(0), Engine: e, IDs: &conntrack.IDs{}, Table: conntrack.NewTable()})
			serve := svc.take(ln)
			served := make(chan error, 1)
			if i%2 == 0 {
				go func() { served <- serve() }()
				svc.CloseListeners()
			} else {
				svc.CloseListeners()
				go func() { served <- serve() }()
			}
			select {
			case err := <-served:
				if err != nil {
					t.Fatalf("engine %v, try %d: the accept loop returned %v, want nil", e != nil, i, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("engine %v, try %d: the accept loop still running 10 s after CloseListeners", e != nil, i)
			}
			if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
				c.Close()
				t.Fatalf("engine %v, try %d: the listener still accepts", e != nil, i)
			}
		}
	}
}
