package e2e

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// The route tests of awkward input: a ClientHello in pieces, one too large
// to judge, and bytes that are no ClientHello at all. Their helpers are in
// routes_test.go.

// splitRecord rewrites hello, a ClientHello in one TLS record, as two
// records, the first carrying at bytes of the handshake message.
func splitRecord(hello []byte, at int) []byte {
	hdr, msg := hello[:5], hello[5:]
	record := func(part []byte) []byte {
		return append([]byte{hdr[0], hdr[1], hdr[2], byte(len(part) >> 8), byte(len(part))}, part...)
	}
	return append(record(msg[:at]), record(msg[at:])...)
}

// sendInPieces writes data to a new connection to addr in pieces of size
// bytes, each its own write (Go's connections send at once: no Nagle), and
// returns the connection.
func sendInPieces(t *testing.T, addr string, data []byte, size int) *net.TCPConn {
	t.Helper()
	c := dial(t, addr)
	for len(data) > 0 {
		n := min(size, len(data))
		if _, err := c.Write(data[:n]); err != nil {
			t.Fatalf("write: %v", err)
		}
		data = data[n:]
	}
	return c
}

// TestRouteClientHelloInPieces: a ClientHello that arrives one byte per
// segment, or split over two TLS records, still takes the route of its
// server name, and reaches the backend whole.
func TestRouteClientHelloInPieces(t *testing.T) {
	t.Parallel()
	web := startBackend(t, echo)
	p, addr := launchConfig(t, silentConfig(web.addr, ""))
	hello := clientHello(t, "web.example.com")
	for _, tc := range []struct {
		name string
		data []byte
		size int
	}{
		{"one byte per write", hello, 1},
		{"two TLS records", splitRecord(hello, 40), len(hello) + 5},
		{"two TLS records, one byte per write", splitRecord(hello, 100), 1},
	} {
		c := sendInPieces(t, addr, tc.data, tc.size)
		got := make([]byte, len(tc.data))
		_ = c.SetReadDeadline(time.Now().Add(waitLimit))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != string(tc.data) {
			t.Errorf("%s: the backend's echo: %v; want the bytes sent", tc.name, err)
		}
		c.Close()
		rec := p.waitAccess(c)
		checkRouted(t, rec, "web", web.addr, "eof")
		if rec.str("sni") != "web.example.com" {
			t.Errorf("%s: access %v\nwant sni=web.example.com", tc.name, rec)
		}
	}
}

// TestRouteBadInput: bytes that cannot choose a route end with a clear
// reason and reach no backend: a ClientHello over the 16 KiB that sluice
// reads to decide (whatever server name it holds), a record of garbage, and
// a truncated ClientHello followed by the client's FIN.
func TestRouteBadInput(t *testing.T) {
	t.Parallel()
	web := startBackend(t, echo)
	p, addr := launchConfig(t, silentConfig(web.addr, ""))
	protos := make([]string, 80) // 80 × ~200 bytes of ALPN: a ClientHello of ~16.5 KiB
	for i := range protos {
		protos[i] = strings.Repeat(string(rune('a'+i%26)), 200)
	}
	big := clientHello(t, "web.example.com", protos...)
	if len(big) <= 16<<10 {
		t.Fatalf("the big ClientHello has %d bytes, want over 16 KiB", len(big))
	}
	hello := clientHello(t, "web.example.com")
	for _, tc := range []struct {
		name string
		data []byte
		fin  bool
	}{
		{"a ClientHello over 16 KiB", big, false},
		{"garbage in a handshake record", append([]byte{0x16, 0x03, 0x01, 0x00, 0x20}, strings.Repeat("garbage!", 4)...), false},
		{"a truncated ClientHello", hello[:len(hello)/2], true},
	} {
		c := sendInPieces(t, addr, tc.data, len(tc.data))
		if tc.fin {
			_ = c.CloseWrite()
		}
		if _, err := readEnd(c); isTimeout(err) {
			t.Errorf("%s: not closed within %v", tc.name, waitLimit)
		}
		if rec := p.waitAccess(c); rec.str("end") != "rejected:no-route" || rec.str("backend") != "" {
			t.Errorf("%s: access %v\nwant end=rejected:no-route and no backend", tc.name, rec)
		}
	}
	if n := web.accepted.Load(); n != 0 {
		t.Errorf("the route's backend got %d connections, want none", n)
	}
}
