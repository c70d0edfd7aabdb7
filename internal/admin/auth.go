package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
)

// guard holds what protect checks on every request.
type guard struct {
	inner http.Handler // the routes behind cross-origin protection
	page  *page
	creds atomic.Pointer[credentials] // replaced whole when the token changes
}

// credentials are the token a guard asks for.
type credentials struct {
	token bool     // a token is configured
	sum   [32]byte // SHA-256 of the token
}

// newCredentials returns the credentials for token; surrounding spaces do
// not count, and an empty token means none.
func newCredentials(token string) *credentials {
	token = strings.TrimSpace(token)
	return &credentials{token: token != "", sum: sha256.Sum256([]byte(token))}
}

// protect wraps next with the checks every request goes through: security
// headers, DNS-rebinding protection when there is no token, the bearer
// token when there is one, and cross-origin protection for POST and DELETE.
func protect(next http.Handler, token string, p *page) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "cross-origin request refused: "+r.Method+" from another site")
	}))
	g := &guard{inner: cop.Handler(next), page: p}
	g.creds.Store(newCredentials(token))
	return g
}

// ServeHTTP applies the checks in order and passes the request on.
func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	creds := g.creds.Load()
	if !creds.token && !safeHost(r.Host) {
		writeError(w, http.StatusForbidden, fmt.Sprintf(
			"host %q refused: without admin_token the admin server answers only to IP addresses and localhost (DNS rebinding protection)", r.Host))
		return
	}
	if creds.token && !tokenMatches(r.Header.Get("Authorization"), &creds.sum) {
		g.unauthorized(w, r)
		return
	}
	g.inner.ServeHTTP(w, r)
}

// unauthorized answers a request without the right token: a browser opening
// the dashboard gets the sign-in page, everything else a JSON error.
func (g *guard) unauthorized(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
	if r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		g.page.serveSignIn(w, r)
		return
	}
	msg := "missing bearer token: send Authorization: Bearer TOKEN"
	if r.Header.Get("Authorization") != "" {
		msg = "wrong token or malformed Authorization header"
	}
	writeError(w, http.StatusUnauthorized, msg)
}

// tokenMatches reports whether an Authorization header value carries the
// token whose SHA-256 is want. Both sides are hashed first and compared with
// crypto/subtle, so the time taken says nothing about how close a guess was
// or how long the token is. Surrounding spaces do not count.
func tokenMatches(header string, want *[32]byte) bool {
	scheme, cred, _ := strings.Cut(header, " ")
	got := sha256.Sum256([]byte(strings.TrimSpace(cred)))
	match := subtle.ConstantTimeCompare([]byte(strings.ToLower(scheme)), []byte("bearer")) &
		subtle.ConstantTimeCompare(got[:], want[:])
	return match == 1
}

// safeHost reports whether a request's Host names an IP address or
// localhost, which a DNS-rebinding attack cannot produce. An empty Host
// (HTTP/1.0, not a browser) is allowed.
func safeHost(hostport string) bool {
	if hostport == "" {
		return true
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}
