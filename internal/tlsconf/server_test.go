package tlsconf

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sluice/internal/testkit/testca"
	"time"
)

// twoCerts returns a CA and a Server of two certificates: "a" for
// a.example.com (the fallback) and "b" for b.example.com and
// *.example.org.
func twoCerts(t *testing.T, f ServerFiles) (*testca.CA, testca.Leaf, testca.Leaf, *Server) {
	t.Helper()
	ca := testca.New(t, "ca")
	a := ca.Issue(t, "a", "a.example.com")
	b := ca.Issue(t, "b", "b.example.com", "*.example.org")
	f.Certificates = []CertKey{pairOf(a), pairOf(b)}
	s, err := LoadServer(f)
	if err != nil {
		t.Fatal(err)
	}
	return ca, a, b, s
}

// TestServerChoosesBySNI: the certificate shown is the one whose names
// match the server name (exact, any case, or a wildcard over one label),
// and the first when none does or no name is sent.
func TestServerChoosesBySNI(t *testing.T) {
	ca, a, b, s := twoCerts(t, ServerFiles{})
	addr := serve(t, s.Config())
	for _, tc := range []struct {
		name string
		want testca.Leaf
	}{
		{"b.example.com", b},
		{"B.Example.COM", b},
		{"a.example.com", a},
		{"x.example.org", b},
		{"y.x.example.org", a}, // a wildcard covers one label only
		{"example.org", a},
		{"other.net", a},
		{"", a},
	} {
		c, err := handshake(t, addr, &tls.Config{ServerName: tc.name, RootCAs: ca.Pool(), InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("%q: %v", tc.name, err)
		}
		if got := serial(c); got != tc.want.Serial {
			t.Errorf("server name %q: got certificate %d, want %d", tc.name, got, tc.want.Serial)
		}
	}
	// and the chosen one verifies for the name
	if _, err := handshake(t, addr, &tls.Config{ServerName: "x.example.org", RootCAs: ca.Pool()}); err != nil {
		t.Errorf("verified handshake for x.example.org: %v", err)
	}
}

// TestServerExpiry names each certificate by its first DNS name, else its
// common name; an expired certificate loads (and is reported).
func TestServerExpiry(t *testing.T) {
	ca, a, b, s := twoCerts(t, ServerFiles{})
	ca.Expired = true
	c := ca.Issue(t, "old-cn")
	s3, err := LoadServer(ServerFiles{Certificates: []CertKey{pairOf(a), pairOf(b), pairOf(c)}})
	if err != nil {
		t.Fatalf("an expired certificate: %v", err)
	}
	got := s3.Expiry()
	if len(got) != 3 || got[0].Name != "a.example.com" || got[1].Name != "b.example.com" || got[2].Name != "old-cn" ||
		!got[0].NotAfter.Equal(a.NotAfter.Truncate(1e9)) || !got[1].NotAfter.Equal(b.NotAfter.Truncate(1e9)) ||
		!got[2].NotAfter.Before(time.Now()) {
		t.Errorf("Expiry = %+v", got)
	}
	if len(s.Expiry()) != 2 {
		t.Errorf("the first server's Expiry changed: %+v", s.Expiry())
	}
}

// TestServerClientCertificates: with a client CA, a client with a
// certificate it signed gets in; one without a certificate, or with one of
// another CA, is refused.
func TestServerClientCertificates(t *testing.T) {
	ca := testca.New(t, "ca")
	clients := testca.New(t, "clients")
	stranger := testca.New(t, "stranger")
	srv := ca.Issue(t, "srv", "srv.test")
	s, err := LoadServer(ServerFiles{Certificates: []CertKey{pairOf(srv)}, ClientCA: clients.File(t)})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s.Config())
	pair := func(l testca.Leaf) []tls.Certificate {
		c, err := tls.LoadX509KeyPair(l.CertFile, l.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{c}
	}
	good := pair(clients.Issue(t, "alice", "alice"))
	bad := pair(stranger.Issue(t, "mallory", "mallory"))
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
		ok    bool
	}{{"signed", good, true}, {"none", nil, false}, {"other CA", bad, false}} {
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			_, err := handshake(t, addr, &tls.Config{ServerName: "srv.test", RootCAs: ca.Pool(), Certificates: tc.certs, MaxVersion: v})
			if (err == nil) != tc.ok {
				t.Errorf("client certificate %s, version %x: err = %v, want ok %v", tc.name, v, err, tc.ok)
			}
		}
	}
}

