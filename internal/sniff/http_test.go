package sniff

import "testing"

// curlRequest is what curl 8 sends for http://www.example.com:8080/.
const curlRequest = "GET / HTTP/1.1\r\nHost: www.example.com:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"

func TestHTTPHost(t *testing.T) {
	for _, c := range []struct {
		name, in, host string
		v              Verdict
	}{
		{"curl", curlRequest, "www.example.com", Match},
		{"no port, mixed case", "GET /x?y=1 HTTP/1.0\r\nhOsT:\tWWW.Example.COM \r\n\r\n", "www.example.com", Match},
		{"ipv6 with port", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", "::1", Match},
		{"ipv6 without port", "GET / HTTP/1.1\r\nHost: [2001:DB8::1]\r\n\r\n", "2001:db8::1", Match},
		{"ipv4", "POST /form HTTP/1.1\r\nContent-Length: 0\r\nHost: 127.0.0.1:80\r\n\r\n", "127.0.0.1", Match},
		{"bare LF", "GET / HTTP/1.1\nHost: a.example\n\n", "a.example", Match},
		{"body after headers", curlRequest + "PRI * HTTP/2.0", "www.example.com", Match},
		{"missing host", "GET / HTTP/1.0\r\nAccept: */*\r\n\r\n", "", Match},
		{"empty host", "OPTIONS * HTTP/1.1\r\nHost:\r\n\r\n", "", Match},
		{"incomplete header block", "GET / HTTP/1.1\r\nHost: a.example\r\n", "", NeedMore},
		{"incomplete host line", "GET / HTTP/1.1\r\nHost: a.exa", "", NeedMore},
		{"incomplete request line", "GET /index.ht", "", NeedMore},
		{"incomplete version", "GET / HTTP/1.", "", NeedMore},
		{"empty", "", "", NeedMore},
		{"http/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "", NoMatch},
		{"http/2 preface, partial", "PRI * HTTP/2", "", NoMatch},
		{"http/0.9", "GET /\r\n", "", NoMatch},
		{"http/1.2", "GET / HTTP/1.2\r\n\r\n", "", NoMatch},
		{"lowercase version", "GET / http/1.1\r\n", "", NoMatch},
		{"two spaces", "GET  / HTTP/1.1\r\n", "", NoMatch},
		{"leading space", " GET / HTTP/1.1\r\n", "", NoMatch},
		{"method not a token", "GE(T / HTTP/1.1\r\n", "", NoMatch},
		{"tls", "\x16\x03\x01\x02\x00", "", NoMatch},
		{"ssh", "SSH-2.0-OpenSSH_9.6\r\n", "", NoMatch},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "", NoMatch},
		{"host with a path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "", NoMatch},
		{"host with a bad port", "GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n", "", NoMatch},
		{"host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", "", NoMatch},
		{"ipv6 unclosed", "GET / HTTP/1.1\r\nHost: [::1:80\r\n\r\n", "", NoMatch},
		{"folded header", "GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", "", NoMatch},
		{"header without colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", "", NoMatch},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", "", NoMatch},
		{"bare CR in a value", "GET / HTTP/1.1\r\nX: a\rb\r\nHost: a\r\n\r\n", "", NoMatch},
	} {
		host, v := HTTPHost([]byte(c.in))
		if host != c.host || v != c.v {
			t.Errorf("%s: HTTPHost(%q) = %q, %v; want %q, %v", c.name, c.in, host, v, c.host, c.v)
		}
	}
}

func TestHTTPHostByteByByte(t *testing.T) {
	for i := range len(curlRequest) {
		if host, v := HTTPHost([]byte(curlRequest[:i])); v != NeedMore {
			t.Fatalf("first %d bytes: %q, %v; want need-more", i, host, v)
		}
	}
}

func TestHTTPHostPeekLimit(t *testing.T) {
	b := []byte("GET / HTTP/1.1\r\n")
	for len(b) < MaxPeek+100 {
		b = append(b, "X-Filler: 0123456789abcdef\r\n"...)
	}
	if host, v := HTTPHost(b[:MaxPeek-1]); v != NeedMore {
		t.Errorf("one byte short of the limit: %q, %v; want need-more", host, v)
	}
	b = append(b, "Host: a\r\n\r\n"...)
	if host, v := HTTPHost(b); v != NoMatch {
		t.Errorf("headers ending past the limit: %q, %v; want no-match", host, v)
	}
}
