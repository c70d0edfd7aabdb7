package proxyproto

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// tcpPair returns the two ends of a real TCP connection over loopback.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	a := <-ch
	if a.err != nil {
		c.Close()
		t.Fatalf("accept: %v", a.err)
	}
	t.Cleanup(func() { c.Close(); a.c.Close() })
	return c.(*net.TCPConn), a.c.(*net.TCPConn)
}

// safetyDeadline bounds a test that would otherwise hang on a broken
// ReadHeader; a correct one never comes near it.
const safetyDeadline = 20 * time.Second

func TestReadHeaderLeavesPayloadInConn(t *testing.T) {
	payload := []byte("SSH-2.0-client\r\n" + strings.Repeat("payload ", 1000))
	headers := map[string][]byte{
		"v1 unknown, shortest header": []byte("PROXY UNKNOWN\r\n"),
		"v1 tcp4": Header{Command: Proxy, Transport: TCP,
			Source: ap("192.0.2.1:40000"), Destination: ap("198.51.100.7:22")}.AppendV1(nil),
		"v1 tcp6, longest": []byte(
			"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
		"v2 local":       v2Bytes(0x20, 0x00),
		"v2 tcp4 + TLVs": v2Bytes(0x21, 0x11, ipv4Block, tlv(0x01, []byte("h2")), tlv(0x04, make([]byte, 300))),
		"v2 tcp6": Header{Command: Proxy, Transport: TCP,
			Source: ap("[2001:db8::1]:40000"), Destination: ap("[2001:db8::2]:22")}.AppendV2(nil),
	}
	for name, hdr := range headers {
		for _, split := range []bool{false, true} {
			client, server := tcpPair(t)
			go func() {
				if split { // one segment per byte of header, then the payload
					for i := range hdr {
						if _, err := client.Write(hdr[i : i+1]); err != nil {
							return
						}
					}
					client.Write(payload)
				} else { // header and payload in one write
					client.Write(append(append([]byte{}, hdr...), payload...))
				}
				client.CloseWrite()
			}()
			server.SetDeadline(time.Now().Add(safetyDeadline))
			h, err := ReadHeader(server)
			if err != nil {
				t.Errorf("%s (split %v): ReadHeader: %v", name, split, err)
				continue
			}
			if want, _ := ReadHeader(strings.NewReader(string(hdr))); h != want {
				t.Errorf("%s (split %v): ReadHeader = %+v, want %+v", name, split, h, want)
			}
			rest, err := io.ReadAll(server)
			if err != nil || string(rest) != string(payload) {
				t.Errorf("%s (split %v): after the header the conn held %d bytes (%q...), %v; want the %d-byte payload",
					name, split, len(rest), rest[:min(len(rest), 20)], err, len(payload))
			}
		}
	}
}

func TestReadHeaderRejectsWithoutWaitingForMore(t *testing.T) {
	// The sender stays silent after these, as a client of a server-speaks-
	// first protocol would: the reason must come from what has arrived,
	// not from a deadline.
	tests := []struct{ in, reason string }{
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "too few fields"},
		{"PROXY TCP4 1.2.3.4\r\n", "too few fields"},
		{"PROXY TCP4 01.2.3.4 ", `source address "01.2.3.4" has an octet with a leading zero`},
		{"PROXY TCP9", `unknown protocol "TCP9"`},
		{"SSH-2.0-OpenSSH_9.6\r\n", "not a PROXY protocol header"},
		{v2Signature + "\x11", "unsupported version 1"},
		{v2Signature + "\x21\x11\x00\x04", "length 4 is shorter than the 12-byte address block of family/transport 0x11"},
	}
	for _, tt := range tests {
		client, server := tcpPair(t)
		if _, err := client.Write([]byte(tt.in)); err != nil {
			t.Fatalf("write: %v", err)
		}
		server.SetDeadline(time.Now().Add(safetyDeadline))
		_, err := ReadHeader(server)
		var perr *Error
		if !errors.As(err, &perr) || perr.Reason != tt.reason {
			t.Errorf("ReadHeader(%q) = %v; want reason %q", tt.in, err, tt.reason)
		}
	}
}

func TestReadHeaderHonoursDeadline(t *testing.T) {
	for _, partial := range []string{"", "PROXY TCP4 1.2", string(v2Bytes(0x21, 0x11, ipv4Block)[:20])} {
		client, server := tcpPair(t)
		if _, err := client.Write([]byte(partial)); err != nil {
			t.Fatalf("write: %v", err)
		}
		server.SetDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := ReadHeader(server)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("ReadHeader after %q = %v; want an error wrapping os.ErrDeadlineExceeded", partial, err)
		}
		var perr *Error
		if errors.As(err, &perr) {
			t.Errorf("ReadHeader after %q: a deadline came back as a malformed header: %v", partial, err)
		}
	}
}
