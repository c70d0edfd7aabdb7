package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
)

// The results of a handshake, as metrics and logs name them.
const (
	ResultOK      = "ok"
	ResultVerify  = "verify"  // the peer's certificate did not verify
	ResultTimeout = "timeout" // the handshake ran out of time
	ResultError   = "error"   // anything else: a protocol error, a reset, an alert
)

// Result words a handshake's error as one of the results above.
func Result(err error) string {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		invalid  x509.CertificateInvalidError
		hostname x509.HostnameError
		netErr   net.Error
	)
	switch {
	case err == nil:
		return ResultOK
	case errors.As(err, &verify), errors.As(err, &unknown), errors.As(err, &invalid), errors.As(err, &hostname):
		return ResultVerify
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return ResultTimeout
	}
	return ResultError
}
