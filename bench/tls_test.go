package main

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"strings"
	"testing"
)

// tlsFigureByName returns the TLS figure called name.
func tlsFigureByName(t *testing.T, name string) figure {
	t.Helper()
	for _, f := range tlsFigures() {
		if f.name == name {
			return f
		}
	}
	t.Fatalf("no TLS figure %q", name)
	return figure{}
}

// TestClientHelloIsReal: the captured record is a ClientHello that a TLS
// server reads, with the server name the routes match.
func TestClientHelloIsReal(t *testing.T) {
	_, _, tlsc := testTLS(t)
	got := make(chan string, 1)
	client, server := net.Pipe()
	defer server.Close()
	go func() {
		cfg := &tls.Config{GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			got <- hi.ServerName
			return nil, os.ErrClosed // stop here
		}}
		_ = tls.Server(server, cfg).Handshake()
	}()
	go func() {
		client.Write(tlsc.hello)
		client.Close()
	}()
	if name := <-got; name != sniTarget {
		t.Fatalf("server name %q, want %q", name, sniTarget)
	}
}

// TestTLSFiguresThroughFaithfulPaths runs the TLS figures that need no
// process directly and through a faithful in-process relay (a TLS
// terminating one for termination), and expects clean, plausible values
// and, for termination, the pinned negotiation.
func TestTLSFiguresThroughFaithfulPaths(t *testing.T) {
	bk, m, tlsc := testTLS(t)
	for _, fig := range tlsFigures() {
		if fig.needsProc {
			continue
		}
		for _, path := range []string{"direct", "relay"} {
			t.Run(fig.name+"/"+path, func(t *testing.T) {
				addr := bk.addr(fig.tls.direct)
				if path == "relay" {
					addr = startRelay(t, bk.addr(fig.backend), relayGood)
					if fig.tls.mode == terminate {
						addr = startTLSRelay(t, m, bk.addr(fig.backend))
					}
				}
				out, err := verdict(context.Background(), bk, fig.run, env{addr: addr, d: testDuration, tls: tlsc})
				if err != nil {
					t.Fatal(err)
				}
				if len(out.values) != fig.runRows() {
					t.Fatalf("%d values for %d rows", len(out.values), fig.runRows())
				}
				for i, rw := range fig.rows[:fig.runRows()] {
					if v := out.values[i]; rw.cmp == plain && v != 0 || rw.cmp != plain && !(v > 0) {
						t.Errorf("%s = %v", rw.label, v)
					}
				}
				for _, n := range out.notes {
					if n != "negotiated TLS 1.3, X25519, TLS_AES_128_GCM_SHA256" {
						t.Errorf("note %q", n)
					}
				}
			})
		}
	}
}

// startTLSRelay runs an in-process relay that terminates TLS with m's
// certificate and relays plaintext to backend.
func startTLSRelay(t *testing.T, m *tlsMaterial, backend string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln, err := tlsListener(ln, m.certFile, m.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		serveRelay(tln, backend, relayGood)
		close(done)
	}()
	t.Cleanup(func() {
		tln.Close()
		<-done
	})
	return ln.Addr().String()
}

// TestPassthroughCatchesMisrouting: a forwarder that sends the clients to
// another route's backend fails the figure, which names the route.
func TestPassthroughCatchesMisrouting(t *testing.T) {
	bk, _, tlsc := testTLS(t)
	for _, name := range []string{"sni passthrough 1 stream", "sni passthrough new connections"} {
		t.Run(name, func(t *testing.T) {
			fig := tlsFigureByName(t, name)
			addr := startRelay(t, bk.addr(decoyTwoBackend), relayGood)
			_, err := verdict(context.Background(), bk, fig.run, env{addr: addr, d: testDuration, tls: tlsc})
			if err == nil || !strings.Contains(err.Error(), `backend of route "two.bench.test"`) {
				t.Fatalf("got %v, want the decoy's complaint", err)
			}
		})
	}
}

// TestTLSFiguresCatchCorruption: a relay that flips a byte each way breaks
// a TLS record's authentication. (The flipped byte of the passthrough
// stream falls in its ClientHello, which the sink skips; its pattern bytes
// are checked as the plain stream figures' are.)
func TestTLSFiguresCatchCorruption(t *testing.T) {
	bk, _, tlsc := testTLS(t)
	for _, name := range []string{"sni passthrough new connections"} {
		t.Run(name, func(t *testing.T) {
			fig := tlsFigureByName(t, name)
			addr := startRelay(t, bk.addr(fig.backend), relayFlip)
			_, err := verdict(context.Background(), bk, fig.run, env{addr: addr, d: testDuration, tls: tlsc})
			if err == nil {
				t.Fatal("no error through a relay that corrupts bytes")
			}
			t.Log(err)
		})
	}
}

// TestRunnerTLSFigures runs every TLS figure and the plain 1 stream figure
// through a relay process, and expects every cell filled, the ratio row
// included.
func TestRunnerTLSFigures(t *testing.T) {
	r := testRunner(t, relayForwarder(t, relayGood))
	res, err := r.run(context.Background(), append([]figure{figureByName(t, "1 stream up")}, tlsFigures()...))
	if err != nil {
		t.Fatal(err)
	}
	checkClean(t, res)
	ratio := tlsFigureByName(t, "sni passthrough 1 stream").rows
	for _, col := range res.columns {
		if v := res.cells[ratio[len(ratio)-1].label][col].value(); !(v > 0) {
			t.Errorf("%s: passthrough ÷ plain = %v", col, v)
		}
	}
}

// TestSluiceWithoutTLSKeysIsSkipped: a sluice that refuses the route or
// tls keys as unknown gets its column skipped with a note, not failed; a
// peer refusing its configuration is a failure, and so is sluice refusing
// for another reason.
func TestSluiceWithoutTLSKeysIsSkipped(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	refusing := func(name, msg string, peer bool) forwarder {
		return forwarder{name: name, peer: peer, tlsArgv: func(string, tlsSpec) ([]string, error) {
			return []string{exe, "refuse", msg}, nil
		}}
	}
	r := testRunner(t,
		refusing("old", `sluice: f.toml:5: rule "bench": unknown key "route"`, false),
		refusing("peer", `unknown key "route"`, true),
		refusing("broken", `sluice: f.toml:9: rule "bench": tls: cert: no such file`, false))
	fig := tlsFigureByName(t, "sni passthrough 1 stream")
	res, err := r.run(context.Background(), []figure{fig})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.cells[fig.rows[0].label]["old"]; ok {
		t.Errorf("the old sluice has a cell: %+v", res.cells[fig.rows[0].label]["old"])
	}
	if len(res.errs) != 1 || !strings.Contains(res.errs[0].Error(), "through broken") {
		t.Errorf("errors %v, want the broken sluice's only", res.errs)
	}
	if len(res.peerErrs) != 1 {
		t.Errorf("peer errors %v, want one", res.peerErrs)
	}
	if !strings.Contains(strings.Join(res.notes, "\n"), `old: column skipped: this sluice's config has no routes support (unknown key "route")`) {
		t.Errorf("notes %q lack the skip", res.notes)
	}
}
