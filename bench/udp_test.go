package main

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// startUDPRelay runs an in-process UDP relay from a loopback port to
// backend, one upstream socket per client. With truncate it drops the last
// byte of every datagram it passes on, both ways.
func startUDPRelay(t *testing.T, backend string, truncate bool) string {
	t.Helper()
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetReadBuffer(udpBufSize)
	var wg sync.WaitGroup
	var mu sync.Mutex // guards ups
	ups := map[netip.AddrPort]*net.UDPConn{}
	cut := func(p []byte) []byte {
		if truncate && len(p) > 0 {
			return p[:len(p)-1]
		}
		return p
	}
	wg.Go(func() {
		buf := make([]byte, 1<<16)
		for {
			n, from, err := ln.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			mu.Lock()
			up := ups[from]
			if up == nil {
				if up, err = dialUDP(backend); err != nil {
					mu.Unlock()
					continue
				}
				ups[from] = up
				wg.Go(func() {
					rbuf := make([]byte, 1<<16)
					for {
						n, err := up.Read(rbuf)
						if err != nil {
							return
						}
						ln.WriteToUDPAddrPort(cut(rbuf[:n]), from)
					}
				})
			}
			mu.Unlock()
			up.Write(cut(buf[:n]))
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, up := range ups {
			up.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.LocalAddr().String()
}

// runUDPFigure runs fig directly or through a relay in front of a fresh
// backend and returns the verdict as measureUDP would.
func runUDPFigure(t *testing.T, fig figure, relay string) (result, error) {
	t.Helper()
	be, err := startUDPBackend(fig.backend)
	if err != nil {
		t.Fatal(err)
	}
	defer be.close()
	addr := be.addr()
	switch relay {
	case "good":
		addr = startUDPRelay(t, addr, false)
	case "truncate":
		addr = startUDPRelay(t, addr, true)
	}
	out, err := fig.run(context.Background(), env{addr: addr, d: testDuration, udp: be})
	return out, errors.Join(err, be.failure())
}

// TestUDPFiguresThroughFaithfulPaths expects plausible values directly and
// through a faithful relay.
func TestUDPFiguresThroughFaithfulPaths(t *testing.T) {
	for _, fig := range udpFigures() {
		for _, path := range []string{"direct", "good"} {
			t.Run(fig.name+"/"+path, func(t *testing.T) {
				out, err := runUDPFigure(t, fig, path)
				if err != nil {
					t.Fatal(err)
				}
				if len(out.values) != fig.runRows() || !(out.values[0] > 0) {
					t.Fatalf("values %v for rows %v", out.values, fig.rows)
				}
			})
		}
	}
}

// TestUDPFiguresCatchTruncation expects every UDP figure to fail through a
// relay that shortens datagrams.
func TestUDPFiguresCatchTruncation(t *testing.T) {
	for _, fig := range udpFigures() {
		t.Run(fig.name, func(t *testing.T) {
			_, err := runUDPFigure(t, fig, "truncate")
			if err == nil {
				t.Fatal("a truncating relay passed")
			}
			if !strings.Contains(err.Error(), "bytes") {
				t.Errorf("error %q does not say what was wrong", err)
			}
		})
	}
}

// TestDatagramCheck covers the sink's check of sizes and patterns.
func TestDatagramCheck(t *testing.T) {
	p := make([]byte, 100)
	fillDatagram(p, 3, 77)
	if err := checkDatagram(p); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{p[:99], p[:10], flipped(p, 50), flipped(p, 7), flipped(p, 15)} {
		if checkDatagram(bad) == nil {
			t.Errorf("a bad datagram of %d bytes passed", len(bad))
		}
	}
	if err := checkDatagram(flipped(p, 50)); err == nil || !strings.Contains(err.Error(), "byte 50 differs") {
		t.Errorf("flipped byte 50: got %v", err)
	}
	big := make([]byte, 65507)
	fillDatagram(big, 255, 1<<40+255)
	if err := checkDatagram(big); err != nil {
		t.Errorf("largest datagram: %v", err)
	}
}

// flipped returns a copy of p with byte i changed.
func flipped(p []byte, i int) []byte {
	q := append([]byte(nil), p...)
	q[i] ^= 0x40
	return q
}

// TestRelaysDecidesColumns checks which forwarders take part in which
// figures.
func TestRelaysDecidesColumns(t *testing.T) {
	argv := func(_, _, _ string) ([]string, error) { return nil, nil }
	tcpFig, udpFig := figure{}, figure{udp: true}
	for _, tc := range []struct {
		f        forwarder
		tcp, udp bool
	}{
		{forwarder{name: "direct"}, true, true},
		{forwarder{name: "haproxy", argv: argv}, true, false},
		{forwarder{name: "nginx", argv: argv, udpArgv: argv}, true, true},
		{forwarder{name: "socat", udpArgv: argv}, false, true},
	} {
		if tc.f.relays(tcpFig) != tc.tcp || tc.f.relays(udpFig) != tc.udp {
			t.Errorf("%s: relays tcp %v, udp %v", tc.f.name, tc.f.relays(tcpFig), tc.f.relays(udpFig))
		}
	}
}

// TestUDPPeers runs the UDP figures through sluice (built from this module)
// and the installed peers, which checks their generated configurations end
// to end.
func TestUDPPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds sluice and runs the peer forwarders")
	}
	nofile, err := raiseFileLimit(1024)
	if err != nil {
		t.Fatal(err)
	}
	fwds, skipped, err := setupForwarders(context.Background(), setupOptions{
		only: map[string]bool{"sluice": true, "nginx": true, "socat": true}, tmp: t.TempDir(), maxConns: 1024, nofile: nofile,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range skipped {
		t.Log(s)
	}
	r := testRunner(t, fwds[1:]...)
	res, err := r.run(context.Background(), udpFigures())
	if err != nil {
		t.Fatal(err)
	}
	checkClean(t, res)
}

// TestUDPSessionsOpenOneAtATime: the request/response figure opens its
// sessions one after another, each with a round trip, before the clock
// starts. socat's forking listener connects its socket to a new client and
// hands it to a child, and a datagram of another client that arrives
// meanwhile goes along: clients whose first requests arrive together get
// one another's answers (seen as "echo came back different" for socat on a
// busy machine). The forwarder here is an echo that answers a new client's
// first request late and counts the new clients that came while another
// one waited for its first answer.
func TestUDPSessionsOpenOneAtATime(t *testing.T) {
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex // guards the following variables
	seen := map[netip.AddrPort]bool{}
	opening, overlaps := 0, 0
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, from, err := ln.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			msg := slices.Clone(buf[:n])
			mu.Lock()
			if seen[from] {
				mu.Unlock()
				ln.WriteToUDPAddrPort(msg, from)
				continue
			}
			seen[from] = true
			if opening > 0 {
				overlaps++
			}
			opening++
			mu.Unlock()
			time.AfterFunc(100*time.Millisecond, func() {
				mu.Lock()
				opening--
				mu.Unlock()
				ln.WriteToUDPAddrPort(msg, from)
			})
		}
	}()
	out, err := udpReqResp(context.Background(), env{addr: ln.LocalAddr().String(), d: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if overlaps != 0 || len(seen) != udpRRSockets {
		t.Fatalf("%d of %d clients sent their first request while another waited for its first answer; want 0 of %d",
			overlaps, len(seen), udpRRSockets)
	}
	if out.values[0] <= 0 {
		t.Fatalf("no round trip after the sessions opened: %v", out.values)
	}
}
