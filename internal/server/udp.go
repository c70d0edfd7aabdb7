package server

import (
	"errors"
	"log/slog"
	"net"

	"sluice/internal/config"
)

// udpSide is a rule's UDP side: its socket and session service.
type udpSide struct{}

// bindUDP opens a rule's UDP socket without serving it yet. It takes the
// socket from s.inheritedPacketConn(rc.Listen) when the process was started
// by a hitless upgrade, and binds a new one otherwise.
func bindUDP(s *Server, rc config.Rule) (*udpSide, error) {
	return nil, errors.New("UDP forwarding is not available yet")
}

// start serves the bound socket.
func (u *udpSide) start(s *Server, r *rule, logger *slog.Logger) {}

// update applies a reloaded rule (r.cfg, r.pool, r.gate are already the new
// ones) to sessions created from now on.
func (u *udpSide) update(r *rule) {}

// closeListener stops receiving new datagrams from new clients.
func (u *udpSide) closeListener() {}

// drain ends the live sessions, gracefully for up to the rule's drain_timeout.
func (u *udpSide) drain(r *rule) {}

// packetConn returns the rule's UDP socket, for a hitless upgrade to hand
// over; nil when the rule has none.
func (u *udpSide) packetConn() *net.UDPConn { return nil }
