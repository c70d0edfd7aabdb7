// Package proxyproto encodes and strictly parses PROXY protocol headers,
// version 1 (one line of text) and version 2 (binary), as HAProxy's
// doc/proxy-protocol.txt specifies them.
//
// ReadHeader reads one header from a connection and never reads a byte past
// its end, so whatever follows can be relayed untouched. It reads straight
// from the connection, without a user-space buffer, and honours whatever
// deadline the caller set on it.
//
// AppendV1 and AppendV2 write the header a sender puts in front of a relayed
// connection.
//
// The package imports only the standard library.
package proxyproto

import (
	"net/netip"
	"strconv"
)

// Command says whether a header carries the endpoints of a relayed
// connection. Its values are the command nibble of a version 2 header.
type Command uint8

// The commands of the PROXY protocol.
const (
	// Local means the sender opened the connection on its own behalf (a
	// health check, say): the receiver uses the connection's real endpoints.
	Local Command = 0x0
	// Proxy means the connection is relayed on behalf of a client, whose
	// endpoints the header carries.
	Proxy Command = 0x1
)

// String returns "LOCAL" or "PROXY".
func (c Command) String() string {
	switch c {
	case Local:
		return "LOCAL"
	case Proxy:
		return "PROXY"
	}
	return "Command(" + strconv.Itoa(int(c)) + ")"
}

// Transport is the transport protocol of the relayed connection. Its values
// are the transport nibble of a version 2 header.
type Transport uint8

// The transports a header can name.
const (
	// Unspec means the header carries no usable addresses: a LOCAL header,
	// a version 1 "UNKNOWN" line, a version 2 UNSPEC block, or an AF_UNIX
	// block (which this package treats as UNSPEC, as the specification
	// allows).
	Unspec Transport = 0x0
	// TCP is TCP over IPv4 or IPv6 (SOCK_STREAM).
	TCP Transport = 0x1
	// UDP is UDP over IPv4 or IPv6 (SOCK_DGRAM).
	UDP Transport = 0x2
)

// String returns "UNSPEC", "TCP" or "UDP".
func (t Transport) String() string {
	switch t {
	case Unspec:
		return "UNSPEC"
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	}
	return "Transport(" + strconv.Itoa(int(t)) + ")"
}

// Header is one PROXY protocol header.
//
// The zero Header is a LOCAL header: it carries no addresses.
//
// A Header returned by ReadHeader is canonical: Transport is TCP or UDP
// exactly when both addresses are set; when both addresses are IPv4 (or
// IPv4-mapped IPv6, as a dual-stack sender may write them) both are plain
// IPv4; otherwise both are IPv6, an IPv4 address among them mapped.
type Header struct {
	// Version is 1 or 2: the format ReadHeader parsed. AppendV1 and
	// AppendV2 ignore it.
	Version int
	// Command is Local or Proxy. Any other value is encoded as Local.
	Command Command
	// Transport is TCP, UDP or Unspec. With Unspec the addresses are
	// ignored when encoding and zero when parsed.
	Transport Transport
	// Source is the client's address and port: the peer of the relayed
	// connection. Zero when the header carries no addresses.
	Source netip.AddrPort
	// Destination is the address and port the client connected to. Zero
	// when the header carries no addresses.
	Destination netip.AddrPort
}

// Endpoints returns the relayed connection's source and destination. It
// reports ok == false when the header carries none (LOCAL, UNSPEC, UNKNOWN,
// AF_UNIX): the receiver then uses the connection's real endpoints.
func (h Header) Endpoints() (src, dst netip.AddrPort, ok bool) {
	if h.Command != Proxy || (h.Transport != TCP && h.Transport != UDP) ||
		!h.Source.IsValid() || !h.Destination.IsValid() {
		return netip.AddrPort{}, netip.AddrPort{}, false
	}
	return h.Source, h.Destination, true
}

// Error is a malformed header: the reason it was rejected. ReadHeader returns
// it (as *Error) for every header that breaks the specification; errors from
// the connection itself (a deadline, a reset, a close before the header was
// complete) are returned wrapped instead, so errors.Is works on them.
type Error struct {
	// Version is the version whose rules the header broke: 1 or 2, or 0
	// when the bytes are not a PROXY protocol header at all.
	Version int
	// Reason says what is wrong, e.g. `source port "080" has a leading zero`.
	Reason string
}

// Error returns "proxy protocol: v1: " followed by the reason.
func (e *Error) Error() string {
	if e.Version == 0 {
		return "proxy protocol: " + e.Reason
	}
	return "proxy protocol: v" + strconv.Itoa(e.Version) + ": " + e.Reason
}

// wireAddrs returns src and dst as the one address family a header carries
// them in: IPv4 when both are IPv4 or IPv4-mapped IPv6, otherwise IPv6 with an
// IPv4 address mapped. Zones are dropped: a header has no room for them. It
// reports ok == false when either address is missing.
func wireAddrs(src, dst netip.AddrPort) (s, d netip.AddrPort, is4, ok bool) {
	if !src.IsValid() || !dst.IsValid() {
		return netip.AddrPort{}, netip.AddrPort{}, false, false
	}
	sa, da := src.Addr().WithZone("").Unmap(), dst.Addr().WithZone("").Unmap()
	if !sa.Is4() || !da.Is4() {
		sa, da = netip.AddrFrom16(sa.As16()), netip.AddrFrom16(da.As16())
	}
	return netip.AddrPortFrom(sa, src.Port()), netip.AddrPortFrom(da, dst.Port()), sa.Is4(), true
}
