package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// shortTempDir returns a new temporary directory with a short path, removed
// when the test ends: a unix socket path must fit in 108 bytes, which
// t.TempDir's paths, named after the test, need not.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sluice-ops-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// startUnixEcho serves echo on a unix socket at path until the test ends.
func startUnixEcho(t *testing.T, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatalf("unix backend: %v", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex // guards conns
	conns := map[*net.UnixConn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := io.Copy(c, c); err == nil {
					_ = c.CloseWrite()
				}
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				_ = c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// leaveStaleSocket leaves a unix socket file at path that nobody listens
// on, as a process that died would.
func leaveStaleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	ln.SetUnlinkOnClose(false)
	_ = ln.Close()
	if _, err := net.Dial("unix", path); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial the stale socket %s: %v, want connection refused", path, err)
	}
}

// echoBulk sends size random bytes on c and half-closes while reading
// everything that comes back, and reports whether the echo matched.
func echoBulk(c interface {
	net.Conn
	CloseWrite() error
}, size int) error {
	data := make([]byte, size)
	_, _ = rand.Read(data)
	if err := c.SetDeadline(time.Now().Add(waitLimit)); err != nil {
		return err
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.CloseWrite()
		}
		wrote <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	if werr := <-wrote; werr != nil || err != nil {
		return fmt.Errorf("write: %v; read: %v", werr, err)
	}
	if sum := sha256.Sum256(data); n != int64(size) || !bytes.Equal(h.Sum(nil), sum[:]) {
		return fmt.Errorf("sent %d bytes (sha256 %x), got back %d (sha256 %x)", size, sum, n, h.Sum(nil))
	}
	return nil
}

// TestUnixSockets forwards a unix socket to a unix backend: bytes arrive
// exactly both ways, a stale socket file left at the listen path is
// replaced at start, a live one is not taken over, and a clean stop removes
// the socket file.
func TestUnixSockets(t *testing.T) {
	t.Parallel()
	dir := shortTempDir(t)
	bePath, inPath := filepath.Join(dir, "be.sock"), filepath.Join(dir, "in.sock")
	startUnixEcho(t, bePath)
	leaveStaleSocket(t, inPath)
	cfg := writeConfig(t, fmt.Sprintf("log_format = \"json\"\n\n[[rule]]\nname = \"local\"\nlisten = \"unix:%s\"\nbackends = [\"unix:%s\"]\n",
		inPath, bePath))
	p := startProc(t, nil, sluiceBin, "-c", cfg)
	if !p.waitListening("unix:" + inPath) {
		t.Fatalf("sluice did not start over the stale socket %s: %v\n%s", inPath, p.err, p.stderr())
	}

	const size = 1 << 20
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: inPath, Net: "unix"})
	if err != nil {
		t.Fatalf("dial %s: %v", inPath, err)
	}
	defer c.Close()
	if err := echoBulk(c, size); err != nil {
		t.Fatalf("through unix:%s: %v", inPath, err)
	}
	rec := p.wait("access line", isMsg("access"))
	if rec.str("client") != "unix" || rec.str("backend") != "unix:"+bePath ||
		rec.num("up") != size || rec.num("down") != size || rec.str("end") != "eof" {
		t.Errorf("access line %v: want client=unix backend=unix:%s up=down=%d end=eof", rec, bePath, size)
	}

	res := runSluice(t, nil, "-c", cfg)
	want := fmt.Sprintf("rule %q: listen unix:%s: address already in use", "local", inPath)
	if res.code != 1 || !strings.Contains(res.stderr, want) {
		t.Errorf("a second sluice on the live socket: %v\nwant exit 1 and %q", res, want)
	}
	c2, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: inPath, Net: "unix"})
	if err != nil {
		t.Fatalf("dial %s after the second sluice gave up: %v", inPath, err)
	}
	defer c2.Close()
	if err := echoBulk(c2, 4096); err != nil {
		t.Fatalf("after the second sluice gave up: %v", err)
	}

	p.signal(syscall.SIGTERM)
	if code, err := p.waitExit(waitLimit); code != 0 {
		t.Fatalf("sluice exit code %d (%v) after SIGTERM, want 0", code, err)
	}
	if _, err := os.Lstat(inPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file %s after a clean stop: %v, want it removed", inPath, err)
	}
}

