package proxyproto

import (
	"encoding/binary"
	"strconv"
)

// v1UnknownLine is the short form of a version 1 header without addresses.
const v1UnknownLine = "PROXY UNKNOWN\r\n"

// AppendV1 appends h as a version 1 (text) header to b and returns the
// extended slice.
//
// Version 1 can only carry TCP endpoints. When both addresses are IPv4 (or
// IPv4-mapped IPv6) it writes a TCP4 line with plain IPv4 addresses;
// otherwise, as HAProxy does, a TCP6 line in which an IPv4 address is written
// mapped ("::ffff:192.0.2.1"). It writes "PROXY UNKNOWN\r\n" when h carries no
// TCP endpoints: a LOCAL command (version 1 has none; receivers treat UNKNOWN
// the same way), a UDP or Unspec transport, or a missing address.
func (h Header) AppendV1(b []byte) []byte {
	if h.Command != Proxy || h.Transport != TCP {
		return append(b, v1UnknownLine...)
	}
	src, dst, is4, ok := wireAddrs(h.Source, h.Destination)
	if !ok {
		return append(b, v1UnknownLine...)
	}
	if is4 {
		b = append(b, "PROXY TCP4 "...)
	} else {
		b = append(b, "PROXY TCP6 "...)
	}
	b = src.Addr().AppendTo(b)
	b = append(b, ' ')
	b = dst.Addr().AppendTo(b)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(src.Port()), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(dst.Port()), 10)
	return append(b, '\r', '\n')
}

// AppendV2 appends h as a version 2 (binary) header to b and returns the
// extended slice. It writes no TLVs.
//
// When both addresses are IPv4 (or IPv4-mapped IPv6) it writes an AF_INET
// block; otherwise an AF_INET6 block, an IPv4 address mapped. A LOCAL header
// (or any Command other than Proxy) is written with the UNSPEC family and no
// address block, as the specification asks; so is a PROXY header whose
// transport is Unspec or which lacks an address.
func (h Header) AppendV2(b []byte) []byte {
	b = append(b, v2Signature...)
	if h.Command != Proxy {
		return append(b, v2Version<<4|byte(Local), 0x00, 0, 0)
	}
	src, dst, is4, ok := wireAddrs(h.Source, h.Destination)
	if !ok || (h.Transport != TCP && h.Transport != UDP) {
		return append(b, v2Version<<4|byte(Proxy), 0x00, 0, 0)
	}
	b = append(b, v2Version<<4|byte(Proxy))
	if is4 {
		b = append(b, familyInet<<4|byte(h.Transport))
		b = binary.BigEndian.AppendUint16(b, v2Inet4Len)
	} else {
		b = append(b, familyInet6<<4|byte(h.Transport))
		b = binary.BigEndian.AppendUint16(b, v2Inet6Len)
	}
	b = append(b, src.Addr().AsSlice()...)
	b = append(b, dst.Addr().AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}

// V1Prefix and V2Signature are how a PROXY header of version 1 and 2
// starts, for those who only need to recognise one (see internal/sniff).
const (
	V1Prefix    = v1Prefix
	V2Signature = v2Signature
)