// TestServerMinVersion: min_version 1.3 refuses a client that speaks
// only 1.2; the default takes it.
func TestServerMinVersion(t *testing.T) {
	ca := testca.New(t, "ca")
	srv := ca.Issue(t, "srv", "srv.test")
	for _, tc := range []struct {
		min uint16
		ok  bool
	}{{0, true}, {tls.VersionTLS13, false}} {
		s, err := LoadServer(ServerFiles{Certificates: []CertKey{pairOf(srv)}, MinVersion: tc.min})
		if err != nil {
			t.Fatal(err)
		}
		addr := serve(t, s.Config())
		_, err = handshake(t, addr, &tls.Config{ServerName: "srv.test", RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS12})
		if (err == nil) != tc.ok {
			t.Errorf("min_version %x, 1.2-only client: err = %v, want ok %v", tc.min, err, tc.ok)
		}
	}
}

// TestServerALPN: the server's protocol chosen among the client's.
func TestServerALPN(t *testing.T) {
	ca := testca.New(t, "ca")
	srv := ca.Issue(t, "srv", "srv.test")
	s, err := LoadServer(ServerFiles{Certificates: []CertKey{pairOf(srv)}, ALPN: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s.Config())
	c, err := handshake(t, addr, &tls.Config{ServerName: "srv.test", RootCAs: ca.Pool(), NextProtos: []string{"http/1.1", "h2"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Errorf("negotiated %q, want h2", p)
	}
}

// TestHolderResumesAndReloads: through a Holder, a second connection
// resumes the first one's session; after a swap the next handshake shows
// the new certificate while a connection made before keeps working.
func TestHolderResumesAndReloads(t *testing.T) {
	ca := testca.New(t, "ca")
	old := ca.Issue(t, "srv", "srv.test")
	s, err := LoadServer(ServerFiles{Certificates: []CertKey{pairOf(old)}})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHolder(s)
	addr := serve(t, h.Config())
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		client := &tls.Config{ServerName: "srv.test", RootCAs: ca.Pool(), MaxVersion: v, ClientSessionCache: tls.NewLRUClientSessionCache(4)}
		for i, want := range []bool{false, true} {
			c, err := handshake(t, addr, client)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.ConnectionState().DidResume; got != want {
				t.Errorf("version %x, connection %d: resumed %v, want %v", v, i+1, got, want)
			}
		}
	}

	live, err := handshake(t, addr, &tls.Config{ServerName: "srv.test", RootCAs: ca.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	renewed := ca.Issue(t, "srv", "srv.test") // same files, new contents
	s2, err := LoadServer(ServerFiles{Certificates: []CertKey{pairOf(renewed)}})
	if err != nil {
		t.Fatal(err)
	}
	h.Swap(s2)
	c, err := handshake(t, addr, &tls.Config{ServerName: "srv.test", RootCAs: ca.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	if got := serial(c); got != renewed.Serial {
		t.Errorf("after the swap: certificate %d, want the renewed %d", got, renewed.Serial)
	}
	if _, err := live.Write([]byte("still")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := live.Read(buf); err != nil || string(buf) != "still" || serial(live) != old.Serial {
		t.Errorf("the connection made before the swap: read %q, %v (certificate %d)", buf, err, serial(live))
	}
}

// TestLoadServerErrors: each bad file gives an error that names it.
func TestLoadServerErrors(t *testing.T) {
	ca := testca.New(t, "ca")
	a := ca.Issue(t, "a", "a.test")
	b := ca.Issue(t, "b", "b.test")
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM at all\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name  string
		files ServerFiles
		want  []string
	}{
		{"missing cert", ServerFiles{Certificates: []CertKey{{missing, a.KeyFile}}}, []string{missing, "cannot read"}},
		{"missing key", ServerFiles{Certificates: []CertKey{{a.CertFile, missing}}}, []string{missing, "cannot read"}},
		{"cert not PEM", ServerFiles{Certificates: []CertKey{{garbage, a.KeyFile}}}, []string{garbage, "no PEM certificate"}},
		{"key not PEM", ServerFiles{Certificates: []CertKey{{a.CertFile, garbage}}}, []string{garbage, "no PEM private key"}},
		{"key of another", ServerFiles{Certificates: []CertKey{pairOf(a), {a.CertFile, b.KeyFile}}}, []string{a.CertFile, b.KeyFile, "does not match"}},
		{"client CA missing", ServerFiles{Certificates: []CertKey{pairOf(a)}, ClientCA: missing}, []string{missing, "client CA"}},
		{"client CA not PEM", ServerFiles{Certificates: []CertKey{pairOf(a)}, ClientCA: garbage}, []string{garbage, "no PEM certificate"}},
	} {
		_, err := LoadServer(tc.files)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tc.name, err, w)
			}
		}
	}
}
