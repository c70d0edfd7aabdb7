package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/netip"
	"strings"
	"testing"
	"testing/iotest"
)

// errStalled stands for a peer that has sent everything it will send for
// now: a parser that asks for more is waiting on a header it should already
// have accepted or rejected.
var errStalled = errors.New("stalled: no more bytes for now")

// readers returns the ways a test feeds data to ReadHeader: all at once, one
// byte per read, half of each request per read, and all at once with the
// last bytes coming with the error. After data, every reader returns
// errStalled.
func readers(data []byte) map[string]io.Reader {
	stall := func() io.Reader { return io.MultiReader(bytes.NewReader(data), iotest.ErrReader(errStalled)) }
	return map[string]io.Reader{
		"whole":    stall(),
		"one-byte": iotest.OneByteReader(stall()),
		"half":     iotest.HalfReader(stall()),
		"data-err": iotest.DataErrReader(stall()),
	}
}

// withCRC32C fills the value of the CRC32C TLV that starts at b[off] with the
// checksum of header b.
func withCRC32C(b []byte, off int) []byte {
	b = bytes.Clone(b)
	value := b[off+tlvHeaderLen : off+tlvHeaderLen+crc32cLen]
	clear(value)
	binary.BigEndian.PutUint32(value, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
	return b
}

var (
	ipv4Block = []byte{192, 0, 2, 1, 198, 51, 100, 7, 0x30, 0x39, 0x00, 0x50} // 192.0.2.1:12345 -> 198.51.100.7:80
	crcTLV    = tlv(tlvCRC32C, []byte{0, 0, 0, 0})
)

// malformed is a header ReadHeader must reject, and the reason it must
// give.
type malformed struct {
	in      string
	version int
	reason  string
}

// malformedHeaders returns the headers TestReadHeaderRejects feeds in.
func malformedHeaders() []malformed {
	long := "PROXY UNKNOWN " + strings.Repeat("x", 100) + "\r\n"
	badCRC := withCRC32C(v2Bytes(0x21, 0x11, ipv4Block, crcTLV), 28)
	badCRC[20] ^= 1 // a destination address bit flipped after the checksum was taken
	return []malformed{
		// Neither version.
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0, "not a PROXY protocol header"},
		{"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 0, "not a PROXY protocol header"},
		{"PROXZ TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 0, "not a PROXY protocol header"},
		{"PROXY\r\n\r\n\r\n\r\n", 0, "not a PROXY protocol header"},
		{"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 0, "not a PROXY protocol header"},
		{"\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x0c", 0, "not a PROXY protocol header"},
		{"\r\n\r\nGET / HTTP/1.0\r\n", 0, "not a PROXY protocol header"},
		// Version 1: the protocol word.
		{"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", 1, `unknown protocol "TCP5"`},
		{"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", 1, `unknown protocol "t"`},
		{"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", 1, `unknown protocol "UD"`},
		{"PROXY UNKNOWNX\r\n", 1, `unknown protocol "UNKNOWNX"`},
		{"PROXY TCP\r\n", 1, `unknown protocol "TCP"`},
		{"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 1, "protocol is empty"},
		// Version 1: fields and spaces.
		{"PROXY TCP4\r\n", 1, "too few fields"},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", 1, "too few fields"},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", 1, "too many fields"},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", 1, "too many fields"},
		{"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", 1, "source address is empty"},
		{"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", 1, "destination address is empty"},
		{"PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n", 1, "source port is empty"},
		{"PROXY TCP6 ::1 ::1 1 \r\n", 1, "destination port is empty"},
		// Version 1: IPv4 addresses.
		{"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", 1, `source address "01.2.3.4" has an octet with a leading zero`},
		{"PROXY TCP4 1.2.3.4 5.6.7.00 1 2\r\n", 1, `destination address "5.6.7.00" has an octet with a leading zero`},
		{"PROXY TCP4 1.2.3.4 5.6.7.256 1 2\r\n", 1, `destination address "5.6.7.256" has an octet above 255`},
		{"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", 1, `source address "1.2.3" is not an IPv4 address`},
		{"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", 1, `source address "1.2.3.4.5" is not an IPv4 address`},
		{"PROXY TCP4 1.2.3.-4 5.6.7.8 1 2\r\n", 1, `source address "1.2.3.-4" is not an IPv4 address`},
		{"PROXY TCP4 1.2..4 5.6.7.8 1 2\r\n", 1, `source address "1.2..4" is not an IPv4 address`},
		{"PROXY TCP4 0x1.2.3.4 5.6.7.8 1 2\r\n", 1, `source address "0x1.2.3.4" is not an IPv4 address`},
		{"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", 1, `source address "1.2.3.4\t5.6.7.8" is not an IPv4 address`},
		{"PROXY TCP4 ::1 ::1 1 2\r\n", 1, `source address "::1" is IPv6 in a TCP4 line`},
		// Version 1: IPv6 addresses.
		{"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", 1, `source address "1.2.3.4" is IPv4 in a TCP6 line`},
		{"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", 1, `source address "fe80::1%eth0" has a zone`},
		{"PROXY TCP6 ::1 ::g 1 2\r\n", 1, `destination address "::g" is not an IPv6 address`},
		{"PROXY TCP6 1::2::3 ::1 1 2\r\n", 1, `source address "1::2::3" is not an IPv6 address`},
		{"PROXY TCP6 ::ffff:01.2.3.4 ::1 1 2\r\n", 1, `source address "::ffff:01.2.3.4" is not an IPv6 address`},
		{"PROXY TCP6 [::1] ::1 1 2\r\n", 1, `source address "[::1]" is not an IPv6 address`},
		// Version 1: ports.
		{"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", 1, `source port "080" has a leading zero`},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n", 1, `destination port "00" has a leading zero`},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", 1, `destination port "65536" is above 65535`},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 100000\r\n", 1, `destination port "100000" is above 65535`},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", 1, `source port "-1" is not a decimal number`},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", 1, `source port "+1" is not a decimal number`},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x00\r\n", 1, `destination port "2\x00" is not a decimal number`},
		// Version 1: line ends and length.
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", 1, "LF without CR"},
		{"PROXY TCP4 1.2.3.4\n", 1, "LF without CR"},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", 1, "CR not followed by LF"},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", 1, "CR not followed by LF"},
		{"PROXY UNKNOWN junk\nmore\r\n", 1, "LF without CR"},
		{"PROXY UNKNOWN\n", 1, "LF without CR"},
		{"PROXY UNKNOWN\r \n", 1, "CR not followed by LF"},
		{long, 1, "no CRLF within the first 107 bytes"},
		{"PROXY TCP6 " + strings.Repeat("0000:", 30), 1, "no CRLF within the first 107 bytes"},
		// Version 2: version and command.
		{string(v2Bytes(0x11, 0x11, ipv4Block)), 2, "unsupported version 1"},
		{string(v2Bytes(0x31, 0x11, ipv4Block)), 2, "unsupported version 3"},
		{string(v2Bytes(0x01, 0x11, ipv4Block)), 2, "unsupported version 0"},
		{string(v2Bytes(0x22, 0x11, ipv4Block)), 2, "unknown command 0x2"},
		{string(v2Bytes(0x2f, 0x11, ipv4Block)), 2, "unknown command 0xf"},
		// Version 2: family and transport.
		{string(v2Bytes(0x21, 0x41, ipv4Block)), 2, "unknown address family 0x4"},
		{string(v2Bytes(0x21, 0xf1, ipv4Block)), 2, "unknown address family 0xf"},
		{string(v2Bytes(0x21, 0x13, ipv4Block)), 2, "unknown transport protocol 0x3"},
		{string(v2Bytes(0x21, 0x03)), 2, "unknown transport protocol 0x3"},
		// Version 2: length against the address block.
		{string(v2Bytes(0x21, 0x11, ipv4Block[:11])), 2,
			"length 11 is shorter than the 12-byte address block of family/transport 0x11"},
		{string(v2Bytes(0x21, 0x22, make([]byte, 35))), 2,
			"length 35 is shorter than the 36-byte address block of family/transport 0x22"},
		{string(v2Bytes(0x21, 0x31, make([]byte, 215))), 2,
			"length 215 is shorter than the 216-byte address block of family/transport 0x31"},
		// Version 2: TLVs.
		{string(v2Bytes(0x21, 0x11, ipv4Block, []byte{0x04, 0x00})), 2,
			"TLV at offset 28 is truncated: 2 bytes left, a TLV takes at least 3"},
		{string(v2Bytes(0x21, 0x11, ipv4Block, tlv(0x01, []byte("h2")), []byte{0x04})), 2,
			"TLV at offset 33 is truncated: 1 bytes left, a TLV takes at least 3"},
		{string(v2Bytes(0x21, 0x11, ipv4Block, []byte{0x04, 0x00, 0x0a, 1, 2})), 2,
			"TLV 0x04 at offset 28 has length 10, but only 2 bytes are left"},
		{string(v2Bytes(0x21, 0x31, make([]byte, 216), []byte{0xe0, 0xff, 0xff})), 2,
			"TLV 0xe0 at offset 232 has length 65535, but only 0 bytes are left"},
		{string(v2Bytes(0x21, 0x11, ipv4Block, tlv(tlvCRC32C, []byte{1, 2, 3}))), 2,
			"CRC32C TLV has length 3, want 4"},
		{string(badCRC), 2, "CRC32C checksum is " + crcOf(badCRC, 28, false) + ", the header sums to " + crcOf(badCRC, 28, true)},
	}
}

