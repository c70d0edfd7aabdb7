package tlsconf

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sluice/internal/testkit/testca"
)

// TestClientVerifies: a backend whose certificate the CA signed for its
// host (a name, or an IP address) passes; one signed by another CA fails
// with a verification error, unless verification is off.
func TestClientVerifies(t *testing.T) {
	ca := testca.New(t, "ca")
	other := testca.New(t, "other")
	srv := ca.Issue(t, "srv", "127.0.0.1", "db.internal")
	s, err := LoadServer(ServerFiles{Certificates: []CertKey{pairOf(srv)}})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s.Config())
	for _, tc := range []struct {
		name   string
		files  ClientFiles
		host   string
		result string
	}{
		{"by IP", ClientFiles{CA: ca.File(t)}, "127.0.0.1", ResultOK},
		{"server_name", ClientFiles{CA: ca.File(t), ServerName: "db.internal"}, "127.0.0.1", ResultOK},
		{"wrong server_name", ClientFiles{CA: ca.File(t), ServerName: "web.internal"}, "127.0.0.1", ResultVerify},
		{"wrong CA", ClientFiles{CA: other.File(t)}, "127.0.0.1", ResultVerify},
		{"system roots", ClientFiles{}, "127.0.0.1", ResultVerify},
		{"insecure", ClientFiles{CA: other.File(t), InsecureSkipVerify: true}, "127.0.0.1", ResultOK},
	} {
		c, err := NewClient(tc.files)
		if err != nil {
			t.Fatal(err)
		}
		_, err = handshake(t, addr, c.For(tc.host))
		if got := Result(err); got != tc.result {
			t.Errorf("%s: result %q (%v), want %q", tc.name, got, err, tc.result)
		}
	}
}

// TestClientCertificate: a backend that requires a client certificate
// gets the configured one.
func TestClientCertificate(t *testing.T) {
	ca := testca.New(t, "ca")
	clients := testca.New(t, "clients")
	srv := ca.Issue(t, "srv", "127.0.0.1")
	s, err := LoadServer(ServerFiles{Certificates: []CertKey{pairOf(srv)}, ClientCA: clients.File(t)})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s.Config())
	me := clients.Issue(t, "sluice", "sluice.test")
	c, err := NewClient(ClientFiles{CA: ca.File(t), Cert: me.CertFile, Key: me.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(t, addr, c.For("127.0.0.1")); err != nil {
		t.Errorf("with the client certificate: %v", err)
	}
	bare, err := NewClient(ClientFiles{CA: ca.File(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(t, addr, bare.For("127.0.0.1")); err == nil {
		t.Error("without a client certificate: no error")
	}
}

// TestClientErrorsAndEqual: bad files give errors naming them; Clients of
// the same files are Equal until a file's contents change.
func TestClientErrorsAndEqual(t *testing.T) {
	ca := testca.New(t, "ca")
	me := ca.Issue(t, "me", "me.test")
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []ClientFiles{{CA: garbage}, {Cert: garbage, Key: me.KeyFile}, {Cert: me.CertFile, Key: garbage}} {
		if _, err := NewClient(f); err == nil || !strings.Contains(err.Error(), garbage) {
			t.Errorf("%+v: error %v does not name %s", f, err, garbage)
		}
	}
	f := ClientFiles{CA: ca.File(t), Cert: me.CertFile, Key: me.KeyFile}
	c1, err1 := NewClient(f)
	c2, err2 := NewClient(f)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if !c1.Equal(c2) || c1.Equal(nil) || !(*Client)(nil).Equal(nil) {
		t.Error("Equal: same files unequal, or nil equal to a Client")
	}
	ca.Issue(t, "me", "me.test") // new contents, same files
	c3, err := NewClient(f)
	if err != nil {
		t.Fatal(err)
	}
	if c1.Equal(c3) {
		t.Error("Equal after the key and certificate changed on disk")
	}
}

// TestResultTimeout: a handshake that runs out of time is a timeout.
func TestResultTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c) // silent until the client gives up
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(timeNowPlus(50))
	err = tls.Client(c, &tls.Config{ServerName: "x", InsecureSkipVerify: true}).Handshake()
	if got := Result(err); got != ResultTimeout {
		t.Errorf("result %q (%v), want timeout", got, err)
	}
}
