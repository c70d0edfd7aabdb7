package proxyproto

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// v2Bytes builds a version 2 header by hand: the signature, the version and
// command byte, the family and transport byte, the length of body, and body.
func v2Bytes(verCmd, famTransport byte, body ...[]byte) []byte {
	b := []byte(v2Signature)
	b = append(b, verCmd, famTransport)
	joined := bytes.Join(body, nil)
	b = binary.BigEndian.AppendUint16(b, uint16(len(joined)))
	return append(b, joined...)
}

// tlv builds one TLV.
func tlv(typ byte, value []byte) []byte {
	b := []byte{typ}
	b = binary.BigEndian.AppendUint16(b, uint16(len(value)))
	return append(b, value...)
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestAppendGolden(t *testing.T) {
	tcp4 := Header{Command: Proxy, Transport: TCP, Source: ap("192.168.0.1:56324"), Destination: ap("192.168.0.11:443")}
	tcp6 := Header{Command: Proxy, Transport: TCP, Source: ap("[2001:db8::1]:1"), Destination: ap("[2001:db8::2]:65535")}
	udp4 := Header{Command: Proxy, Transport: UDP, Source: ap("10.0.0.1:53"), Destination: ap("10.0.0.2:5353")}
	tests := []struct {
		name   string
		h      Header
		v1, v2 []byte
	}{
		{"tcp4 (the specification's example)", tcp4,
			[]byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"),
			v2Bytes(0x21, 0x11, []byte{192, 168, 0, 1, 192, 168, 0, 11, 0xdc, 0x04, 0x01, 0xbb})},
		{"tcp6", tcp6,
			[]byte("PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n"),
			v2Bytes(0x21, 0x21,
				netip.MustParseAddr("2001:db8::1").AsSlice(), netip.MustParseAddr("2001:db8::2").AsSlice(),
				[]byte{0, 1, 0xff, 0xff})},
		{"udp4 has no v1 form", udp4,
			[]byte("PROXY UNKNOWN\r\n"),
			v2Bytes(0x21, 0x12, []byte{10, 0, 0, 1, 10, 0, 0, 2, 0, 53, 0x14, 0xe9})},
		{"local", Header{Command: Local, Transport: TCP, Source: ap("1.2.3.4:5"), Destination: ap("5.6.7.8:9")},
			[]byte("PROXY UNKNOWN\r\n"),
			v2Bytes(0x20, 0x00)},
		{"zero header is local", Header{},
			[]byte("PROXY UNKNOWN\r\n"),
			v2Bytes(0x20, 0x00)},
		{"proxy without addresses", Header{Command: Proxy, Transport: TCP},
			[]byte("PROXY UNKNOWN\r\n"),
			v2Bytes(0x21, 0x00)},
		{"unknown command encodes as local", Header{Command: 9, Transport: TCP, Source: ap("1.2.3.4:5"), Destination: ap("5.6.7.8:9")},
			[]byte("PROXY UNKNOWN\r\n"),
			v2Bytes(0x20, 0x00)},
		{"both v4-mapped become tcp4",
			Header{Command: Proxy, Transport: TCP, Source: ap("[::ffff:1.2.3.4]:10"), Destination: ap("[::ffff:5.6.7.8]:20")},
			[]byte("PROXY TCP4 1.2.3.4 5.6.7.8 10 20\r\n"),
			v2Bytes(0x21, 0x11, []byte{1, 2, 3, 4, 5, 6, 7, 8, 0, 10, 0, 20})},
		{"mixed families become tcp6, v4 mapped",
			Header{Command: Proxy, Transport: TCP, Source: ap("1.2.3.4:10"), Destination: ap("[2001:db8::2]:20")},
			[]byte("PROXY TCP6 ::ffff:1.2.3.4 2001:db8::2 10 20\r\n"),
			v2Bytes(0x21, 0x21,
				netip.MustParseAddr("::ffff:1.2.3.4").AsSlice(), netip.MustParseAddr("2001:db8::2").AsSlice(),
				[]byte{0, 10, 0, 20})},
		{"zones are dropped",
			Header{Command: Proxy, Transport: TCP, Source: ap("[fe80::1%eth0]:1"), Destination: ap("[fe80::2%eth0]:2")},
			[]byte("PROXY TCP6 fe80::1 fe80::2 1 2\r\n"),
			v2Bytes(0x21, 0x21,
				netip.MustParseAddr("fe80::1").AsSlice(), netip.MustParseAddr("fe80::2").AsSlice(),
				[]byte{0, 1, 0, 2})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("kept")
			if got := tt.h.AppendV1(bytes.Clone(prefix)); !bytes.Equal(got, append(bytes.Clone(prefix), tt.v1...)) {
				t.Errorf("AppendV1 = %q, want %q", got, tt.v1)
			}
			if got := tt.h.AppendV2(bytes.Clone(prefix)); !bytes.Equal(got, append(bytes.Clone(prefix), tt.v2...)) {
				t.Errorf("AppendV2 = % x\nwant          % x", got, tt.v2)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		// want1 and want2 are what reading the v1 and v2 encodings of h
		// returns, Version aside.
		want1, want2 Header
	}{
		{name: "tcp4",
			h:     Header{Command: Proxy, Transport: TCP, Source: ap("203.0.113.7:40000"), Destination: ap("198.51.100.1:80")},
			want1: Header{Command: Proxy, Transport: TCP, Source: ap("203.0.113.7:40000"), Destination: ap("198.51.100.1:80")},
			want2: Header{Command: Proxy, Transport: TCP, Source: ap("203.0.113.7:40000"), Destination: ap("198.51.100.1:80")}},
		{name: "tcp6 with extreme ports",
			h:     Header{Command: Proxy, Transport: TCP, Source: ap("[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:0"), Destination: ap("[::]:65535")},
			want1: Header{Command: Proxy, Transport: TCP, Source: ap("[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:0"), Destination: ap("[::]:65535")},
			want2: Header{Command: Proxy, Transport: TCP, Source: ap("[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:0"), Destination: ap("[::]:65535")}},
		{name: "udp6 (v1 says UNKNOWN)",
			h:     Header{Command: Proxy, Transport: UDP, Source: ap("[::1]:5000"), Destination: ap("[::1]:53")},
			want1: Header{Command: Proxy, Transport: Unspec},
			want2: Header{Command: Proxy, Transport: UDP, Source: ap("[::1]:5000"), Destination: ap("[::1]:53")}},
		{name: "local",
			h:     Header{Command: Local},
			want1: Header{Command: Proxy, Transport: Unspec},
			want2: Header{Command: Local}},
		{name: "proxy unspec",
			h:     Header{Command: Proxy, Transport: Unspec, Source: ap("1.2.3.4:1"), Destination: ap("1.2.3.4:2")},
			want1: Header{Command: Proxy, Transport: Unspec},
			want2: Header{Command: Proxy, Transport: Unspec}},
		{name: "mapped pair reads back as IPv4",
			h:     Header{Command: Proxy, Transport: TCP, Source: ap("[::ffff:10.1.2.3]:1"), Destination: ap("[::ffff:10.1.2.4]:2")},
			want1: Header{Command: Proxy, Transport: TCP, Source: ap("10.1.2.3:1"), Destination: ap("10.1.2.4:2")},
			want2: Header{Command: Proxy, Transport: TCP, Source: ap("10.1.2.3:1"), Destination: ap("10.1.2.4:2")}},
		{name: "mixed pair reads back as IPv6",
			h:     Header{Command: Proxy, Transport: TCP, Source: ap("10.1.2.3:1"), Destination: ap("[2001:db8::9]:2")},
			want1: Header{Command: Proxy, Transport: TCP, Source: ap("[::ffff:10.1.2.3]:1"), Destination: ap("[2001:db8::9]:2")},
			want2: Header{Command: Proxy, Transport: TCP, Source: ap("[::ffff:10.1.2.3]:1"), Destination: ap("[2001:db8::9]:2")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.want1.Version, tt.want2.Version = 1, 2
			for _, c := range []struct {
				wire []byte
				want Header
			}{{tt.h.AppendV1(nil), tt.want1}, {tt.h.AppendV2(nil), tt.want2}} {
				got, err := ReadHeader(bytes.NewReader(c.wire))
				if err != nil {
					t.Fatalf("ReadHeader(%q): %v", c.wire, err)
				}
				if got != c.want {
					t.Errorf("ReadHeader(%q) = %+v, want %+v", c.wire, got, c.want)
				}
			}
		})
	}
}

func TestEndpoints(t *testing.T) {
	src, dst := ap("1.2.3.4:5"), ap("6.7.8.9:10")
	tests := []struct {
		h  Header
		ok bool
	}{
		{Header{Command: Proxy, Transport: TCP, Source: src, Destination: dst}, true},
		{Header{Command: Proxy, Transport: UDP, Source: src, Destination: dst}, true},
		{Header{Command: Local, Transport: TCP, Source: src, Destination: dst}, false},
		{Header{Command: Proxy, Transport: Unspec, Source: src, Destination: dst}, false},
		{Header{Command: Proxy, Transport: TCP, Source: src}, false},
	}
	for _, tt := range tests {
		s, d, ok := tt.h.Endpoints()
		if ok != tt.ok {
			t.Errorf("%+v.Endpoints() ok = %v, want %v", tt.h, ok, tt.ok)
		}
		if ok && (s != src || d != dst) {
			t.Errorf("%+v.Endpoints() = %v, %v", tt.h, s, d)
		}
		if !ok && (s.IsValid() || d.IsValid()) {
			t.Errorf("%+v.Endpoints() = %v, %v with ok false; want zero addresses", tt.h, s, d)
		}
	}
}

func TestStrings(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{Local.String(), "LOCAL"}, {Proxy.String(), "PROXY"}, {Command(7).String(), "Command(7)"},
		{Unspec.String(), "UNSPEC"}, {TCP.String(), "TCP"}, {UDP.String(), "UDP"}, {Transport(5).String(), "Transport(5)"},
		{(&Error{Version: 1, Reason: "x"}).Error(), "proxy protocol: v1: x"},
		{(&Error{Reason: "y"}).Error(), "proxy protocol: y"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
