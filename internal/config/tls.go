package config

import (
	"crypto/tls"
	"fmt"
	"path/filepath"
	"strings"
)

// tls reads a tls table ([rule.tls], [rule.route.tls] or in [defaults]),
// or "off" (none: a rule or route lifting an inherited one).
func (s source) tls(t *rawTLS) opt[*TLS] {
	o := opt[*TLS]{present: t != nil, line: s.line("tls")}
	if t == nil {
		return o
	}
	if t.word != nil {
		return offWord(s, "tls", *t.word, o)
	}
	ts := s.sub("tls", "tls")
	certs := ts.certificates(t.Certificates)
	cert, key := ts.filePath("cert", t.Cert), ts.filePath("key", t.Key)
	minVersion := ts.minVersion(t.MinVersion)
	alpn := ts.stringList("alpn", t.ALPN, true, checkALPN)
	clientCA := ts.filePath("client_ca", t.ClientCA)
	c := &TLS{Certificates: certs.val, MinVersion: minVersion.or(tls.VersionTLS12), ALPN: alpn, ClientCA: clientCA.val}
	pairs := ts.onePair(certs, cert, key) && certs.valid()
	if pairs && cert.present {
		c.Certificates = []CertKey{{Cert: cert.val, Key: key.val}}
	}
	o.val = c
	o.set = pairs && cert.valid() && key.valid() && minVersion.valid() && clientCA.valid()
	return o
}

// onePair checks that a tls table gives its certificates one way: a
// certificates list, or cert and key. It returns whether it does.
func (s source) onePair(certs opt[[]CertKey], cert, key opt[string]) bool {
	switch {
	case certs.present && cert.present:
		s.errorAt(cert.line, "cert: give certificates, or cert and key, not both")
	case certs.present && key.present:
		s.errorAt(key.line, "key: give certificates, or cert and key, not both")
	case certs.present:
		return true
	case !cert.present && !key.present:
		s.errorf("", "no certificate (want certificates = [{ cert, key }], or cert and key)")
	default:
		return s.pair(cert, key)
	}
	return false
}

// pair reports a cert without its key, or a key without its cert; it
// returns whether both or neither are given.
func (s source) pair(cert, key opt[string]) bool {
	switch {
	case cert.present && !key.present:
		s.errorAt(cert.line, "cert without key")
	case key.present && !cert.present:
		s.errorAt(key.line, "key without cert")
	default:
		return true
	}
	return false
}

// certificates reads a non-empty list of { cert, key } tables.
func (s source) certificates(v any) opt[[]CertKey] {
	o := start[[]CertKey](s, "certificates", v)
	valid, n := true, 0
	listed := s.list("certificates", v, func(elem string, v any) {
		n++
		c, ok := s.certificate(elem, n, v)
		valid = valid && ok
		o.val = append(o.val, c)
	})
	if listed && n == 0 {
		s.errorf("certificates", "certificates: empty list (want at least one { cert, key })")
		valid = false
	}
	o.set = listed && valid
	return o
}

// certificate reads certificate n (from 1) of a certificates list.
func (s source) certificate(elem string, n int, v any) (CertKey, bool) {
	cs := s.sub(fmt.Sprintf("certificate %d", n), elem)
	t, ok := v.(map[string]any)
	if !ok {
		cs.errorf("", "want a table { cert, key }, not %s", typeName(v))
		return CertKey{}, false
	}
	ok = cs.knownKeys(t, certKeys)
	cert, key := cs.filePath("cert", t["cert"]), cs.filePath("key", t["key"])
	for _, missing := range []struct {
		key string
		o   opt[string]
	}{{"cert", cert}, {"key", key}} {
		if !missing.o.present {
			cs.errorf("", "missing %s", missing.key)
			ok = false
		}
	}
	return CertKey{Cert: cert.val, Key: key.val}, ok && cert.set && key.set
}

// minVersion reads min_version: "1.2" or "1.3", as a crypto/tls version.
func (s source) minVersion(v any) opt[uint16] {
	if _, ok := v.(float64); ok {
		s.errorf("min_version", `min_version %s: want a string ("1.2" or "1.3"), not a float`, show(v))
		return start[uint16](s, "min_version", v)
	}
	o := s.enum("min_version", v, "1.2", "1.3")
	return convert(o, func(v string) uint16 {
		if v == "1.3" {
			return tls.VersionTLS13
		}
		return tls.VersionTLS12
	})
}

// backendTLS reads a backend_tls table, or "off".
func (s source) backendTLS(t *rawBackendTLS) opt[*BackendTLS] {
	o := opt[*BackendTLS]{present: t != nil, line: s.line("backend_tls")}
	if t == nil {
		return o
	}
	if t.word != nil {
		return offWord(s, "backend_tls", *t.word, o)
	}
	bs := s.sub("backend_tls", "backend_tls")
	ca := bs.filePath("ca", t.CA)
	name := bs.serverName(t.ServerName)
	cert, key := bs.filePath("cert", t.Cert), bs.filePath("key", t.Key)
	skip := bs.boolean("insecure_skip_verify", t.InsecureSkipVerify)
	paired := bs.pair(cert, key)
	o.val = &BackendTLS{CA: ca.val, ServerName: name.val, Cert: cert.val, Key: key.val, InsecureSkipVerify: skip.val}
	o.set = paired && ca.valid() && name.valid() && cert.valid() && key.valid() && skip.valid()
	return o
}

// serverName reads backend_tls's server_name: a host name or an IP
// address, kept as written (IP addresses in their usual form).
func (s source) serverName(v any) opt[string] {
	o := s.str("server_name", v)
	if !o.set {
		return o
	}
	if o.val == "" {
		s.errorf("server_name", `server_name "": empty (leave it out to verify the backend's host)`)
		o.set = false
		return o
	}
	name, err := checkHost(o.val, false, roleBackend)
	if err != nil {
		s.errorf("server_name", "server_name %q: %v", o.val, err)
		o.set = false
	}
	o.val = name
	return o
}

// filePath reads the path of a file the server reads at start and at every
// reload (a certificate, a key, CA certificates). A relative path is taken
// from the directory of the config file, so that it names the same file
// whatever directory sluice runs in.
func (s source) filePath(key string, v any) opt[string] {
	o := s.str(key, v)
	switch {
	case !o.set:
	case o.val == "":
		s.errorf(key, "%s %q: empty path", key, o.val)
		o.set = false
	case strings.ContainsRune(o.val, 0):
		s.errorf(key, "%s %q: invalid path", key, o.val)
		o.set = false
	case !filepath.IsAbs(o.val) && s.col.file != "":
		o.val = filepath.Join(filepath.Dir(s.col.file), o.val)
	}
	return o
}
