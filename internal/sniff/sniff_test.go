package sniff

import "testing"

func TestPrefixes(t *testing.T) {
	v2 := "\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c"
	for _, c := range []struct {
		name string
		f    func([]byte) Verdict
		in   string
		want Verdict
	}{
		{"ssh banner", SSH, "SSH-2.0-OpenSSH_9.6\r\n", Match},
		{"ssh prefix only", SSH, "SSH-2.0-", Match},
		{"ssh partial", SSH, "SSH-2.", NeedMore},
		{"ssh empty", SSH, "", NeedMore},
		{"ssh 1.5", SSH, "SSH-1.5-old\r\n", NoMatch},
		{"ssh lowercase", SSH, "ssh-2.0-x", NoMatch},
		{"ssh http", SSH, "GET / HTTP/1.1\r\n", NoMatch},
		{"proxy v1", Proxy, "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", Match},
		{"proxy v1 partial", Proxy, "PROX", NeedMore},
		{"proxy v2", Proxy, v2, Match},
		{"proxy v2 signature only", Proxy, v2[:12], Match},
		{"proxy v2 partial", Proxy, v2[:11], NeedMore},
		{"proxy v2 bad", Proxy, "\r\n\r\n\x00\r\nQUIT\r", NoMatch},
		{"proxy empty", Proxy, "", NeedMore},
		{"proxy lowercase", Proxy, "proxy TCP4", NoMatch},
		{"proxy no space", Proxy, "PROXYTCP4", NoMatch},
		{"tls 1.0 record", TLS, "\x16\x03\x01\x02\x00\x01", Match},
		{"tls 1.3 number", TLS, "\x16\x03\x04", Match},
		{"tls partial", TLS, "\x16\x03", NeedMore},
		{"tls empty", TLS, "", NeedMore},
		{"tls 3.5", TLS, "\x16\x03\x05", NoMatch},
		{"tls sslv2", TLS, "\x80\x2e\x01", NoMatch},
		{"tls application data", TLS, "\x17\x03\x03", NoMatch},
	} {
		if got := c.f([]byte(c.in)); got != c.want {
			t.Errorf("%s: %v; want %v", c.name, got, c.want)
		}
	}
}
