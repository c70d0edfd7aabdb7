package rawsock

import "net/netip"

// Origin is how a socket towards a backend is set up before it connects:
// where it comes from (the source key) and how it is marked (the mark
// key). The zero value sets nothing up.
type Origin struct {
	// Local is the address the socket is bound to; invalid: none (the
	// kernel picks one when it connects). With port 0 the port is left to
	// the connect too (IP_BIND_ADDRESS_NO_PORT), so that one local address
	// serves as many connections as there are distinct destinations, not
	// only as many as there are free local ports.
	Local netip.AddrPort
	// Transparent lets Local be an address this host does not have
	// (IP_TRANSPARENT, IPV6_TRANSPARENT), such as a client's. It needs
	// CAP_NET_ADMIN (or CAP_NET_RAW).
	Transparent bool
	// Mark is the socket's firewall mark (SO_MARK), which policy routing
	// and netfilter can match; 0: none. It needs CAP_NET_ADMIN (or
	// CAP_NET_RAW).
	Mark uint32
}
