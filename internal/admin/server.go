package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Server is a running admin HTTP server.
type Server struct {
	http  *http.Server
	guard *guard   // checks every request; holds the token
	hist  *history // sampled from Serve to Shutdown
	ln    net.Listener
	done  chan struct{} // closed when Serve has returned
	err   error         // Serve's error other than ErrServerClosed; read after done
}

// Serve serves the admin handler of o on ln, a listener the caller opened
// or inherited, until Shutdown. Without a token it refuses a listener that
// is not on a loopback address, and closes it.
func Serve(ln net.Listener, o Options) (*Server, error) {
	addr := ln.Addr().String()
	if err := tokenNeeded("serve on", addr, o.Token); err != nil {
		ln.Close()
		return nil, err
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g, hist := newGuard(o)
	s := &Server{
		guard: g,
		hist:  hist,
		http: &http.Server{
			Handler:           g,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
		ln:   ln,
		done: make(chan struct{}),
	}
	hist.start()
	go s.serve()
	return s, nil
}

// serve runs the HTTP server until it is shut down.
func (s *Server) serve() {
	defer close(s.done)
	if err := s.http.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.err = fmt.Errorf("admin: serve on %s: %w", s.ln.Addr(), err)
	}
}

// SetToken makes token the one every request must carry from now on
// (admin_token changed by a reload). Requests already past the check are
// not affected. An empty token is refused on an address that is not
// loopback, as at start.
func (s *Server) SetToken(token string) error {
	if err := tokenNeeded("serve on", s.ln.Addr().String(), token); err != nil {
		return err
	}
	s.guard.creds.Store(newCredentials(token))
	return nil
}

// tokenNeeded refuses to serve (verb) on addr without a token unless addr
// is loopback: anyone who can reach the API could close connections and
// reload the config. A token of spaces is none, as the guard reads it.
func tokenNeeded(verb, addr, token string) error {
	if strings.TrimSpace(token) == "" && !loopbackHost(addr) {
		return fmt.Errorf("admin: %s %s: not a loopback address, and no admin_token is set", verb, addr)
	}
	return nil
}

// Shutdown stops accepting, lets requests in flight finish until ctx ends,
// then closes what is left. It returns once the server has stopped, with
// the error that stopped it early, if any.
func (s *Server) Shutdown(ctx context.Context) error {
	s.hist.stopSampling()
	err := s.http.Shutdown(ctx)
	if err != nil {
		s.http.Close()
	}
	<-s.done
	if s.err != nil {
		return s.err
	}
	if err != nil {
		return fmt.Errorf("admin: shutdown on %s: %w", s.ln.Addr(), err)
	}
	return nil
}

// loopbackHost reports whether a "host:port" address names only loopback:
// localhost or a loopback IP. An empty host means every address.
func loopbackHost(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
