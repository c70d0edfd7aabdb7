package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// transfer is one side's account of a two-way transfer: what it sent and
// what it received, counted and hashed.
type transfer struct {
	sent, recv   [sha256.Size]byte
	nSent, nRecv int64
	err          error
}

// exchange sends size random bytes on c and half-closes, while reading c
// until EOF; both streams are hashed on the fly. A transfer that has not
// finished within limit fails through the connection deadline.
func exchange(c *net.TCPConn, size int64, limit time.Duration) transfer {
	var tr transfer
	if err := c.SetDeadline(time.Now().Add(limit)); err != nil {
		tr.err = err
		return tr
	}
	sent := make(chan error, 1)
	go func() {
		h := sha256.New()
		n, err := io.Copy(c, io.TeeReader(io.LimitReader(rand.Reader, size), h))
		tr.nSent = n
		copy(tr.sent[:], h.Sum(nil))
		if err == nil {
			err = c.CloseWrite()
		}
		sent <- err
	}()
	h := sha256.New()
	n, rerr := io.Copy(h, c)
	tr.nRecv = n
	copy(tr.recv[:], h.Sum(nil))
	serr := <-sent
	tr.err = errors.Join(serr, rerr)
	return tr
}

// TestBulkBothWays moves 256 MiB of random data each way at once through
// sluice and checks both streams byte for byte by SHA-256, and the byte
// counts of the access line.
func TestBulkBothWays(t *testing.T) {
	const size = 256 << 20
	const limit = 3 * time.Minute // a hang fails here instead of at go test's timeout
	backendDone := make(chan transfer, 1)
	be := startBackend(t, func(c *net.TCPConn) {
		select {
		case backendDone <- exchange(c, size, limit):
		default: // not the test's connection
		}
	})
	p, addr := launchQuick(t, sluiceBin, nil, be.addr)

	c := dial(t, addr)
	start := time.Now()
	client := exchange(c, size, limit)
	var server transfer
	select {
	case server = <-backendDone:
	case <-time.After(waitLimit):
		t.Fatalf("backend did not finish its transfer")
	}
	elapsed := time.Since(start)
	if client.err != nil || server.err != nil {
		t.Fatalf("transfer failed: client: %v; backend: %v", client.err, server.err)
	}
	for _, tc := range []struct {
		dir                string
		nSent, nRecv       int64
		sentHash, recvHash [sha256.Size]byte
	}{
		{"up (client→backend)", client.nSent, server.nRecv, client.sent, server.recv},
		{"down (backend→client)", server.nSent, client.nRecv, server.sent, client.recv},
	} {
		if tc.nSent != size || tc.nRecv != size {
			t.Errorf("%s: sent %d bytes, received %d, want %d", tc.dir, tc.nSent, tc.nRecv, size)
		}
		if tc.sentHash != tc.recvHash {
			t.Errorf("%s: SHA-256 sent %x, received %x", tc.dir, tc.sentHash, tc.recvHash)
		}
	}
	_ = c.Close()
	rec := p.waitAccess(c)
	if rec.num("up") != size || rec.num("down") != size || rec.str("end") != "eof" {
		t.Errorf("access line %v: want up=down=%d end=eof", rec, size)
	}
	t.Logf("moved 2×%d MiB in %v (%.0f MiB/s each way, race=%v)",
		size>>20, elapsed.Round(time.Millisecond), float64(size>>20)/elapsed.Seconds(), raceEnabled)
}

// TestHalfCloseClientFirst: the client sends, half-closes and only then gets
// the backend's answer, which proves the backend→client direction outlives
// the client's FIN and that the FIN reached the backend.
func TestHalfCloseClientFirst(t *testing.T) {
	t.Parallel()
	be := startBackend(t, answerAfterEOF)
	p, addr := launchQuick(t, sluiceBin, nil, be.addr)
	c := dial(t, addr)

	payload := make([]byte, 1<<20)
	if _, err := rand.Read(payload); err != nil {
		t.Fatal(err)
	}
	if err := c.SetWriteDeadline(time.Now().Add(waitLimit)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(payload); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatalf("close write: %v", err)
	}
	answer, err := readLine(c)
	if err != nil {
		t.Fatalf("no answer after half-close: %v", err)
	}
	want := fmt.Sprintf("%d %x\n", len(payload), sha256.Sum256(payload))
	if answer != want {
		t.Fatalf("backend answered %q, want %q", answer, want)
	}
	if n, err := readEnd(c); n != 0 || err != nil {
		t.Fatalf("after the answer: %d more bytes, %v; want a clean EOF", n, err)
	}
	rec := p.waitAccess(c)
	if rec.str("end") != "eof" || rec.num("up") != int64(len(payload)) || rec.num("down") != int64(len(want)) {
		t.Errorf("access line %v: want end=eof up=%d down=%d", rec, len(payload), len(want))
	}
}

