package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
)

// TestMain lets the test binary double as a forwarder process:
// "bench.test relay MODE LISTEN BACKEND [CERT KEY]" runs serveRelay until
// killed, terminating TLS with CERT and KEY if given, and "bench.test
// refuse MESSAGE" prints MESSAGE and exits 1, as a forwarder refusing its
// configuration does.
func TestMain(m *testing.M) {
	switch {
	case len(os.Args) == 3 && os.Args[1] == "refuse":
		fmt.Fprintln(os.Stderr, os.Args[2])
		os.Exit(1)
	case (len(os.Args) == 5 || len(os.Args) == 7) && os.Args[1] == "relay":
		ln, err := net.Listen("tcp", os.Args[3])
		if err == nil && len(os.Args) == 7 {
			ln, err = tlsListener(ln, os.Args[5], os.Args[6])
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "relay:", err)
			os.Exit(1)
		}
		serveRelay(ln, os.Args[4], relayMode(os.Args[2]))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// tlsListener wraps ln in a TLS server with the certificate in certFile
// and keyFile: the test relay then terminates TLS.
func tlsListener(ln net.Listener, certFile, keyFile string) (net.Listener, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}}), nil
}

// relayMode picks how the test relay misbehaves.
type relayMode string

const (
	relayGood        relayMode = "good"        // relays faithfully, half-close included
	relayFlip        relayMode = "flip"        // flips one byte in each direction of each connection, at different offsets
	relayNoHalfClose relayMode = "nohalfclose" // closes both sides when either sends FIN
)

// flipUp and flipDown are the offsets of the bytes a flip relay corrupts
// going up (client to backend) and down: early enough for a 64-byte echo,
// and different, so that an echo does not undo the damage.
const (
	flipUp   = 40
	flipDown = 41
)

// startRelay runs an in-process relay from a loopback port to backend.
func startRelay(t *testing.T, backend string, mode relayMode) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		serveRelay(ln, backend, mode)
		close(done)
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

// serveRelay relays every connection accepted on ln to backend until ln is
// closed, and then waits for the open connections to end.
func serveRelay(ln net.Listener, backend string, mode relayMode) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Go(func() { relayConn(c.(halfConn), backend, mode) })
	}
}

// relayConn relays one connection both ways.
func relayConn(c halfConn, backend string, mode relayMode) {
	defer c.Close()
	b, err := dialTCP(context.Background(), backend)
	if err != nil {
		return
	}
	defer b.Close()
	var wg sync.WaitGroup
	wg.Go(func() { relayHalf(b, c, mode, flipUp) })
	relayHalf(c, b, mode, flipDown)
	wg.Wait()
}

// relayHalf copies src to dst and passes src's FIN on, or, for
// relayNoHalfClose, closes both connections. A flip relay corrupts the
// byte at offset flip.
func relayHalf(dst, src halfConn, mode relayMode, flip int64) {
	var r io.Reader = src
	if mode == relayFlip {
		r = &flipReader{r: src, at: flip}
	}
	io.Copy(dst, r)
	if mode == relayNoHalfClose {
		dst.Close()
		src.Close()
		return
	}
	dst.CloseWrite()
}

// flipReader flips one bit of the byte at offset at of its stream.
type flipReader struct {
	r   io.Reader
	at  int64
	off int64
}

// Read reads from the underlying reader, corrupting byte at.
func (f *flipReader) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	if i := f.at - f.off; i >= 0 && i < int64(n) {
		b[i] ^= 0x01
	}
	f.off += int64(n)
	return n, err
}

// testBackends starts the bench's backends for one test.
func testBackends(t *testing.T) *backends {
	t.Helper()
	bk, _, _ := testTLS(t)
	return bk
}

// testTLS starts the bench's backends for one test and returns them with
// their certificate and the clients' TLS settings.
func testTLS(t *testing.T) (*backends, *tlsMaterial, *tlsClient) {
	t.Helper()
	m := testTLSMaterial(t)
	bk, err := startBackends(m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bk.close)
	tlsc, err := newTLSClient(m)
	if err != nil {
		t.Fatal(err)
	}
	return bk, m, tlsc
}

// testTLSMaterial makes the bench's certificate for one test.
func testTLSMaterial(t *testing.T) *tlsMaterial {
	t.Helper()
	m, err := newTLSMaterial(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return m
}
