package proxyproto

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net/netip"
)

// A version 2 header is a 16-byte fixed part: the 12-byte signature, a byte
// of version and command, a byte of address family and transport, and the
// big-endian length of what follows: the address block, then TLVs.
const (
	v2Signature = "\r\n\r\n\x00\r\nQUIT\n"
	v2FixedLen  = 16
	v2Version   = 0x2

	familyUnspec = 0x0
	familyInet   = 0x1
	familyInet6  = 0x2
	familyUnix   = 0x3

	v2Inet4Len = 2*4 + 2*2
	v2Inet6Len = 2*16 + 2*2
	v2UnixLen  = 2 * 108

	tlvHeaderLen = 3
	tlvCRC32C    = 0x03
	crc32cLen    = 4
)

// v2Errorf returns an *Error for version 2.
func v2Errorf(format string, args ...any) error {
	return &Error{Version: 2, Reason: fmt.Sprintf(format, args...)}
}

// scanV2 is scan for bytes that start with the first byte of the version 2
// signature.
func scanV2(b []byte) (Header, int, error) {
	if n := min(len(b), len(v2Signature)); string(b[:n]) != v2Signature[:n] {
		return Header{}, 0, notProxy()
	}
	if len(b) > 12 {
		if v := b[12] >> 4; v != v2Version {
			return Header{}, 0, v2Errorf("unsupported version %d", v)
		}
		if c := Command(b[12] & 0xf); c != Local && c != Proxy {
			return Header{}, 0, v2Errorf("unknown command %#x", byte(c))
		}
	}
	local := len(b) > 12 && Command(b[12]&0xf) == Local
	if len(b) > 13 && !local {
		if f := b[13] >> 4; f > familyUnix {
			return Header{}, 0, v2Errorf("unknown address family %#x", f)
		}
		if t := Transport(b[13] & 0xf); t > UDP {
			return Header{}, 0, v2Errorf("unknown transport protocol %#x", byte(t))
		}
	}
	if len(b) < v2FixedLen {
		return Header{}, v2FixedLen - len(b), nil
	}
	length := int(binary.BigEndian.Uint16(b[14:16]))
	if addrLen := v2AddrLen(b[13]); !local && length < addrLen {
		return Header{}, 0, v2Errorf("length %d is shorter than the %d-byte address block of family/transport %#02x",
			length, addrLen, b[13])
	}
	if total := v2FixedLen + length; len(b) < total {
		return Header{}, total - len(b), nil
	}
	return parseV2(b)
}

// v2AddrLen is the length of the address block a family/transport byte
// announces: zero when either half is unspecified.
func v2AddrLen(famTransport byte) int {
	if Transport(famTransport&0xf) == Unspec {
		return 0
	}
	switch famTransport >> 4 {
	case familyInet:
		return v2Inet4Len
	case familyInet6:
		return v2Inet6Len
	case familyUnix:
		return v2UnixLen
	}
	return 0
}

// parseV2 parses a complete version 2 header whose fixed part scanV2 has
// checked.
//
// A LOCAL header's block is skipped whatever its family says, as the
// specification asks; so is the block of a PROXY header whose family or
// transport is UNSPEC, since its layout is unknown. Otherwise the TLVs after
// the addresses are checked: each must fit in the header, and a CRC32C TLV
// must hold the header's checksum.
func parseV2(b []byte) (Header, int, error) {
	if Command(b[12]&0xf) == Local {
		return Header{Version: 2, Command: Local}, 0, nil
	}
	h := Header{Version: 2, Command: Proxy}
	addrLen := v2AddrLen(b[13])
	if addrLen == 0 {
		return h, 0, nil
	}
	if err := checkTLVs(b, v2FixedLen+addrLen); err != nil {
		return Header{}, 0, err
	}
	block := b[v2FixedLen : v2FixedLen+addrLen]
	var src, dst netip.Addr
	switch b[13] >> 4 {
	case familyInet:
		src, dst = netip.AddrFrom4([4]byte(block[0:4])), netip.AddrFrom4([4]byte(block[4:8]))
	case familyInet6:
		src, dst = netip.AddrFrom16([16]byte(block[0:16])), netip.AddrFrom16([16]byte(block[16:32]))
	default: // AF_UNIX: carried as UNSPEC, the fallback the specification allows.
		return h, 0, nil
	}
	ports := block[len(block)-4:]
	h.Transport = Transport(b[13] & 0xf)
	h.Source, h.Destination, _, _ = wireAddrs(
		netip.AddrPortFrom(src, binary.BigEndian.Uint16(ports[0:2])),
		netip.AddrPortFrom(dst, binary.BigEndian.Uint16(ports[2:4])))
	return h, 0, nil
}

// checkTLVs walks the TLVs of header b from offset off to its end.
func checkTLVs(b []byte, off int) error {
	for off < len(b) {
		if len(b)-off < tlvHeaderLen {
			return v2Errorf("TLV at offset %d is truncated: %d bytes left, a TLV takes at least %d",
				off, len(b)-off, tlvHeaderLen)
		}
		typ, n := b[off], int(binary.BigEndian.Uint16(b[off+1:off+3]))
		value := off + tlvHeaderLen
		if n > len(b)-value {
			return v2Errorf("TLV %#02x at offset %d has length %d, but only %d bytes are left",
				typ, off, n, len(b)-value)
		}
		if typ == tlvCRC32C {
			if err := checkCRC32C(b, value, n); err != nil {
				return err
			}
		}
		off = value + n
	}
	return nil
}

// checkCRC32C checks a CRC32C TLV whose n-byte value starts at b[value]: the
// checksum of the whole header with that value zeroed.
func checkCRC32C(b []byte, value, n int) error {
	if n != crc32cLen {
		return v2Errorf("CRC32C TLV has length %d, want %d", n, crc32cLen)
	}
	want := binary.BigEndian.Uint32(b[value : value+crc32cLen])
	table := crc32.MakeTable(crc32.Castagnoli)
	sum := crc32.Update(0, table, b[:value])
	sum = crc32.Update(sum, table, make([]byte, crc32cLen))
	sum = crc32.Update(sum, table, b[value+crc32cLen:])
	if sum != want {
		return v2Errorf("CRC32C checksum is %#08x, the header sums to %#08x", want, sum)
	}
	return nil
}
