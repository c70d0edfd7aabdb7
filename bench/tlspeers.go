package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The forwarders' configurations for the TLS figures (tlsfigures.go). Each
// passthrough configuration is one listener with three routes by server
// name and no default; each termination configuration holds the bench's
// certificate, allows TLS 1.3 only, X25519 only and (where the forwarder
// lets one choose) AES-128-GCM only, and relays plaintext to one backend.

// sluiceTLSNote describes sluiceTLSArgv's configurations.
const sluiceTLSNote = "sluice (tls): a config file (-c), log_level warn; passthrough: three [[rule.route]] with sni = [name];" +
	" termination: [rule.tls] cert, key, min_version 1.3 (crypto/tls; the clients offer X25519 only and prefer AES-128-GCM)"

// sluiceTLSArgv returns sluice's command line for a TLS figure: a config
// file with one rule, [[rule.route]] tables for passthrough or a
// [rule.tls] table for termination. crypto/tls picks X25519 and
// AES-128-GCM itself, as the clients offer only the one group and prefer
// that suite.
func sluiceTLSArgv(bin string) func(dir string, s tlsSpec) ([]string, error) {
	return func(dir string, s tlsSpec) ([]string, error) {
		var b strings.Builder
		fmt.Fprintf(&b, "log_level = \"warn\"\n\n[[rule]]\nname   = \"bench\"\nlisten = %q\n", s.listen)
		switch s.mode {
		case passthrough:
			for i, name := range sniNames {
				fmt.Fprintf(&b, "\n[[rule.route]]\nname     = \"r%d\"\nsni      = [%q]\nbackends = [%q]\n", i+1, name, s.routes[i])
			}
		case terminate:
			fmt.Fprintf(&b, "backends = [%q]\n\n[rule.tls]\ncert        = %q\nkey         = %q\nmin_version = \"1.3\"\n",
				s.backend, s.m.certFile, s.m.keyFile)
		}
		path, err := writeConfig(dir, "sluice.toml", b.String())
		if err != nil {
			return nil, fmt.Errorf("sluice: %w", err)
		}
		return []string{bin, "-c", path, "--log-level", "warn"}, nil
	}
}

// haproxyTLSConfig is HAProxy's configuration for a TLS figure: as
// haproxyConfig, with the frontend and backends that %[3]s gives.
const haproxyTLSConfig = `global
	nbthread 2
	maxconn %[1]d
	ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256

defaults
	mode tcp
	maxconn %[1]d
	timeout connect 5s
	timeout client 1h
	timeout server 1h

frontend bench
	bind %[2]s%[3]s
`

// haproxyTLSNote describes haproxyTLSArgv's configurations.
const haproxyTLSNote = "haproxy (tls): passthrough: tcp-request inspect-delay 5s, content accept if req_ssl_hello_type 1, use_backend per req.ssl_sni -i;" +
	" termination: bind ssl crt (cert and key in one file) ssl-min-ver TLSv1.3 curves X25519, ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256"

// haproxyTLSArgv returns HAProxy's command line for a TLS figure.
func haproxyTLSArgv(bin string, maxconn int) func(dir string, s tlsSpec) ([]string, error) {
	return func(dir string, s tlsSpec) ([]string, error) {
		var b strings.Builder
		switch s.mode {
		case passthrough:
			b.WriteString("\n\ttcp-request inspect-delay 5s\n\ttcp-request content accept if { req_ssl_hello_type 1 }\n")
			for i, name := range sniNames {
				fmt.Fprintf(&b, "\tuse_backend r%d if { req.ssl_sni -i %s }\n", i+1, name)
			}
			for i, addr := range s.routes {
				fmt.Fprintf(&b, "\nbackend r%d\n\tserver s%d %s\n", i+1, i+1, addr)
			}
		case terminate:
			fmt.Fprintf(&b, " ssl crt %s ssl-min-ver TLSv1.3 curves X25519\n\tdefault_backend relay\n\nbackend relay\n\tserver backend %s\n",
				s.m.combinedFile, s.backend)
		}
		path, err := writeConfig(dir, "haproxy.cfg", fmt.Sprintf(haproxyTLSConfig, maxconn, s.listen, b.String()))
		if err != nil {
			return nil, fmt.Errorf("haproxy: %w", err)
		}
		return []string{bin, "-db", "-f", path}, nil
	}
}

// nginxTLSConfig is nginx's configuration for a TLS figure: as
// nginxConfig, with the stream block's contents that %[5]s gives.
const nginxTLSConfig = `%[1]s
daemon off;
worker_processes 2;
worker_rlimit_nofile %[2]d;
pid %[3]s/nginx.pid;
error_log %[3]s/error.log warn;

events {
	worker_connections %[4]d;
}

stream {
%[5]s
}
`

// nginxServerTail ends every server block of nginxTLSConfig: as the plain
// configuration's.
const nginxServerTail = `		proxy_half_close on;
		proxy_connect_timeout 5s;
		proxy_timeout 1h;
	}
`

// nginxTLSNote describes nginxTLSArgv's configurations.
const nginxTLSNote = "nginx (tls): passthrough: ssl_preread on, map $ssl_preread_server_name to three upstreams, proxy_pass $upstream;" +
	" termination: listen ssl, ssl_protocols TLSv1.3, ssl_ecdh_curve X25519, ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256"

// nginxTLSArgv returns nginx's command line for a TLS figure.
func nginxTLSArgv(bin, loadModule string, nofile uint64, workerConns int) func(dir string, s tlsSpec) ([]string, error) {
	return func(dir string, s tlsSpec) ([]string, error) {
		var b strings.Builder
		switch s.mode {
		case passthrough:
			for i, addr := range s.routes {
				fmt.Fprintf(&b, "\tupstream r%d {\n\t\tserver %s;\n\t}\n", i+1, addr)
			}
			b.WriteString("\tmap $ssl_preread_server_name $upstream {\n")
			for i, name := range sniNames {
				fmt.Fprintf(&b, "\t\t%s r%d;\n", name, i+1)
			}
			fmt.Fprintf(&b, "\t}\n\tserver {\n\t\tlisten %s;\n\t\tssl_preread on;\n\t\tproxy_pass $upstream;\n%s", s.listen, nginxServerTail)
		case terminate:
			fmt.Fprintf(&b, "\tserver {\n\t\tlisten %s ssl;\n\t\tssl_certificate %s;\n\t\tssl_certificate_key %s;\n", s.listen, s.m.certFile, s.m.keyFile)
			b.WriteString("\t\tssl_protocols TLSv1.3;\n\t\tssl_ecdh_curve X25519;\n\t\tssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;\n")
			fmt.Fprintf(&b, "\t\tproxy_pass %s;\n%s", s.backend, nginxServerTail)
		}
		text := fmt.Sprintf(nginxTLSConfig, loadModule, nofile, dir, workerConns, b.String())
		path, err := writeConfig(dir, "nginx.conf", text)
		if err != nil {
			return nil, fmt.Errorf("nginx: %w", err)
		}
		return []string{bin, "-p", dir + "/", "-c", path, "-e", filepath.Join(dir, "error.log")}, nil
	}
}

// writeConfig writes text into dir/name and returns its path.
func writeConfig(dir, name, text string) (string, error) {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return "", err
	}
	return path, nil
}
