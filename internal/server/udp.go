package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"

	"sluice/internal/config"
	"sluice/internal/udp"
)

// udpSide is a rule's UDP side: its socket and session service.
type udpSide struct {
	sock *udp.Socket
	svc  *udp.Service  // nil until start
	done chan struct{} // closed when the service's Serve has returned
}

// bindUDP opens a rule's UDP socket without serving it yet. It takes the
// socket handed over by the process it replaces (hitless upgrade) when there
// is one, a duplicate of the socket of the running rule that a reload moves
// the address from (sharedPacketConn), or binds a new one.
func bindUDP(s *Server, rc config.Rule) (*udpSide, error) {
	pc := inheritedPacketConn(s.inherited, rc.Listen)
	if pc == nil {
		var err error
		pc, err = net.ListenPacket("udp", rc.Listen.DialAddress())
		if err != nil && errors.Is(err, syscall.EADDRINUSE) {
			pc = s.sharedPacketConn(rc.Listen)
		}
		if pc == nil {
			return nil, bareError(err)
		}
	}
	c, ok := pc.(*net.UDPConn)
	if !ok {
		pc.Close()
		return nil, fmt.Errorf("inherited socket for %s is not a UDP socket", rc.Listen)
	}
	sock, err := udp.NewSocket(c)
	if err != nil {
		return nil, err
	}
	return &udpSide{sock: sock}, nil
}

// sharedPacketConn returns a duplicate of the UDP socket that a running rule
// has on addr, or nil: the UDP counterpart of sharedListener. Until the
// reload applies, only the running rule reads from it; then that rule stops
// reading (its live sessions still send their replies through the socket
// until they drain) and the rule taking it over reads every datagram that
// comes, those of the giving rule's clients included, which start sessions
// of their own there.
func (s *Server) sharedPacketConn(addr config.Address) net.PacketConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rules {
		if r.cfg.Listen != addr || r.udp == nil {
			continue
		}
		f, err := r.udp.sock.File()
		if err != nil {
			return nil
		}
		return filePacketConn(f)
	}
	return nil
}

// udpRule is the UDP side's view of the rule.
func udpRule(r *rule) *udp.Rule {
	rc := r.cfg
	return &udp.Rule{
		Name: rc.Name, Pool: r.pool, Gate: r.gate, Metrics: r.metrics,
		SessionTimeout: rc.UDPSessionTimeout, MaxSessions: rc.MaxSessions,
		ConnectTimeout: rc.ConnectTimeout, DrainTimeout: rc.DrainTimeout,
	}
}

// start serves the bound socket.
func (u *udpSide) start(s *Server, r *rule, logger *slog.Logger) {
	u.svc = udp.NewService(udpRule(r), udp.Deps{Logger: s.logger, IDs: &s.ids, Table: r.table})
	u.done = make(chan struct{})
	go func() {
		defer close(u.done)
		if err := u.svc.Serve(u.sock); err != nil {
			logger.Error("udp forwarding stopped", "listen", r.cfg.Listen.String(), "error", err.Error())
		}
	}()
}

// update applies a reloaded rule (r.cfg, r.pool, r.gate are already the new
// ones) to sessions created from now on.
func (u *udpSide) update(r *rule) {
	if u.svc != nil {
		u.svc.Update(udpRule(r))
	}
}

// closeListener stops receiving datagrams. The socket of a started side
// stays open for the replies of live sessions until drain.
func (u *udpSide) closeListener() {
	if u.svc == nil {
		u.sock.Close()
		return
	}
	u.svc.StopReading()
}

// drain ends the live sessions, gracefully for up to the rule's
// drain_timeout, and closes the socket.
func (u *udpSide) drain(r *rule) {
	if u.svc != nil {
		u.svc.Drain()
		<-u.done
	}
	u.sock.Close()
}

// packetConn returns the rule's UDP socket, for a hitless upgrade to hand
// over (its File method duplicates it); nil when the rule has none.
func (u *udpSide) packetConn() *udp.Socket {
	if u == nil {
		return nil
	}
	return u.sock
}
