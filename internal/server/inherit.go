package server

import (
	"fmt"
	"net"
	"os"

	"sluice/internal/config"
	"sluice/internal/handover"
)

// inheritKey names a rule's socket in a hand-over by kind and the address
// as configured, of one port: each port of a range has a socket (TCP) or a
// group (UDP) of its own, named by the port's address.
func inheritKey(kind handover.Kind, addr config.Address) string {
	if addr.Network == "unix" {
		return handover.Key(handover.Unix, addr.Path)
	}
	return handover.Key(kind, addr.String())
}

// inheritedListener returns the inherited TCP or unix listener for addr,
// or nil.
func inheritedListener(in *handover.Inherited, addr config.Address) net.Listener {
	return fileListener(in.Take(inheritKey(handover.TCP, addr)))
}

// ListenAdmin returns the admin API's listener on addr: the one in inherited
// (from the process this one replaces), or a new one. Errors are the bare
// cause, e.g. "address already in use".
func ListenAdmin(inherited *handover.Inherited, addr string) (net.Listener, error) {
	if ln := fileListener(inherited.Take(handover.Key(handover.Admin, addr))); ln != nil {
		return ln, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, bareError(err)
	}
	return ln, nil
}

// fileListener returns a listener on the socket of f (nil if f is nil or
// not a listening socket) and closes f, which the listener duplicated.
func fileListener(f *os.File) net.Listener {
	if f == nil {
		return nil
	}
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil
	}
	return ln
}

// inheritedPacketConns returns the inherited group of UDP sockets for addr
// (see handover.MemberKey), or nil. A member that is not a socket is left
// out.
func inheritedPacketConns(in *handover.Inherited, addr config.Address) []net.PacketConn {
	var pcs []net.PacketConn
	for _, f := range in.TakeGroup(inheritKey(handover.UDP, addr)) {
		if pc := filePacketConn(f); pc != nil {
			pcs = append(pcs, pc)
		}
	}
	return pcs
}

// filePacketConn is fileListener for a datagram socket.
func filePacketConn(f *os.File) net.PacketConn {
	if f == nil {
		return nil
	}
	defer f.Close()
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil
	}
	return pc
}

// closeUnusedInherited closes the inherited sockets no rule took, e.g. of
// rules the new config no longer has.
func (s *Server) closeUnusedInherited() {
	for _, key := range s.inherited.CloseUnused() {
		s.logger.Info("inherited socket not used by any rule: closing", "socket", key)
	}
}

// ListenerFiles returns duplicates of every listening socket, for a new
// process to inherit (see handover.Start). adminLn, if not nil, is the
// admin API's listener on adminAddr. The caller closes the files once the
// new process has started.
func (s *Server) ListenerFiles(adminAddr string, adminLn net.Listener) ([]handover.Socket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var socks []handover.Socket
	add := func(key string, c any) error {
		fc, ok := c.(interface{ File() (*os.File, error) })
		if !ok {
			return nil
		}
		f, err := fc.File()
		if err != nil {
			closeAll(socks)
			return fmt.Errorf("%s: %w", key, err)
		}
		socks = append(socks, handover.Socket{Key: key, File: f})
		return nil
	}
	if err := add(handover.Key(handover.Admin, adminAddr), adminLn); err != nil {
		return nil, err
	}
	for _, r := range s.rules {
		for _, ln := range r.lns {
			if err := add(inheritKey(handover.TCP, portAddress(r.cfg.Listen, portOf(ln.Addr()))), ln); err != nil {
				return nil, err
			}
		}
		for _, u := range r.udp {
			for i, sock := range u.sockets() {
				if err := add(handover.MemberKey(inheritKey(handover.UDP, u.addr), i), sock); err != nil {
					return nil, err
				}
			}
		}
	}
	return socks, nil
}

// KeepUnixSockets stops the unix listeners from removing their socket files
// when they close, because a new process now serves on them.
func (s *Server) KeepUnixSockets() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rules {
		for _, ln := range r.lns {
			if ul, ok := ln.(*net.UnixListener); ok {
				ul.SetUnlinkOnClose(false)
			}
		}
	}
}

// closeAll closes the files of socks.
func closeAll(socks []handover.Socket) {
	for _, s := range socks {
		s.File.Close()
	}
}