func TestReadHeaderRejects(t *testing.T) {
	tests := malformedHeaders()
	if len(tests) < 30 {
		t.Fatalf("only %d malformed headers; the table should hold at least 30", len(tests))
	}
	for _, tt := range tests {
		for how, r := range readers([]byte(tt.in)) {
			h, err := ReadHeader(r)
			var perr *Error
			if !errors.As(err, &perr) {
				t.Errorf("%s: ReadHeader(%q) = %+v, %v; want a *Error", how, tt.in, h, err)
				continue
			}
			if perr.Version != tt.version || perr.Reason != tt.reason {
				t.Errorf("%s: ReadHeader(%q):\n got v%d %q\nwant v%d %q", how, tt.in, perr.Version, perr.Reason, tt.version, tt.reason)
			}
			if h != (Header{}) {
				t.Errorf("%s: ReadHeader(%q) returned %+v with an error; want the zero Header", how, tt.in, h)
			}
		}
	}
}

// crcOf formats, as the reason does, the checksum the CRC32C TLV at b[off]
// holds, or (computed) the one the header sums to.
func crcOf(b []byte, off int, computed bool) string {
	value := b[off+tlvHeaderLen : off+tlvHeaderLen+crc32cLen]
	sum := binary.BigEndian.Uint32(value)
	if computed {
		sum = binary.BigEndian.Uint32(withCRC32C(b, off)[off+tlvHeaderLen:])
	}
	return fmt.Sprintf("0x%08x", sum)
}

