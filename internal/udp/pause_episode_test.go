package udp

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"sluice/internal/backend"
	"sluice/internal/backoff"
	"sluice/internal/conntrack"
)

// TestPauseOutlivesEarlierAttempts: a socket that opens for a session
// that was let through before the pause began (on another loop, say, as
// the failure came) does not end the pause, so a shortage logs one
// warning, not one per loop racing it. A session let through after the
// failure, a second after it, does end it.
func TestPauseOutlivesEarlierAttempts(t *testing.T) {
	logs := newLogRecorder()
	pool := backend.NewPool(backend.Settings{Name: "test"}, nil, slog.New(logs))
	svc := NewService(&Rule{Name: "test", Pool: pool}, Deps{Logger: slog.New(logs), Table: conntrack.NewTable()})
	ss := &session{svc: svc}
	before, ok := svc.mayOpen(ss)
	if !ok {
		t.Fatal("not paused, yet mayOpen refused")
	}
	svc.pauseFor(&backend.OpenError{Err: errors.New("socket: too many open files")})
	svc.opened(before)
	svc.mu.Lock()
	paused := svc.pause.delay.Current() > 0
	svc.mu.Unlock()
	if !paused {
		t.Fatal("a socket of an attempt let through before the pause ended it")
	}
	// The all-clear needs the last failure a full back-off old (see
	// backoff.Delay.Recover): a second of time passing is the state here.
	time.Sleep(backoff.Max)
	after, ok := svc.mayOpen(ss)
	if !ok {
		t.Fatal("mayOpen refused after the back-off")
	}
	svc.opened(after)
	svc.mu.Lock()
	paused = svc.pause.delay.Current() > 0
	svc.mu.Unlock()
	if paused {
		t.Fatal("a socket opened after the pause began did not end it")
	}
}