// TestHalfCloseBackendFirst: the backend greets and half-closes; the client
// sees the greeting and EOF, then keeps sending, and every byte still
// reaches the backend.
func TestHalfCloseBackendFirst(t *testing.T) {
	t.Parallel()
	be, conns := startHandoffBackend(t)
	p, addr := launchQuick(t, sluiceBin, nil, be.addr)
	c := dial(t, addr)
	bc := next(t, conns)

	const greeting = "hello, then FIN\n"
	if _, err := io.WriteString(bc, greeting); err != nil {
		t.Fatal(err)
	}
	if err := bc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(c)
	if err != nil || got != greeting {
		t.Fatalf("client read %q, %v; want %q then EOF", got, err, greeting)
	}

	received := make(chan transfer, 1)
	go func() {
		h := sha256.New()
		_ = bc.SetReadDeadline(time.Now().Add(waitLimit))
		n, err := io.Copy(h, bc)
		var tr transfer
		tr.nRecv, tr.err = n, err
		copy(tr.recv[:], h.Sum(nil))
		received <- tr
	}()
	if err := c.SetWriteDeadline(time.Now().Add(waitLimit)); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	chunk := make([]byte, 16<<10)
	const chunks = 64
	for i := 0; i < chunks; i++ {
		if _, err := rand.Read(chunk); err != nil {
			t.Fatal(err)
		}
		h.Write(chunk)
		if _, err := c.Write(chunk); err != nil {
			t.Fatalf("write %d after the backend's FIN: %v", i, err)
		}
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	tr := <-received
	if tr.err != nil || tr.nRecv != chunks*int64(len(chunk)) || tr.recv != [sha256.Size]byte(h.Sum(nil)) {
		t.Fatalf("backend received %d bytes (sha256 %x), %v; want %d bytes, sha256 %x, EOF",
			tr.nRecv, tr.recv, tr.err, chunks*len(chunk), h.Sum(nil))
	}
	_ = bc.Close()
	rec := p.waitAccess(c)
	if rec.str("end") != "eof" || rec.num("up") != tr.nRecv || rec.num("down") != int64(len(greeting)) {
		t.Errorf("access line %v: want end=eof up=%d down=%d", rec, tr.nRecv, len(greeting))
	}
}

// readAll reads c until EOF within waitLimit.
func readAll(c net.Conn) (string, error) {
	if err := c.SetReadDeadline(time.Now().Add(waitLimit)); err != nil {
		return "", err
	}
	defer c.SetReadDeadline(time.Time{})
	var sb strings.Builder
	_, err := io.Copy(&sb, c)
	return sb.String(), err
}

// TestResetPropagates: a reset on either side reaches the other side as a
// reset, not as a clean EOF, and the access line says end=reset.
func TestResetPropagates(t *testing.T) {
	t.Parallel()
	be, conns := startHandoffBackend(t)
	p, addr := launchQuick(t, sluiceBin, nil, be.addr)

	for _, side := range []string{"backend", "client"} {
		t.Run("from "+side, func(t *testing.T) {
			c := dial(t, addr)
			bc := next(t, conns)
			if _, err := io.WriteString(c, "x"); err != nil {
				t.Fatal(err)
			}
			if err := readExactly(bc, "x"); err != nil {
				t.Fatalf("backend: %v", err)
			}
			reset, other := bc, net.Conn(c)
			if side == "client" {
				reset, other = c, bc
			}
			if err := reset.SetLinger(0); err != nil {
				t.Fatal(err)
			}
			_ = reset.Close() // with linger 0: RST
			if _, err := readEnd(other); !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("other side read %v, want ECONNRESET", err)
			}
			if rec := p.waitAccess(c); rec.str("end") != "reset" {
				t.Errorf("access line %v: want end=reset", rec)
			}
		})
	}
}

// readExactly reads len(want) bytes from c within waitLimit and compares.
func readExactly(c net.Conn, want string) error {
	if err := c.SetReadDeadline(time.Now().Add(waitLimit)); err != nil {
		return err
	}
	defer c.SetReadDeadline(time.Time{})
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != want {
		return fmt.Errorf("read %q, want %q", got, want)
	}
	return nil
}