// wellFormed is a header ReadHeader must accept, and what it must return
// (Version aside).
type wellFormed struct {
	name string
	in   []byte
	want Header
}

// wellFormedHeaders returns the headers TestReadHeaderAccepts feeds in.
func wellFormedHeaders() []wellFormed {
	tcp := func(src, dst string) Header {
		return Header{Command: Proxy, Transport: TCP, Source: ap(src), Destination: ap(dst)}
	}
	unspec := Header{Command: Proxy, Transport: Unspec}
	goodCRC := withCRC32C(v2Bytes(0x21, 0x11, ipv4Block, tlv(0x04, nil), tlv(0x01, []byte("h2")), crcTLV), 36)
	return []wellFormed{
		{"v1 unknown, short form", []byte("PROXY UNKNOWN\r\n"), unspec},
		{"v1 unknown with addresses", []byte("PROXY UNKNOWN ffff:f::f ffff::1 65535 65535\r\n"), unspec},
		{"v1 unknown with anything", []byte("PROXY UNKNOWN \x00\x01 TCP9 x  y\r\n"), unspec},
		{"v1 unknown, exactly 107 bytes", []byte("PROXY UNKNOWN " + strings.Repeat("x", 91) + "\r\n"), unspec},
		{"v1 tcp4 extremes", []byte("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"), tcp("0.0.0.0:0", "255.255.255.255:65535")},
		{"v1 tcp4 longest", []byte("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"),
			tcp("255.255.255.255:65535", "255.255.255.255:65535")},
		{"v1 tcp6 longest (104 bytes)",
			[]byte("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF 65535 65535\r\n"),
			tcp("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")},
		{"v1 tcp6 shortest", []byte("PROXY TCP6 :: :: 0 0\r\n"), tcp("[::]:0", "[::]:0")},
		{"v1 tcp6 dual-stack sender", []byte("PROXY TCP6 ::ffff:192.0.2.1 ::ffff:c633:6407 1 2\r\n"),
			tcp("192.0.2.1:1", "198.51.100.7:2")},
		{"v1 tcp6 one mapped", []byte("PROXY TCP6 ::ffff:192.0.2.1 2001:db8::1 1 2\r\n"),
			tcp("[::ffff:192.0.2.1]:1", "[2001:db8::1]:2")},
		{"v2 local, family ignored, block skipped", v2Bytes(0x20, 0xff, []byte("anything at all")), Header{Command: Local}},
		{"v2 local, no block", v2Bytes(0x20, 0x00), Header{Command: Local}},
		{"v2 proxy unspec with a block", v2Bytes(0x21, 0x00, []byte{1, 2, 3}), unspec},
		{"v2 inet with unspecified transport", v2Bytes(0x21, 0x10, ipv4Block[:3]), unspec},
		{"v2 unspec family, stream", v2Bytes(0x21, 0x01), unspec},
		{"v2 unix stream, as unspec", v2Bytes(0x21, 0x31, make([]byte, 216), tlv(0x05, []byte("id"))), unspec},
		{"v2 unix dgram, as unspec", v2Bytes(0x21, 0x32, make([]byte, 216)), unspec},
		{"v2 tcp4", v2Bytes(0x21, 0x11, ipv4Block), tcp("192.0.2.1:12345", "198.51.100.7:80")},
		{"v2 udp4", v2Bytes(0x21, 0x12, ipv4Block),
			Header{Command: Proxy, Transport: UDP, Source: ap("192.0.2.1:12345"), Destination: ap("198.51.100.7:80")}},
		{"v2 tcp6 carrying mapped IPv4",
			v2Bytes(0x21, 0x21, netip.MustParseAddr("::ffff:192.0.2.1").AsSlice(),
				netip.MustParseAddr("::ffff:198.51.100.7").AsSlice(), []byte{0, 1, 0, 2}),
			tcp("192.0.2.1:1", "198.51.100.7:2")},
		{"v2 tcp4 with TLVs and a good CRC32C", goodCRC, tcp("192.0.2.1:12345", "198.51.100.7:80")},
		{"v2 tcp4 with a 65k TLV", v2Bytes(0x21, 0x11, ipv4Block, tlv(0x04, make([]byte, 65535-12-3))),
			tcp("192.0.2.1:12345", "198.51.100.7:80")},
	}
}

