// Package fleet keeps a fleet of sluice instances on one config through
// etcd: the config document under {prefix}config, each instance's report
// under {prefix}instances/{name} (kept alive with a lease), and runtime
// backend state under {prefix}state/backends/. It speaks to etcd with the
// official client and knows nothing of the server it feeds: cmd/sluice
// wires what it reads into the same reload path as SIGHUP.
package fleet

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Environment variables that give the etcd user name and password, never
// flags (a flag would show in ps).
const (
	UsernameEnv = "SLUICE_ETCD_USERNAME"
	PasswordEnv = "SLUICE_ETCD_PASSWORD"
)

// DefaultPrefix is where sluice's keys live unless --etcd-prefix says
// otherwise.
const DefaultPrefix = "/sluice/"

// requestTimeout bounds one request to etcd (a read, a write, a grant).
const requestTimeout = 3 * time.Second

// Options say how to reach etcd and where sluice's keys are.
type Options struct {
	Endpoints          []string // e.g. http://10.0.0.2:2379
	Prefix             string   // e.g. /sluice/; always ends in "/"
	CA, Cert, Key      string   // files, for an etcd served over TLS
	Username, Password string   // from the environment
}

// OptionsFrom builds Options from the flags' values and the environment.
// endpoints is a comma-separated list.
func OptionsFrom(endpoints, prefix, ca, cert, key string) (Options, error) {
	o := Options{Prefix: prefix, CA: ca, Cert: cert, Key: key,
		Username: os.Getenv(UsernameEnv), Password: os.Getenv(PasswordEnv)}
	for _, e := range strings.Split(endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			o.Endpoints = append(o.Endpoints, e)
		}
	}
	if len(o.Endpoints) == 0 {
		return o, errors.New("--etcd: no endpoint given")
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(o.Prefix, "/") {
		o.Prefix += "/"
	}
	if (o.Cert == "") != (o.Key == "") {
		return o, errors.New("--etcd-cert and --etcd-key go together")
	}
	return o, nil
}

// ConfigKey is the key of the config document.
func (o Options) ConfigKey() string { return o.Prefix + "config" }

// InstancesPrefix is the prefix of the instances' keys.
func (o Options) InstancesPrefix() string { return o.Prefix + "instances/" }

// Connect makes a client for o. It does not wait for etcd: a request
// made while no member answers fails after its own timeout.
func Connect(o Options) (*clientv3.Client, error) {
	tlsCfg, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}
	return clientv3.New(clientv3.Config{
		Endpoints:            o.Endpoints,
		DialTimeout:          requestTimeout,
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		TLS:                  tlsCfg,
		Username:             o.Username,
		Password:             o.Password,
		Logger:               zap.NewNop(), // sluice logs what matters itself
	})
}

// tlsConfig is the client's TLS configuration, nil when no file is given.
func (o Options) tlsConfig() (*tls.Config, error) {
	if o.CA == "" && o.Cert == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CA != "" {
		pem, err := os.ReadFile(o.CA)
		if err != nil {
			return nil, fmt.Errorf("--etcd-ca: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--etcd-ca %s: no certificate in it", o.CA)
		}
	}
	if o.Cert != "" {
		pair, err := tls.LoadX509KeyPair(o.Cert, o.Key)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cert/--etcd-key: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}
