package server

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"

	"sluice/internal/config"
)

// The environment that carries listening sockets from a process to the
// binary that replaces it (hitless upgrade). InheritEnv lists the sockets,
// "tcp@:8080;udp@:5353;unix@/run/x.sock", which are file descriptors 3, 4,
// 5 and so on in that order; ReadyEnv names the descriptor on which the new
// process says it is serving.
const (
	InheritEnv = "SLUICE_INHERIT"
	ReadyEnv   = "SLUICE_READY_FD"
)

// Inherited are listening sockets handed over by a previous process, by
// listen address. A nil *Inherited holds none.
type Inherited struct {
	files map[string]*os.File
}

// inheritKey names a socket by kind and the address as configured.
func inheritKey(kind string, addr config.Address) string {
	if addr.Network == "unix" {
		return "unix@" + addr.Path
	}
	return kind + "@" + addr.String()
}

// InheritedFromEnv takes the sockets a previous process passed in the
// environment, or returns nil when there are none.
func InheritedFromEnv() *Inherited {
	list := os.Getenv(InheritEnv)
	os.Unsetenv(InheritEnv)
	if list == "" {
		return nil
	}
	in := &Inherited{files: make(map[string]*os.File)}
	for i, key := range strings.Split(list, ";") {
		fd := 3 + i
		in.files[key] = os.NewFile(uintptr(fd), key)
	}
	return in
}

// listener returns the inherited TCP or unix listener for addr, or nil.
func (in *Inherited) listener(addr config.Address) net.Listener {
	return in.takeListener(inheritKey("tcp", addr))
}

// ListenAdmin returns the admin API's listener on addr: the one inherited
// from the process this one replaces, or a new one. Errors are the bare
// cause, e.g. "address already in use".
func (in *Inherited) ListenAdmin(addr string) (net.Listener, error) {
	if ln := in.takeListener("admin@" + addr); ln != nil {
		return ln, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, bareError(err)
	}
	return ln, nil
}

// takeListener takes the inherited listening socket named key, or nil.
func (in *Inherited) takeListener(key string) net.Listener {
	return fileListener(in.take(key))
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

// packetConn returns the inherited UDP socket for addr, or nil.
func (in *Inherited) packetConn(addr config.Address) net.PacketConn {
	return filePacketConn(in.take(inheritKey("udp", addr)))
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

// take removes and returns the file for key.
func (in *Inherited) take(key string) *os.File {
	if in == nil {
		return nil
	}
	f := in.files[key]
	delete(in.files, key)
	return f
}

// closeUnused closes the inherited sockets no rule took, e.g. of rules the
// new config no longer has.
func (in *Inherited) closeUnused(logger *slog.Logger) {
	if in == nil {
		return
	}
	for key, f := range in.files {
		logger.Info("inherited socket not used by any rule: closing", "socket", key)
		f.Close()
		delete(in.files, key)
	}
}

// ListenerFiles returns duplicates of every listening socket, for a new
// process to inherit, with the value for InheritEnv that names them in order.
// adminLn, if not nil, is the admin API's listener on adminAddr. The caller
// closes the files once the new process has started.
func (s *Server) ListenerFiles(adminAddr string, adminLn net.Listener) ([]*os.File, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var files []*os.File
	var keys []string
	add := func(key string, c interface{ File() (*os.File, error) }) error {
		f, err := c.File()
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		files = append(files, f)
		keys = append(keys, key)
		return nil
	}
	if c, ok := adminLn.(interface{ File() (*os.File, error) }); ok {
		if err := add("admin@"+adminAddr, c); err != nil {
			return nil, "", err
		}
	}
	for _, r := range s.rules {
		for _, ln := range r.lns {
			c, ok := ln.(interface{ File() (*os.File, error) })
			if !ok {
				continue
			}
			if err := add(inheritKey("tcp", r.cfg.Listen), c); err != nil {
				closeAll(files)
				return nil, "", err
			}
		}
		if pc := r.udp.packetConn(); pc != nil {
			if err := add(inheritKey("udp", r.cfg.Listen), pc); err != nil {
				closeAll(files)
				return nil, "", err
			}
		}
	}
	return files, strings.Join(keys, ";"), nil
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

// ReadyFile returns the descriptor on which to tell the parent process that
// this one is serving, or nil when not started by an upgrade.
func ReadyFile() *os.File {
	v := os.Getenv(ReadyEnv)
	os.Unsetenv(ReadyEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil
	}
	return os.NewFile(uintptr(fd), "ready")
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