func TestReadHeaderAccepts(t *testing.T) {
	for _, tt := range wellFormedHeaders() {
		tt.want.Version = 1
		if tt.in[0] == '\r' {
			tt.want.Version = 2
		}
		const trailer = "TRAILER: the client's first bytes\r\n"
		for how, r := range readers(append(bytes.Clone(tt.in), trailer...)) {
			got, err := ReadHeader(r)
			if err != nil {
				t.Errorf("%s: %s: ReadHeader: %v", tt.name, how, err)
				continue
			}
			if got != tt.want {
				t.Errorf("%s: %s: ReadHeader = %+v, want %+v", tt.name, how, got, tt.want)
			}
			rest := make([]byte, len(trailer))
			if _, err := io.ReadFull(r, rest); err != nil || string(rest) != trailer {
				t.Errorf("%s: %s: after the header the reader holds %q, %v; want %q", tt.name, how, rest, err, trailer)
			}
		}
	}
}

func TestReadHeaderReadErrors(t *testing.T) {
	tests := []struct {
		name string
		r    io.Reader
		is   error
		msg  string
	}{
		{"closed before a byte", bytes.NewReader(nil), io.EOF,
			"proxy protocol: connection closed before a header: EOF"},
		{"closed inside a v1 line", bytes.NewReader([]byte("PROXY TCP4 1.2.3.4 ")), io.ErrUnexpectedEOF,
			"proxy protocol: v1: connection closed after 19 bytes of header: unexpected EOF"},
		{"closed before the LF", bytes.NewReader([]byte("PROXY UNKNOWN\r")), io.ErrUnexpectedEOF,
			"proxy protocol: v1: connection closed after 14 bytes of header: unexpected EOF"},
		{"closed inside the v2 block", bytes.NewReader(v2Bytes(0x21, 0x11, ipv4Block)[:20]), io.ErrUnexpectedEOF,
			"proxy protocol: v2: connection closed after 20 bytes of header: unexpected EOF"},
		{"stalled inside the v2 fixed part", io.MultiReader(bytes.NewReader([]byte(v2Signature)), iotest.ErrReader(errStalled)),
			errStalled, "proxy protocol: v2: reading header (12 bytes so far): " + errStalled.Error()},
		{"a reader that returns nothing", emptyReader{}, io.ErrNoProgress,
			"proxy protocol: reading header (0 bytes so far): multiple Read calls return no data or error"},
	}
	for _, tt := range tests {
		h, err := ReadHeader(tt.r)
		if !errors.Is(err, tt.is) || err.Error() != tt.msg {
			t.Errorf("%s: ReadHeader = %+v, %q; want an error wrapping %v: %q", tt.name, h, err, tt.is, tt.msg)
		}
		var perr *Error
		if errors.As(err, &perr) {
			t.Errorf("%s: a read error came back as a malformed header: %v", tt.name, err)
		}
	}
}

// emptyReader returns no bytes and no error, forever.
type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }
