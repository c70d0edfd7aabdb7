package route

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// hellos are the real ClientHellos of internal/sniff's testdata, by file,
// with the route of table() each must choose.
var hellos = map[string]int{
	"chromium.bin":         1, // app.example.test, h2
	"curl.bin":             1,
	"go-crypto-tls.bin":    1,
	"openssl-s_client.bin": 1,
	"openssl-tls12.bin":    1,
	"python-ssl.bin":       1,
	"openssl-no-sni.bin":   4, // no name, no ALPN: detect tls
}

// table is a table of every kind of matcher; the comments give indexes.
func table(t testing.TB) *Table {
	t.Helper()
	tb, err := New([]Spec{
		{SNI: []string{"other.example.test"}},                 // 0
		{SNI: []string{"*.EXAMPLE.test"}},                     // 1
		{ALPN: []string{"acme-tls/1"}},                        // 2
		{HTTPHost: []string{"www.example.com"}},               // 3
		{Detect: []string{"tls"}},                             // 4
		{Detect: []string{"ssh", "PROXY"}},                    // 5
		{Detect: []string{"http"}, HTTPHost: []string{"*.x"}}, // 6
	})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// readHello reads a ClientHello of internal/sniff's testdata.
func readHello(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "sniff", "testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// handshake returns the handshake bytes the TLS records of b carry.
func handshake(t *testing.T, b []byte) []byte {
	t.Helper()
	var hs []byte
	for len(b) > 0 {
		if len(b) < 5 || b[0] != 22 {
			t.Fatalf("not a handshake record: % x", b[:min(len(b), 5)])
		}
		n := int(b[3])<<8 | int(b[4])
		hs, b = append(hs, b[5:5+n]...), b[5+n:]
	}
	return hs
}

// records cuts handshake bytes into records whose fragments have the
// given sizes in turn, the last size repeating.
func records(hs []byte, sizes ...int) []byte {
	var out []byte
	for i := 0; len(hs) > 0; i++ {
		n := min(sizes[min(i, len(sizes)-1)], len(hs))
		out = append(out, 22, 3, 1, byte(n>>8), byte(n))
		out, hs = append(out, hs[:n]...), hs[n:]
	}
	return out
}

// decides checks that b chooses want, and that every proper prefix of b
// (the bytes as they arrive one at a time) needs more or chooses want, and
// that once a prefix chooses, every longer one does too.
func decides(t *testing.T, tb *Table, what string, b []byte, want int) {
	t.Helper()
	if got := tb.Judge(b, false).Route; got != want {
		t.Fatalf("%s: whole (%d bytes) chose %d, want %d", what, len(b), got, want)
	}
	decided := false
	for i := range len(b) {
		got := tb.Judge(b[:i], false).Route
		switch {
		case got == NeedMore && !decided:
		case got == want:
			decided = true
		default:
			t.Fatalf("%s: first %d of %d bytes chose %d (decided before: %v), want %d", what, i, len(b), got, decided, want)
		}
	}
}

func TestRealHellos(t *testing.T) {
	tb := table(t)
	files, _ := filepath.Glob(filepath.Join("..", "sniff", "testdata", "*.bin"))
	if len(files) != len(hellos) {
		t.Fatalf("testdata has %d files, the test knows %d", len(files), len(hellos))
	}
	for file, want := range hellos {
		t.Run(file, func(t *testing.T) {
			b := readHello(t, file)
			decides(t, tb, "as sent", b, want)
			hs := handshake(t, b)
			for _, size := range []int{1, 2, 7, 100, 512, 1000} {
				decides(t, tb, "records of "+strconv.Itoa(size), records(hs, size), want)
			}
			for cut := 1; cut < len(hs); cut++ {
				if got := tb.Judge(records(hs, cut, len(hs)), false).Route; got != want {
					t.Fatalf("split into two records at %d: chose %d, want %d", cut, got, want)
				}
			}
			v := tb.Judge(b, false)
			if file != "openssl-no-sni.bin" && v.Hello.ServerName != "app.example.test" {
				t.Errorf("seen server name %q, want app.example.test", v.Hello.ServerName)
			}
		})
	}
}

func TestPlainProtocols(t *testing.T) {
	tb := table(t)
	for _, c := range []struct {
		what string
		b    string
		want int
	}{
		{"http host", "GET / HTTP/1.1\r\nHost: WWW.example.com:8080\r\n\r\n", 3},
		{"http wildcard with detect", "GET / HTTP/1.0\r\nHost: a.x\r\n\r\n", 6},
		{"http other host", "GET / HTTP/1.1\r\nHost: b.example.com\r\n\r\n", NoRoute},
		{"ssh", "SSH-2.0-OpenSSH_9.6\r\n", 5},
		{"proxy v1", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 5},
		{"proxy v2", "\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c", 5},
		{"smtp-like garbage", "EHLO mail.example.com\r\n", NoRoute},
		{"binary garbage", "\x00\x01\x02\x03\x04", NoRoute},
	} {
		t.Run(c.what, func(t *testing.T) {
			decides(t, tb, c.what, []byte(c.b), c.want)
		})
	}
}

func TestWildcardAndCase(t *testing.T) {
	tb, err := New([]Spec{{SNI: []string{"*.Example.org", "app.example.com"}}})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"a.example.org": true, "a.b.example.org": true, "example.org": false,
		"xexample.org": false, "app.example.com": true, "APP.example.com": true, "b.example.com": false,
	} {
		if got := anyName(tb.routes[0].sni, strings.ToLower(name)); got != want {
			t.Errorf("%s: matched %v, want %v", name, got, want)
		}
	}
}

func TestOrderAndEOF(t *testing.T) {
	tb, err := New([]Spec{{SNI: []string{"a.test"}}, {Detect: []string{"ssh"}}})
	if err != nil {
		t.Fatal(err)
	}
	// The first route waits for a whole hello; SSH is NoMatch for it
	// at once, so the second decides.
	if got := tb.Judge([]byte("SSH-2.0-"), false).Route; got != 1 {
		t.Errorf("ssh banner chose %d, want 1", got)
	}
	if got := tb.Judge([]byte("SSH-2"), false).Route; got != NeedMore {
		t.Errorf("a banner's start chose %d, want need-more", got)
	}
	if got := tb.Judge([]byte("SSH-2"), true).Route; got != NoRoute {
		t.Errorf("a banner's start at EOF chose %d, want no route", got)
	}
	if got := tb.Judge(nil, true).Route; got != NoRoute {
		t.Errorf("nothing at EOF chose %d, want no route", got)
	}
	if _, err := New([]Spec{{Detect: []string{"smtp"}}}); err == nil {
		t.Error("detect smtp accepted")
	}
}

func TestPeekLimit(t *testing.T) {
	tb := table(t)
	// A record header announcing the largest fragment, then garbage: a
	// proper start of a hello until MaxPeek bytes.
	b := append([]byte{22, 3, 1, 0x40, 0x00, 1, 0, 0x3f, 0xfc}, bytes.Repeat([]byte{7}, MaxPeek+10)...)
	if got := tb.Judge(b[:MaxPeek-1], false).Route; got != NeedMore {
		t.Fatalf("below the limit chose %d, want need-more (route 0 waits for the hello)", got)
	}
	if got := tb.Judge(b[:MaxPeek], false).Route; got != 4 {
		t.Fatalf("at the limit chose %d, want 4 (no hello: detect tls)", got)
	}
	noTLS, err := New([]Spec{{SNI: []string{"a.test"}}, {HTTPHost: []string{"a.test"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := noTLS.Judge(b[:MaxPeek-1], false).Route; got != NeedMore {
		t.Fatalf("below the limit chose %d, want need-more", got)
	}
	if got := noTLS.Judge(b[:MaxPeek], false).Route; got != NoRoute {
		t.Fatalf("at the limit chose %d, want no route", got)
	}
	if got := noTLS.Judge(b, false).Route; got != NoRoute {
		t.Fatalf("past the limit chose %d, want no route", got)
	}
	header := []byte("GET / HTTP/1.1\r\nX: " + strings.Repeat("y", MaxPeek))
	if got := noTLS.Judge(header, false).Route; got != NoRoute {
		t.Fatalf("an endless header chose %d, want no route", got)
	}
}

func TestALPN(t *testing.T) {
	tb, err := New([]Spec{{ALPN: []string{"HTTP/1.1"}, SNI: []string{"nope.test"}}, {ALPN: []string{"http/1.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	v := tb.Judge(readHello(t, "curl.bin"), false)
	if v.Route != 1 || !slices.Equal(v.Hello.ALPN, []string{"h2", "http/1.1"}) {
		t.Fatalf("curl's hello: %+v, want route 1 with its ALPN", v)
	}
	if got := tb.Judge(readHello(t, "go-crypto-tls.bin"), false).Route; got != NoRoute {
		t.Fatalf("a hello without ALPN chose %d", got)
	}
}

// TestJudgeAllocs: choosing by a hello that one record holds allocates
// only the strings of what it saw.
func TestJudgeAllocs(t *testing.T) {
	tb := table(t)
	b := readHello(t, "go-crypto-tls.bin")
	n := testing.AllocsPerRun(100, func() { tb.Judge(b, false) })
	if n > 1 {
		t.Errorf("Judge allocated %v times per call, want at most 1 (the server name)", n)
	}
}
