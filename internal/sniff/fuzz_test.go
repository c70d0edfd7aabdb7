package sniff

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// cuts returns the prefix lengths of an n-byte input a fuzz target checks:
// every one for a short input, about a hundred spread out for a long one.
func cuts(n int) []int {
	step := max(1, n/100)
	var out []int
	for i := 0; i < n; i += step {
		out = append(out, i)
	}
	return append(out, max(0, n-1))
}

// FuzzClientHello checks that no input panics and that a verdict other
// than need-more on a prefix is the verdict, and the answer, on the whole.
func FuzzClientHello(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.bin"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(handshake(1, helloBody(vec16(sniExt("a.example")...))))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, v := ClientHello(b)
		if v == Match && TLS(b) != Match {
			t.Fatalf("a hello whose first record TLS refuses: %+v", h)
		}
		for _, i := range cuts(len(b)) {
			hp, vp := ClientHello(b[:i])
			if vp != NeedMore && (vp != v || hp.ServerName != h.ServerName || !slices.Equal(hp.ALPN, h.ALPN)) {
				t.Fatalf("first %d bytes: %+v, %v; all %d: %+v, %v", i, hp, vp, len(b), h, v)
			}
		}
	})
}

// FuzzHTTPHost checks HTTPHost as FuzzClientHello checks ClientHello.
func FuzzHTTPHost(f *testing.F) {
	f.Add([]byte(curlRequest))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"))
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.0\nhost: A\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		host, v := HTTPHost(b)
		for _, i := range cuts(len(b)) {
			hp, vp := HTTPHost(b[:i])
			if vp != NeedMore && (vp != v || hp != host) {
				t.Fatalf("first %d bytes: %q, %v; all %d: %q, %v", i, hp, vp, len(b), host, v)
			}
		}
	})
}

// FuzzPrefixes checks SSH, Proxy and TLS as FuzzClientHello checks
// ClientHello.
func FuzzPrefixes(f *testing.F) {
	f.Add([]byte("SSH-2.0-x\r\n"))
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"))
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x21"))
	f.Add([]byte("\x16\x03\x01\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, fn := range []func([]byte) Verdict{SSH, Proxy, TLS} {
			v := fn(b)
			for i := range min(len(b), 20) {
				if vp := fn(b[:i]); vp != NeedMore && vp != v {
					t.Fatalf("first %d bytes: %v; all %d: %v", i, vp, len(b), v)
				}
			}
		}
	})
}
