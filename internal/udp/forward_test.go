package udp

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
)

// ioModes runs a test with the batched I/O (where there is one) and the
// portable one.
func ioModes(t *testing.T, test func(t *testing.T, portable bool)) {
	t.Run("batched", func(t *testing.T) { test(t, false) })
	t.Run("portable", func(t *testing.T) { test(t, true) })
}

// forEach runs fn(i) for i in [0, n) on at most width goroutines and
// returns the errors.
func forEach(n, width int, fn func(i int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	sem := make(chan struct{}, width)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = fn(i)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// TestRequestResponseManyClients is DNS-like traffic: 500 client sockets
// each ask twice; every answer comes back to its asker from the listening
// address, both backends take sessions, and a client's second question goes
// to the backend its first did.
func TestRequestResponseManyClients(t *testing.T) {
	ioModes(t, func(t *testing.T, portable bool) {
		a := startBackend(t, "127.0.0.1", tagged("a"))
		b := startBackend(t, "127.0.0.1", tagged("b"))
		f := start(t, options{portable: portable, cfg: backends("round-robin", a.addr(), b.addr())})
		const clients = 500
		conns := make([]*net.UDPConn, clients)
		for i := range conns {
			conns[i] = client(t, "")
		}
		first := make([]string, clients)
		ask := func(i int, round int) (string, error) {
			q := fmt.Sprintf("query %d.%d", i, round)
			got, err := f.exchange(conns[i], f.addr, []byte(q), make([]byte, 512), func(got []byte) bool {
				tag, rest, _ := strings.Cut(string(got), ":")
				return rest == q && (tag == "a" || tag == "b")
			})
			if err != nil {
				return "", err
			}
			tag, _, _ := strings.Cut(string(got), ":")
			return tag, nil
		}
		err := forEach(clients, 32, func(i int) (err error) {
			first[i], err = ask(i, 1)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if st := f.svc.Stats(); st.Sessions != clients || f.table.Len() != clients {
			t.Fatalf("%d sessions, %d in the table; want %d", st.Sessions, f.table.Len(), clients)
		}
		if na, nb := a.sourceCount(), b.sourceCount(); na+nb != clients || na < clients/4 || nb < clients/4 {
			t.Fatalf("backends saw %d and %d sessions; want %d split between them", na, nb, clients)
		}
		err = forEach(clients, 32, func(i int) error {
			tag, err := ask(i, 2)
			if err == nil && tag != first[i] {
				err = fmt.Errorf("client %d: second answer from %s, first from %s", i, tag, first[i])
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if f.lossFree() {
			waitFor(t, "the last datagrams to be counted", func() bool {
				st := f.svc.Stats()
				return st.DatagramsUp == 2*clients && st.DatagramsDown == 2*clients
			})
			if st := f.svc.Stats(); st.DatagramsUp != 2*clients || st.Dropped != 0 {
				t.Fatalf("stats %+v: want %d datagrams each way, none dropped", st, 2*clients)
			}
		}
	})
}

// TestDatagramsPassUnchanged sends datagrams of random sizes from zero to
// 65,507 bytes (the largest over IPv4), with both ends of the range
// included, through an echo backend and checks every byte of every reply.
func TestDatagramsPassUnchanged(t *testing.T) {
	ioModes(t, func(t *testing.T, portable bool) {
		total := 10_000
		if testing.Short() {
			total = 2_000
		}
		const senders = 4
		echoer := startBackend(t, "127.0.0.1", echo)
		f := start(t, options{portable: portable, cfg: backends("", echoer.addr())})
		err := forEach(senders, senders, func(k int) error {
			c := client(t, "")
			rng := rand.New(rand.NewPCG(uint64(k), 42))
			var seed [32]byte
			seed[0] = byte(k)
			fill := rand.NewChaCha8(seed)
			out, in := make([]byte, 65_507), make([]byte, slotSize)
			for i := range total / senders {
				size := rng.IntN(65_508)
				switch i {
				case 0:
					size = 0
				case 1:
					size = 65_507
				}
				msg := out[:size]
				fill.Read(msg)
				if _, err := f.exchange(c, f.addr, msg, in, equal(msg)); err != nil {
					return fmt.Errorf("sender %d, datagram %d of %d bytes: %w (stats %+v)", k, i, size, err, f.svc.Stats())
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if f.lossFree() {
			waitFor(t, "the last datagrams to be counted", func() bool {
				st := f.svc.Stats()
				return st.DatagramsUp == int64(total) && st.DatagramsDown == int64(total)
			})
			if st := f.svc.Stats(); st.DatagramsUp != int64(total) || st.BytesUp != st.BytesDown || st.Dropped != 0 {
				t.Fatalf("stats %+v: want %d datagrams each way, the same bytes, none dropped", st, total)
			}
		}
	})
}

// TestIPv6AndDualStack forwards over IPv6, and from a dual-stack listener
// (IPv4 clients arrive as mapped addresses) to an IPv4 backend; replies come
// from the listening address and the client is logged as plain IPv4.
func TestIPv6AndDualStack(t *testing.T) {
	for _, tc := range []struct{ name, listen, client, backend string }{
		{"ipv6", "::1", "::1", "::1"},
		{"dual stack", "::", "127.0.0.1", "127.0.0.1"},
		{"ipv6 to ipv4", "::1", "::1", "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := startBackend(t, tc.backend, echo)
			f := start(t, options{listen: tc.listen, cfg: backends("", be.addr()), rule: Rule{SessionTimeout: 50 * 1e6}})
			c := client(t, tc.client)
			to := f.addr
			if tc.listen == "::" {
				to = &net.UDPAddr{IP: net.ParseIP(tc.client), Port: f.addr.Port}
			}
			if _, err := f.exchange(c, to, []byte("hello"), make([]byte, 64), equal([]byte("hello"))); err != nil {
				t.Fatal(err)
			}
			rec := f.logs.waitN(t, 1, "the session's access line", accessOf(c.LocalAddr(), "idle-timeout"))[0]
			if rec.Attrs["backend"] != be.addr().String() || (f.lossFree() && (rec.Int(t, "up") != 5 || rec.Int(t, "down") != 5)) {
				t.Fatalf("access line %v", rec.Attrs)
			}
		})
	}
}

// TestLargeDatagramOverIPv6 passes a datagram larger than any IPv4 one.
func TestLargeDatagramOverIPv6(t *testing.T) {
	be := startBackend(t, "::1", echo)
	f := start(t, options{listen: "::1", cfg: backends("", be.addr())})
	c := client(t, "::1")
	msg := bytes.Repeat([]byte("0123456789abcdef"), 65_527/16)
	msg = append(msg, "0123456"...)
	if _, err := f.exchange(c, f.addr, msg, make([]byte, slotSize), equal(msg)); err != nil {
		t.Fatal(err)
	}
}
