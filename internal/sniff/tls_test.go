package sniff

import (
	"bytes"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// realHellos are the ClientHellos in testdata, as real clients sent them
// (testdata comes from /work/shared/testdata/clienthello; its README lists
// these facts).
var realHellos = []struct {
	file string
	want Hello
}{
	{"chromium.bin", Hello{"app.example.test", []string{"h2", "http/1.1"}}},
	{"curl.bin", Hello{"app.example.test", []string{"h2", "http/1.1"}}},
	{"go-crypto-tls.bin", Hello{"app.example.test", nil}},
	{"openssl-no-sni.bin", Hello{"", nil}},
	{"openssl-s_client.bin", Hello{"app.example.test", []string{"h2", "http/1.1"}}},
	{"openssl-tls12.bin", Hello{"app.example.test", nil}},
	{"python-ssl.bin", Hello{"app.example.test", []string{"h2", "http/1.1"}}},
}

// readHello reads a testdata file.
func readHello(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkHello fails the test unless ClientHello(b) is want and Match.
func checkHello(t *testing.T, what string, b []byte, want Hello) {
	t.Helper()
	got, v := ClientHello(b)
	if v != Match || got.ServerName != want.ServerName || !slices.Equal(got.ALPN, want.ALPN) {
		t.Fatalf("%s: ClientHello = %+v, %v; want %+v, match", what, got, v, want)
	}
}

func TestClientHelloRealClients(t *testing.T) {
	for _, c := range realHellos {
		t.Run(c.file, func(t *testing.T) {
			b := readHello(t, c.file)
			checkHello(t, "whole", b, c.want)
			checkHello(t, "with bytes after it", append(slices.Clip(b), 0x17, 0x03, 0x03), c.want)
			for i := range len(b) {
				if h, v := ClientHello(b[:i]); v != NeedMore {
					t.Fatalf("first %d of %d bytes: %+v, %v; want need-more", i, len(b), h, v)
				}
			}
		})
	}
}

// handshakeBytes returns the handshake bytes that the records of b carry.
func handshakeBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var hs []byte
	for len(b) > 0 {
		frag, rest, v := record(b)
		if v != Match {
			t.Fatalf("record: %v", v)
		}
		hs, b = append(hs, frag...), rest
	}
	return hs
}

// records cuts handshake bytes into TLS handshake records whose fragments
// have the given sizes in turn, the last size repeating.
func records(hs []byte, sizes ...int) []byte {
	var out []byte
	for i := 0; len(hs) > 0; i++ {
		n := min(sizes[min(i, len(sizes)-1)], len(hs))
		out = append(out, recordTypeHandshake, 3, 1, byte(n>>8), byte(n))
		out, hs = append(out, hs[:n]...), hs[n:]
	}
	return out
}

func TestClientHelloAcrossRecords(t *testing.T) {
	for _, c := range realHellos {
		t.Run(c.file, func(t *testing.T) {
			hs := handshakeBytes(t, readHello(t, c.file))
			for cut := 1; cut < len(hs); cut++ {
				checkHello(t, "two records", records(hs, cut, len(hs)), c.want)
			}
			for _, sizes := range [][]int{{1}, {2}, {3, 1}, {4}, {5, 17}, {100}, {1, 600, 7}, {1400}} {
				b := records(hs, sizes...)
				checkHello(t, "records", b, c.want)
				for i := 0; i < len(b); i += 7 {
					if h, v := ClientHello(b[:i]); v != NeedMore {
						t.Fatalf("records %v, first %d of %d bytes: %+v, %v; want need-more", sizes, i, len(b), h, v)
					}
				}
			}
		})
	}
}

// TestClientHelloGo has Go's crypto/tls make a hello over a pipe and reads
// it as it arrives.
func TestClientHelloGo(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	protos := []string{"h2", "http/1.1", "acme-tls/1"}
	go func() {
		c := tls.Client(client, &tls.Config{ServerName: "App.Example.TEST", NextProtos: protos})
		_ = c.Handshake() // fails when the server end closes
		c.Close()
	}()
	var got []byte
	buf := make([]byte, 512)
	for {
		n, err := server.Read(buf)
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		got = append(got, buf[:n]...)
		if _, v := ClientHello(got); v != NeedMore {
			break
		}
	}
	checkHello(t, "crypto/tls", got, Hello{"app.example.test", protos})
}

// ext is one extension: its type and data.
func ext(typ uint16, data ...byte) []byte {
	return append([]byte{byte(typ >> 8), byte(typ), byte(len(data) >> 8), byte(len(data))}, data...)
}

// vec16 prefixes data with its two-byte length.
func vec16(data ...byte) []byte {
	return append([]byte{byte(len(data) >> 8), byte(len(data))}, data...)
}

// sniExt is a server_name extension with one host_name.
func sniExt(name string) []byte {
	return ext(extensionServerName, vec16(append([]byte{0}, vec16([]byte(name)...)...)...)...)
}

// helloBody is a ClientHello body with the given extensions block
// (nothing at all when extensions is nil).
func helloBody(extensions []byte) []byte {
	b := append([]byte{3, 3}, make([]byte, 32)...) // legacy_version, random
	b = append(b, 0, 0, 2, 0x13, 0x01, 1, 0)       // no session, one suite, null compression
	return append(b, extensions...)
}

// handshake wraps a body as a handshake message of the type and in one
// record.
func handshake(typ byte, body []byte) []byte {
	n := len(body)
	return records(append([]byte{typ, byte(n >> 16), byte(n >> 8), byte(n)}, body...), 1<<14)
}

func TestClientHelloBuilt(t *testing.T) {
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	alpn := ext(extensionALPN, vec16(2, 'h', '2')...)
	good := func(exts ...[]byte) []byte { return handshake(1, helloBody(vec16(cat(exts...)...))) }
	for _, c := range []struct {
		name string
		b    []byte
		want Hello
	}{
		{"name and alpn", good(sniExt("a.example"), alpn), Hello{"a.example", []string{"h2"}}},
		{"name lowercased", good(sniExt("WWW.Example.ORG")), Hello{ServerName: "www.example.org"}},
		{"other name types skipped", good(ext(0, vec16(append([]byte{7, 0, 1, 'x', 0}, vec16('a', 'b')...)...)...)), Hello{ServerName: "ab"}},
		{"no extensions", handshake(1, helloBody(nil)), Hello{}},
		{"empty extensions", good(), Hello{}},
	} {
		checkHello(t, c.name, c.b, c.want)
	}
}

func TestClientHelloMalformed(t *testing.T) {
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	good := func(exts ...[]byte) []byte { return handshake(1, helloBody(vec16(cat(exts...)...))) }
	curl := readHello(t, "curl.bin")
	big := handshake(1, helloBody(vec16(ext(21, make([]byte, 20<<10)...)...))) // a 20 KiB padding extension
	endless := records(append([]byte{1, 0, 0x30, 0}, make([]byte, 0x3000)...), 1)
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"application data record", append([]byte{23, 3, 3, 0, 5}, curl[5:10]...)},
		{"alert after a first record", cat(records(handshakeBytes(t, curl)[:100], 100), []byte{21, 3, 3, 0, 2, 2, 40})},
		{"record version 2", cat([]byte{22, 2, 0}, curl[3:])},
		{"record version 3.5", cat([]byte{22, 3, 5}, curl[3:])},
		{"empty record", cat([]byte{22, 3, 1, 0, 0}, curl)},
		{"record over 16 KiB", []byte{22, 3, 1, 0x40, 0x01}},
		{"server hello", handshake(2, helloBody(nil))},
		{"20 KiB hello", big},
		{"16 KiB of one-byte records", endless},
		{"handshake shorter than its body", cat([]byte{22, 3, 1, 0, 8, 1, 0, 0, 4}, curl[9:13])},
		{"body truncated in random", handshake(1, helloBody(nil)[:20])},
		{"session id longer than 32", handshake(1, cat([]byte{3, 3}, make([]byte, 32), []byte{33}, make([]byte, 33), []byte{0, 2, 0x13, 1, 1, 0}))},
		{"session id past the end", handshake(1, cat([]byte{3, 3}, make([]byte, 32), []byte{20, 0}))},
		{"odd cipher suites", handshake(1, cat([]byte{3, 3}, make([]byte, 32), []byte{0, 0, 3, 0x13, 1, 0, 1, 0}))},
		{"no compression", handshake(1, cat([]byte{3, 3}, make([]byte, 32), []byte{0, 0, 2, 0x13, 1, 0}))},
		{"extensions past the end", handshake(1, helloBody(cat([]byte{0, 40}, sniExt("a"))))},
		{"bytes after extensions", handshake(1, helloBody(cat(vec16(sniExt("a")...), []byte{0})))},
		{"extension past its block", good([]byte{0, 16, 0, 9, 0})},
		{"sni list length past extension", good(ext(0, 0, 9, 0, 0, 1, 'a'))},
		{"sni list length short of extension", good(ext(0, 0, 3, 0, 0, 1, 'a', 0))},
		{"sni empty list", good(ext(0, 0, 0))},
		{"sni name past list", good(ext(0, 0, 4, 0, 0, 5, 'a'))},
		{"sni empty name", good(ext(0, 0, 3, 0, 0, 0))},
		{"sni two host names", good(ext(0, vec16(cat([]byte{0}, vec16('a'), []byte{0}, vec16('b'))...)...))},
		{"sni trailing dot", good(sniExt("a.example."))},
		{"sni with a space", good(sniExt("a example"))},
		{"sni twice", good(sniExt("a"), sniExt("a"))},
		{"alpn empty protocol", good(ext(extensionALPN, 0, 3, 2, 'h', '2', 0))},
		{"alpn name past list", good(ext(extensionALPN, 0, 2, 5, 'h'))},
		{"alpn empty list", good(ext(extensionALPN, 0, 0))},
		{"alpn twice", good(ext(extensionALPN, 0, 3, 2, 'h', '2'), ext(extensionALPN, 0, 3, 2, 'h', '2'))},
		{"http", []byte("GET / HTTP/1.1\r\n")},
	} {
		if h, v := ClientHello(c.b); v != NoMatch {
			t.Errorf("%s: %+v, %v; want no-match", c.name, h, v)
		}
		for _, i := range cuts(len(c.b)) { // no prefix panics or reads out of bounds
			ClientHello(c.b[:i])
		}
	}
}

func TestClientHelloPeekLimit(t *testing.T) {
	// A 12 KiB handshake message in one-byte records takes 72 KiB: it needs
	// more up to the limit, and matches nothing from there on.
	b := records(append([]byte{1, 0, 0x30, 0}, make([]byte, 0x3000)...), 1)
	if h, v := ClientHello(b[:MaxPeek-1]); v != NeedMore {
		t.Errorf("one byte short of the limit: %+v, %v; want need-more", h, v)
	}
	if h, v := ClientHello(b[:MaxPeek]); v != NoMatch {
		t.Errorf("at the limit: %+v, %v; want no-match", h, v)
	}
}
