package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"syscall"

	"sluice/internal/config"
	"sluice/internal/udp"
)

// udpSide is a rule's UDP side on one port: its sockets and session
// service. On Linux a rule of one port with workers > 1 has a group of
// sockets bound to the port with SO_REUSEPORT, each read by an event loop
// of its own (see udp.Listen); the group keeps its size for as long as the
// rule keeps the port, across reloads and upgrades. A rule of a range of
// ports has a side per port, of one socket each, whose sessions count
// against the rule's max_sessions together (rule.sessions) and whose
// sockets the rule's workers event loops read (udp.Ports): a port costs
// its socket, not workers loops with their descriptors and goroutines.
type udpSide struct {
	addr  config.Address // of one port
	socks []*udp.Socket
	svc   *udp.Service  // nil until start
	done  chan struct{} // closed when the service's Serve has returned
}

// bindUDP opens a rule's UDP sockets on addr, one port of its listen
// address, without serving them yet. It takes the group handed over by the
// process it replaces (hitless upgrade) when there is one, duplicates of
// the group of the running rule that a reload moves the port from
// (sharedPacketConns), or binds a new group of rc.Workers sockets.
func bindUDP(s *Server, rc config.Rule, addr config.Address) (*udpSide, error) {
	pcs := inheritedPacketConns(s.inherited, addr)
	if pcs == nil {
		socks, err := udp.Listen(addr.DialAddress(), udpGroup(rc))
		if err == nil {
			return &udpSide{addr: addr, socks: socks}, nil
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			pcs = s.sharedPacketConns(addr)
		}
		if pcs == nil {
			return nil, bareError(err)
		}
	}
	u := &udpSide{addr: addr}
	for i, pc := range pcs {
		sock, err := adoptUDP(pc, addr)
		if err != nil {
			for _, pc := range pcs[i+1:] {
				pc.Close()
			}
			u.closeSockets()
			return nil, err
		}
		u.socks = append(u.socks, sock)
	}
	if n := udp.GroupSize(udpGroup(rc)); n != len(u.socks) {
		s.logger.Info("udp sockets kept: workers applies when the address is bound anew",
			"rule", rc.Name, "listen", addr.String(), "sockets", len(u.socks), "workers", rc.Workers)
	}
	return u, nil
}

// udpGroup returns how many sockets a port of rc's listen address is
// bound with: workers for an address of one port, one for each port of a
// range (the rule's loops are shared by its ports).
func udpGroup(rc config.Rule) int {
	if rc.Listen.Ranged() {
		return 1
	}
	return rc.Workers
}

// adoptUDP makes a socket of the group from pc, an inherited or shared
// socket.
func adoptUDP(pc net.PacketConn, addr config.Address) (*udp.Socket, error) {
	c, ok := pc.(*net.UDPConn)
	if !ok {
		pc.Close()
		return nil, fmt.Errorf("inherited socket for %s is not a UDP socket", addr)
	}
	return udp.NewSocket(c)
}

// sharedPacketConns returns duplicates of the UDP sockets that a running
// rule has on addr (of one port), or nil: the UDP counterpart of
// sharedListener. Until
// the reload applies, only the running rule reads from them; then that rule
// stops reading (its live sessions still send their replies through the
// sockets until they drain) and the rule taking them over reads every
// datagram that comes, those of the giving rule's clients included, which
// start sessions of their own there. Every socket of the group moves: one
// left unread would lose the datagrams the kernel hashes to it.
func (s *Server) sharedPacketConns(addr config.Address) []net.PacketConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rules {
		i := slices.IndexFunc(r.udp, func(u *udpSide) bool { return u.addr == addr })
		if i < 0 {
			continue
		}
		var pcs []net.PacketConn
		for _, sock := range r.udp[i].socks {
			f, err := sock.File()
			pc := filePacketConn(f)
			if err != nil || pc == nil {
				for _, pc := range pcs {
					pc.Close()
				}
				return nil
			}
			pcs = append(pcs, pc)
		}
		return pcs
	}
	return nil
}

// udpRule is the view of the rule of its UDP side on port: the port's
// place in a range says which port of a backend's range its sessions go to.
func udpRule(r *rule, port uint16) *udp.Rule {
	rc := r.cfg
	ur := &udp.Rule{
		Name: rc.Name, Pool: r.pool, Gate: r.gate, Metrics: r.metrics,
		SessionTimeout: rc.UDPSessionTimeout, MaxSessions: rc.MaxSessions,
		ConnectTimeout: rc.ConnectTimeout, DrainTimeout: rc.DrainTimeout,
	}
	if rc.Listen.Ranged() && rc.Listen.Contains(port) {
		ur.Port, ur.Index = port, port-rc.Listen.Port
	}
	return ur
}

// start serves the bound sockets. The port of a range shares the rule's
// event loops and sweeper with the rule's other ports, and no goroutine
// waits for it.
func (u *udpSide) start(s *Server, r *rule, logger *slog.Logger) {
	deps := udp.Deps{Logger: s.logger, AccessLogger: s.access, IDs: &s.ids, Table: r.table, Sessions: &r.sessions}
	if r.cfg.Listen.Ranged() {
		if r.udpPorts == nil {
			r.udpPorts = udp.NewPorts(r.cfg.Workers)
		}
		deps.Ports = r.udpPorts
	}
	u.svc = udp.NewService(udpRule(r, u.addr.Port), deps)
	u.done = make(chan struct{})
	u.svc.Start(func(err error) {
		if err != nil {
			logger.Error("udp forwarding stopped", "listen", u.addr.String(), "error", err.Error())
		}
		close(u.done)
	}, u.socks...)
}

// update applies a reloaded rule (r.cfg, r.pool, r.gate are already the new
// ones) to sessions created from now on.
func (u *udpSide) update(r *rule) {
	if u.svc != nil {
		u.svc.Update(udpRule(r, u.addr.Port))
	}
}

// closeListener stops receiving datagrams. The socket of a started side
// stays open for the replies of live sessions until drain.
func (u *udpSide) closeListener() {
	if u.svc == nil {
		u.closeSockets()
		return
	}
	u.svc.StopReading()
}

// drain ends the live sessions, gracefully for up to the rule's
// drain_timeout, and closes the socket.
func (u *udpSide) drain() {
	if u.svc != nil {
		u.svc.Drain()
		<-u.done
	}
	u.closeSockets()
}

// closeSockets closes the side's sockets.
func (u *udpSide) closeSockets() {
	for _, sock := range u.socks {
		sock.Close()
	}
}

// sockets returns the side's UDP sockets, for a hitless upgrade to hand
// over (their File method duplicates them).
func (u *udpSide) sockets() []*udp.Socket { return u.socks }