// TestProxyProtocolChain runs two sluices: A sends a PROXY v2 header to B,
// which trusts A and allows only the client 127.0.0.5. A client dialing A
// from 127.0.0.5 reaches the backend and both access lines name it, though
// B's real peer is A on 127.0.0.1; a client from 127.0.0.7 is denied by B
// on the address in the header; a trusted sender that sends no header is
// refused.
func TestProxyProtocolChain(t *testing.T) {
	t.Parallel()
	be := startBackend(t, echo)
	pb, b, _ := launchOps(t, 1, func(a []string) string {
		return fmt.Sprintf("log_format = \"json\"\n\n[[rule]]\nname = \"inner\"\nlisten = %q\nbackends = [%q]\n"+
			"accept_proxy_protocol = [\"127.0.0.1/32\"]\nallow = [\"127.0.0.5/32\"]\n", a[0], be.addr)
	}, nil)
	pa, a, _ := launchOps(t, 1, func(a []string) string {
		return fmt.Sprintf("log_format = \"json\"\n\n[[rule]]\nname = \"outer\"\nlisten = %q\nbackends = [%q]\nproxy_protocol = \"v2\"\n",
			a[0], b[0])
	}, nil)

	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 5)}, Timeout: waitLimit}
	conn, err := d.Dial("tcp", a[0])
	if err != nil {
		t.Fatalf("dial %s from 127.0.0.5: %v", a[0], err)
	}
	c := conn.(*net.TCPConn)
	defer c.Close()
	const msg = "through two sluices\n"
	if err := roundTrip(c, msg); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := readEnd(c); n != 0 || err != nil {
		t.Fatalf("end: %d bytes, %v; want EOF", n, err)
	}
	for _, tc := range []struct {
		who     string
		p       *proc
		backend string
	}{{"B", pb, be.addr}, {"A", pa, b[0]}} {
		rec := tc.p.waitAccess(c) // the client is 127.0.0.5:PORT
		if rec.str("backend") != tc.backend || rec.str("end") != "eof" ||
			rec.num("up") != int64(len(msg)) || rec.num("down") != int64(len(msg)) {
			t.Errorf("%s's access line %v: want client %s backend %s end=eof up=down=%d",
				tc.who, rec, c.LocalAddr(), tc.backend, len(msg))
		}
	}

	checkProxyRefusals(t, pb, a[0], b[0])
}

// checkProxyRefusals checks the refusals of the PROXY chain: B denies a
// client that A names in its header, and refuses a trusted sender that
// sends no header.
func checkProxyRefusals(t *testing.T, pb *proc, a, b string) {
	t.Helper()
	// Each client dials from an IP of its own, so that no two of them can
	// share a client address in B's log. A passes B's reset on to the
	// client at once, so the reset may already fail the connect.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 7)}, Timeout: waitLimit}
	conn, err := d.Dial("tcp", a)
	if err == nil {
		n, rerr := readEnd(conn)
		_ = conn.Close()
		if n != 0 || isTimeout(rerr) {
			t.Errorf("client from 127.0.0.7: %d bytes, %v; want it closed", n, rerr)
		}
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("dial %s from 127.0.0.7: %v", a, err)
	}
	rec := pb.wait("B's access line for 127.0.0.7", func(r record) bool {
		return r.str("msg") == "access" && strings.HasPrefix(r.str("client"), "127.0.0.7:")
	})
	if rec.str("end") != "rejected:denied" {
		t.Errorf("B's access line %v: want end=rejected:denied for the client named in the header", rec)
	}

	bare := dial(t, b) // from 127.0.0.1, which B trusts to send a header
	if _, err := io.WriteString(bare, "GET / HTTP/1.0\r\n\r\n"); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatal(err)
	}
	if n, err := readEnd(bare); n != 0 || isTimeout(err) {
		t.Errorf("trusted sender without a header: %d bytes, %v; want it closed", n, err)
	}
	if rec := pb.waitAccess(bare); rec.str("end") != "rejected:proxy-protocol" {
		t.Errorf("B's access line %v: want end=rejected:proxy-protocol", rec)
	}
}
