package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// This file holds what the TLS figures (tlsfigures.go) share: the test
// certificate, the clients' TLS settings, a captured ClientHello and the
// TLS backends.
//
// Every TLS connection of the bench is pinned to one outcome, so that the
// forwarders do the same work: TLS 1.3, key exchange X25519 only, and
// AES-128-GCM (the Go client's first choice on a CPU with AES
// instructions; the peers are configured to pick it too). No client keeps
// a session cache: every connection is a full handshake.

// sniNames are the server names of the passthrough rule's three routes; the
// clients send the last one, so a forwarder matches through all three.
var sniNames = [3]string{"one.bench.test", "two.bench.test", "three.bench.test"}

// sniTarget is the name the TLS clients send.
const sniTarget = "three.bench.test"

// tlsMaterial is the bench's certificate: ECDSA P-256, self-signed, valid
// for the route names, written as PEM files that the forwarders read.
type tlsMaterial struct {
	certFile     string // the certificate, PEM
	keyFile      string // its private key, PEM (PKCS #8)
	combinedFile string // both in one file, as HAProxy's crt wants
	cert         tls.Certificate
}

// newTLSMaterial makes a fresh key and certificate and writes them into dir.
func newTLSMaterial(dir string) (*tlsMaterial, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tls: make a key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: sniTarget},
		DNSNames:     sniNames[:],
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("tls: make a certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("tls: encode the key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	m := &tlsMaterial{
		certFile:     filepath.Join(dir, "bench-cert.pem"),
		keyFile:      filepath.Join(dir, "bench-key.pem"),
		combinedFile: filepath.Join(dir, "bench-combined.pem"),
	}
	for path, data := range map[string][]byte{m.certFile: certPEM, m.keyFile: keyPEM, m.combinedFile: append(certPEM, keyPEM...)} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
	}
	if m.cert, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return m, nil
}

// serverConfig is the bench's own TLS servers' configuration (the backends
// behind passthrough, and direct's servers).
func (m *tlsMaterial) serverConfig() *tls.Config {
	return &tls.Config{
		Certificates:     []tls.Certificate{m.cert},
		MinVersion:       tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.X25519},
	}
}

// tlsClient is how the TLS figures' clients speak TLS.
type tlsClient struct {
	cfg *tls.Config
	// hello is a ClientHello record for sniTarget, as cfg sends it: the
	// passthrough stream figure sends it and then raw bytes.
	hello []byte
}

// newTLSClient returns the clients' settings. They check that the server
// presented the bench's certificate by comparing bytes: a full chain
// verification would add an ECDSA verification per handshake to the
// bench's side of a 2-CPU machine, and says nothing about the forwarder.
func newTLSClient(m *tlsMaterial) (*tlsClient, error) {
	leaf := m.cert.Certificate[0]
	cfg := &tls.Config{
		ServerName:         sniTarget,
		MinVersion:         tls.VersionTLS13,
		CurvePreferences:   []tls.CurveID{tls.X25519},
		InsecureSkipVerify: true, // replaced by the byte comparison below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, leaf) {
				return errors.New("the server did not present the bench's certificate")
			}
			return nil
		},
	}
	hello, err := captureClientHello(cfg)
	if err != nil {
		return nil, err
	}
	return &tlsClient{cfg: cfg, hello: hello}, nil
}

// captureClientHello starts a handshake with cfg over a pipe and returns
// the first TLS record the client writes: its ClientHello.
func captureClientHello(cfg *tls.Config) ([]byte, error) {
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = tls.Client(client, cfg).Handshake() // fails once server closes
		client.Close()
	}()
	defer func() {
		server.Close()
		<-done
	}()
	server.SetDeadline(time.Now().Add(dialTimeout))
	rec, err := readRecord(server)
	if err != nil {
		return nil, fmt.Errorf("tls: capture a ClientHello: %w", err)
	}
	return rec, nil
}

// readRecord reads one TLS handshake record (header and body) from r.
func readRecord(r io.Reader) ([]byte, error) {
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, err
	}
	if hdr[0] != 22 { // handshake
		return nil, fmt.Errorf("first record of type %d, want a handshake (22)", hdr[0])
	}
	rec := make([]byte, 5+int(binary.BigEndian.Uint16(hdr[3:])))
	copy(rec, hdr)
	_, err := io.ReadFull(r, rec[5:])
	return rec, err
}

// halfConn is a connection that can send FIN (or TLS close_notify) and go
// on reading: what the stream figures need.
type halfConn interface {
	net.Conn
	CloseWrite() error
}

// dialFunc opens one client connection of a figure through e, ready for
// the figure's bytes.
type dialFunc func(ctx context.Context, e env) (halfConn, error)

// dialPlain is a plain TCP connection.
func dialPlain(ctx context.Context, e env) (halfConn, error) {
	c, err := dialTCP(ctx, e.addr)
	if err != nil {
		return nil, err // not a nil *net.TCPConn in a non-nil interface
	}
	return c, nil
}

// dialHello connects and sends the captured ClientHello: a forwarder that
// routes by server name sees a real one, and relays whatever follows.
func dialHello(ctx context.Context, e env) (halfConn, error) {
	c, err := dialTCP(ctx, e.addr)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(e.tls.hello); err != nil {
		c.Close()
		return nil, fmt.Errorf("send the ClientHello: %w", err)
	}
	return c, nil
}

// dialTLS connects and completes a full TLS handshake.
func dialTLS(ctx context.Context, e env) (halfConn, error) {
	c, err := dialTCP(ctx, e.addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(c, e.tls.cfg)
	c.SetDeadline(time.Now().Add(replyTimeout))
	if err := tc.Handshake(); err != nil {
		c.Close()
		return nil, handshakeError(err)
	}
	c.SetDeadline(time.Time{})
	return tc, nil
}

// handshakeError words a failed client handshake. Its own ClientHello
// coming back means the echo backend got it: the forwarder relayed the
// handshake instead of terminating it.
func handshakeError(err error) error {
	if strings.Contains(err.Error(), "*tls.clientHelloMsg") {
		return fmt.Errorf("tls handshake: the ClientHello came back from the echo backend: the forwarder relayed it without terminating TLS (%w)", err)
	}
	return fmt.Errorf("tls handshake: %w", err)
}

// describeTLS names what a connection negotiated.
func describeTLS(cs tls.ConnectionState) string {
	return fmt.Sprintf("%s, %v, %s", tls.VersionName(cs.Version), cs.CurveID, tls.CipherSuiteName(cs.CipherSuite))
}

// helloSink reads one TLS handshake record (the client's ClientHello) and
// then serves as the sink.
func (b *backends) helloSink(c halfConn) {
	c.SetReadDeadline(time.Now().Add(replyTimeout))
	if _, err := readRecord(c); err != nil {
		b.fail(fmt.Errorf("hello sink: %w", err))
		return
	}
	c.SetReadDeadline(time.Time{})
	b.sink(c)
}

// tlsServe returns a backend that terminates TLS and hands the connection
// to serve.
func (b *backends) tlsServe(serve func(halfConn)) func(halfConn) {
	return func(c halfConn) {
		tc := tls.Server(c, b.tlsCfg)
		defer tc.Close()
		serve(tc)
	}
}

// decoy is the backend of a route the clients must not reach: a forwarder
// that sends a client there matched the wrong server name.
func (b *backends) decoy(name string) func(halfConn) {
	return func(halfConn) {
		b.fail(fmt.Errorf("a connection reached the backend of route %q, but the clients ask for %q", name, sniTarget))
	}
}
