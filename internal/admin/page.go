package admin

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// static holds the dashboard's sources, written for sluice. They are put
// together into self-contained pages (no request for an asset, so a page
// that has the token can load all of itself).
//
//go:embed static
var static embed.FS

// page is the dashboard and sign-in pages, assembled once.
type page struct {
	dashboard []byte
	signIn    []byte
	csp       string // Content-Security-Policy for both pages
}

// newPage assembles the pages from the embedded sources. Their inline
// script and style are allowed by hash in the CSP, and by nothing else.
func newPage() *page {
	css := mustRead("static/dashboard.css")
	// The dashboard's script is its charts and rates, then the page itself,
	// which uses them: one inline script, allowed by one hash.
	dashJS := mustRead("static/charts.js") + "\n" + mustRead("static/certs.js") + "\n" + mustRead("static/fleet.js") + "\n" +
		mustRead("static/source.js") + "\n" +
		mustRead("static/dashboard.js")
	signJS := mustRead("static/signin.js")
	p := &page{
		dashboard: assemble(mustRead("static/dashboard.html"), css, dashJS),
		signIn:    assemble(mustRead("static/signin.html"), css, signJS),
	}
	// The sign-in page writes the dashboard into its own document, which
	// keeps the sign-in page's policy: one policy allows both.
	p.csp = strings.Join([]string{
		"default-src 'none'",
		"script-src " + hashSource(dashJS) + " " + hashSource(signJS),
		"style-src " + hashSource(css),
		"connect-src 'self'",
		"img-src data:",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
	return p
}

// serveDashboard writes the dashboard page.
func (p *page) serveDashboard(w http.ResponseWriter, r *http.Request) {
	p.write(w, r, http.StatusOK, p.dashboard)
}

// serveSignIn writes the sign-in page with status 401.
func (p *page) serveSignIn(w http.ResponseWriter, r *http.Request) {
	p.write(w, r, http.StatusUnauthorized, p.signIn)
}

// write sends an assembled page.
func (p *page) write(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", p.csp)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// assemble puts css and js into an HTML template at the markers
// /*STYLE*/ and /*SCRIPT*/.
func assemble(html, css, js string) []byte {
	for _, m := range []string{"/*STYLE*/", "/*SCRIPT*/"} {
		if strings.Count(html, m) != 1 {
			panic(fmt.Sprintf("admin: embedded page template: want exactly one %s marker", m))
		}
	}
	for _, s := range []string{css, js} {
		if strings.Contains(strings.ToLower(s), "</") {
			panic("admin: embedded style or script contains \"</\", which would end its element early")
		}
	}
	return []byte(strings.NewReplacer("/*STYLE*/", css, "/*SCRIPT*/", js).Replace(html))
}

// hashSource returns the CSP source expression that allows exactly s as an
// inline script or style.
func hashSource(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// mustRead returns an embedded file; a missing one is a build mistake.
func mustRead(name string) string {
	f, err := static.Open(name)
	if err != nil {
		panic("admin: embedded file missing: " + err.Error())
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		panic("admin: read embedded " + name + ": " + err.Error())
	}
	return string(b)
}
