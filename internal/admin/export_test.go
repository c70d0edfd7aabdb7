package admin

import (
	"fmt"
	"net"
)

// Functions and methods for tests only.

// Listen binds addr ("host:port") and serves the admin handler of o on it
// until Shutdown. Without a token it refuses an address that is not
// loopback (localhost, 127.0.0.0/8 or ::1), since anyone who can reach the
// API could close connections and reload the config.
func Listen(addr string, o Options) (*Server, error) {
	if err := tokenNeeded("listen", addr, o.Token); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	return Serve(ln, o)
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }
