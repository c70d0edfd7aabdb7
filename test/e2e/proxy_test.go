package e2e

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"
)

// proxyConfig is a rule in front of backend that trusts PROXY headers from
// 127.0.0.1, with extra rule keys.
func proxyConfig(backend, extra string) func(listen string) string {
	return func(listen string) string {
		return fmt.Sprintf("log_format = \"json\"\n\n[[rule]]\nname = \"lb\"\nlisten = %q\nbackends = [%q]\n"+
			"accept_proxy_protocol = [\"127.0.0.1/32\"]\n%s", listen, backend, extra)
	}
}

// v2 returns a PROXY v2 header written by hand (not by the package under
// test): the signature (sig, normally the real one), the version and
// command byte, the family and transport byte, the length field, and the
// rest.
func v2(sig string, verCmd, famProto byte, length uint16, rest ...byte) []byte {
	b := append([]byte(sig), verCmd, famProto, 0, 0)
	binary.BigEndian.PutUint16(b[len(b)-2:], length)
	return append(b, rest...)
}

const v2Sig = "\r\n\r\n\x00\r\nQUIT\n"

// inet4Block is the address block of a TCP over IPv4 header: 192.0.2.7:4000
// to 192.0.2.8:80.
var inet4Block = []byte{192, 0, 2, 7, 192, 0, 2, 8, 0x0f, 0xa0, 0, 80}

// TestMalformedProxyV2: through the binary, each malformed PROXY v2 header
// from a trusted sender is refused with end=rejected:proxy-protocol and an
// error naming what is wrong, and a good client right after is served with
// the address from its header.
func TestMalformedProxyV2(t *testing.T) {
	t.Parallel()
	be := startBackend(t, echo)
	p, addr := launchConfig(t, proxyConfig(be.addr, ""))
	tlv := func(typ byte, n uint16, value ...byte) []byte {
		return append([]byte{typ, byte(n >> 8), byte(n)}, value...)
	}
	for i, tc := range []struct {
		name, header string
		halfClose    bool   // the sender ends after the bytes
		wantErr      string // in the access line's error
	}{
		{"bad signature", string(v2("\r\n\r\n\x00\r\nQUIX\n", 0x21, 0x11, 12, inet4Block...)), false, "not a PROXY protocol header"},
		{"bad version", string(v2(v2Sig, 0x11, 0x11, 12, inet4Block...)), false, "v2: unsupported version 1"},
		{"unknown command", string(v2(v2Sig, 0x23, 0x11, 12, inet4Block...)), false, "v2: unknown command 0x3"},
		{"unknown family", string(v2(v2Sig, 0x21, 0x41, 12, inet4Block...)), false, "v2: unknown address family 0x4"},
		{"unknown transport", string(v2(v2Sig, 0x21, 0x13, 12, inet4Block...)), false, "v2: unknown transport protocol 0x3"},
		{"length shorter than the addresses", string(v2(v2Sig, 0x21, 0x11, 4, inet4Block[:4]...)), false, "length 4 is shorter than the 12-byte address block"},
		{"truncated", string(v2(v2Sig, 0x21, 0x11, 12, inet4Block[:5]...)), true, "connection closed after 21 bytes of header"},
		{"TLV past the end", string(v2(v2Sig, 0x21, 0x11, 15, append(inet4Block, tlv(0x01, 100)...)...)), false, "has length 100, but only 0 bytes are left"},
		{"bad CRC32C", string(v2(v2Sig, 0x21, 0x11, 19, append(inet4Block, tlv(0x03, 4, 0, 0, 0, 0)...)...)), false, "CRC32C checksum is 0x00000000"},
		{"length past what is sent", string(v2(v2Sig, 0x21, 0x11, 0xffff, inet4Block...)), false, "i/o timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			began := time.Now()
			if _, err := c.Write([]byte(tc.header)); err != nil {
				t.Fatal(err)
			}
			if tc.halfClose {
				c.CloseWrite()
			}
			if n, err := readEnd(c); n != 0 || isTimeout(err) {
				t.Fatalf("read %d bytes, %v; want the connection closed with nothing relayed", n, err)
			}
			// A header that never completes is cut by the 3 s header timeout.
			if took := time.Since(began); took > 3*time.Second+waitLimit/2 {
				t.Errorf("closed after %v", took)
			}
			rec := p.waitAccess(c)
			if rec.str("end") != "rejected:proxy-protocol" || !strings.Contains(rec.str("error"), tc.wantErr) {
				t.Errorf("access line %v: want end=rejected:proxy-protocol, error with %q", rec, tc.wantErr)
			}
			checkGoodProxyClient(t, p, addr, uint16(5000+i))
		})
	}
}

// checkGoodProxyClient sends a valid v2 header for client 192.0.2.7:port
// and a message through addr, and checks the echo and the access line,
// which names the client from the header.
func checkGoodProxyClient(t *testing.T, p *proc, addr string, port uint16) {
	t.Helper()
	c := dial(t, addr)
	block := append([]byte(nil), inet4Block...)
	binary.BigEndian.PutUint16(block[8:10], port)
	if _, err := c.Write(v2(v2Sig, 0x21, 0x11, 12, block...)); err != nil {
		t.Fatal(err)
	}
	const msg = "good client\n"
	if err := roundTrip(c, msg); err != nil {
		t.Fatalf("good client after a bad header: %v", err)
	}
	c.CloseWrite()
	if n, err := readEnd(c); n != 0 || err != nil {
		t.Fatalf("good client's end: %d bytes, %v", n, err)
	}
	client := fmt.Sprintf("192.0.2.7:%d", port)
	rec := p.wait("access for "+client, func(r record) bool { return r.str("msg") == "access" && r.str("client") == client })
	if rec.str("end") != "eof" || rec.num("up") != int64(len(msg)) || rec.num("down") != int64(len(msg)) {
		t.Errorf("good client's access line %v", rec)
	}
}
