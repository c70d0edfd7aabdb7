package admin

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestTokenRequiredEverywhere(t *testing.T) {
	const secret = "s3cret-token-of-some-length"
	ctl := newTestController(t)
	base := startAdmin(t, ctl, secret)
	_, id := ctl.open("web")
	routes := []struct{ method, path string }{
		{"GET", "/"}, {"GET", "/metrics"}, {"GET", "/healthz"}, {"GET", "/api/v1/rules"},
		{"GET", "/api/v1/connections"}, {"DELETE", fmt.Sprintf("/api/v1/connections/%d", id)},
		{"POST", "/api/v1/reload"}, {"GET", "/nope"},
	}
	bad := map[string]string{
		"missing":          "",
		"wrong":            "Bearer wrong",
		"prefix of token":  "Bearer " + secret[:len(secret)-1],
		"token and more":   "Bearer " + secret + "x",
		"empty bearer":     "Bearer ",
		"basic scheme":     "Basic " + secret,
		"no scheme":        secret,
		"scheme glued":     "Bearer" + secret,
		"token in scheme ": secret + " " + secret,
	}
	for _, rt := range routes {
		for name, header := range bad {
			wantUnauthorized(t, rt.method, base+rt.path, name, header)
		}
	}
	if ctl.reloadCount() != 0 || len(ctl.closed()) != 0 {
		t.Fatal("a request without the right token reached the controller")
	}
	for _, rt := range routes {
		resp, body := do(t, rt.method, base+rt.path, secret)
		want := map[string]int{"DELETE": 204, "/nope": 404}[rt.method]
		if rt.path == "/nope" {
			want = 404
		}
		if want == 0 {
			want = 200
		}
		if resp.StatusCode != want {
			t.Errorf("%s %s with the token: %s %q, want %d", rt.method, rt.path, resp.Status, body, want)
		}
	}
	req, _ := http.NewRequest("GET", base+"/api/v1/rules", nil)
	req.Header.Set("Authorization", "bearer "+secret) // the scheme is case-insensitive
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("lower-case scheme: status %d, want 200", resp.StatusCode)
	}
}

// wantUnauthorized sends a request with an Authorization header (none if
// empty) and checks it is refused with 401 and a Bearer challenge.
func wantUnauthorized(t *testing.T, method, url, name, header string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if header != "" {
		req.Header.Set("Authorization", header)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("%s %s with %s token: status %d, want 401", method, url, name, resp.StatusCode)
	}
	if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Errorf("%s %s: WWW-Authenticate %q", method, url, got)
	}
}

func TestUnauthorizedResponses(t *testing.T) {
	ctl := newTestController(t)
	base := startAdmin(t, ctl, "tok")
	resp, body := do(t, "GET", base+"/api/v1/rules", "")
	wantJSONError(t, resp, body, http.StatusUnauthorized, "missing bearer token")
	resp, body = do(t, "GET", base+"/api/v1/rules", "nope")
	wantJSONError(t, resp, body, http.StatusUnauthorized, "wrong token")

	// A browser opening the dashboard gets the sign-in page, with no data.
	resp, body = do(t, "GET", base+"/", "")
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / without token: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(body, "#token=") || !strings.Contains(body, `id="signin"`) {
		t.Error("the sign-in page does not explain the #token= fragment or lacks its form")
	}
	for _, secretish := range []string{"web", "10.0.0.6", "127.0.0.1:8080", "rule-card"} {
		if strings.Contains(body, secretish) {
			t.Errorf("the sign-in page leaks %q", secretish)
		}
	}
	if resp.Header.Get("Content-Security-Policy") == "" {
		t.Error("the sign-in page has no CSP")
	}
}

func TestTokenMatches(t *testing.T) {
	want := sumOf("abc")
	cases := map[string]bool{
		"Bearer abc": true, "bearer abc": true, "BEARER abc": true, "Bearer  abc ": true,
		"Bearer abd": false, "Bearer ab": false, "Bearer abcd": false, "abc": false, "": false,
		"Token abc": false, "Bearer": false, "Bearer ": false,
	}
	for header, ok := range cases {
		if got := tokenMatches(header, &want); got != ok {
			t.Errorf("tokenMatches(%q) = %v, want %v", header, got, ok)
		}
	}
}

// sumOf returns what protect stores for token.
func sumOf(token string) [32]byte {
	g := protect(http.NotFoundHandler(), token, newPage()).(*guard)
	return g.creds.Load().sum
}

// TestTokenCompareIsConstantTime holds the property the timing of a
// request cannot show reliably: the token is compared only in tokenMatches,
// and only with crypto/subtle, never with == or a short-circuiting compare.
func TestTokenCompareIsConstantTime(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "auth.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var fn *ast.FuncDecl
	for _, d := range f.Decls {
		if d, ok := d.(*ast.FuncDecl); ok && d.Name.Name == "tokenMatches" {
			fn = d
		}
	}
	if fn == nil {
		t.Fatal("auth.go has no tokenMatches")
	}
	subtleCalls := 0
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BinaryExpr:
			// Only the constant-time results may be combined: a & b, then == 1.
			lit, isLit := n.Y.(*ast.BasicLit)
			if n.Op != token.AND && (n.Op != token.EQL || !isLit || lit.Value != "1") {
				t.Errorf("tokenMatches compares with %s at %s", n.Op, fset.Position(n.Pos()))
			}
		case *ast.SelectorExpr:
			if x, ok := n.X.(*ast.Ident); ok {
				switch {
				case x.Name == "subtle" && n.Sel.Name == "ConstantTimeCompare":
					subtleCalls++
				case x.Name == "bytes" || x.Name == "hmac" ||
					(x.Name == "strings" && n.Sel.Name != "Cut" && n.Sel.Name != "ToLower" && n.Sel.Name != "TrimSpace"):
					t.Errorf("tokenMatches uses %s.%s at %s", x.Name, n.Sel.Name, fset.Position(n.Pos()))
				}
			}
		}
		return true
	})
	if subtleCalls != 2 {
		t.Errorf("tokenMatches calls subtle.ConstantTimeCompare %d times, want 2 (scheme and token)", subtleCalls)
	}
	// Nothing else in the package may look at the token's hash.
	ast.Inspect(f, func(n ast.Node) bool {
		if d, ok := n.(*ast.FuncDecl); ok && (d.Name.Name == "tokenMatches" || d.Name.Name == "protect") {
			return false
		}
		if s, ok := n.(*ast.SelectorExpr); ok && s.Sel.Name == "sum" {
			if call := enclosingCallName(f, s); call != "tokenMatches" {
				t.Errorf("the token hash is used outside tokenMatches at %s", fset.Position(s.Pos()))
			}
		}
		return true
	})
}

// enclosingCallName returns the name of the function called with an
// argument containing n, if any.
func enclosingCallName(f *ast.File, n ast.Node) string {
	name := ""
	ast.Inspect(f, func(x ast.Node) bool {
		call, ok := x.(*ast.CallExpr)
		if !ok {
			return true
		}
		for _, a := range call.Args {
			if a.Pos() <= n.Pos() && n.End() <= a.End() {
				if id, ok := call.Fun.(*ast.Ident); ok {
					name = id.Name
				}
			}
		}
		return true
	})
	return name
}

func TestDNSRebindingRefusedWithoutToken(t *testing.T) {
	ctl := newTestController(t)
	base := startAdmin(t, ctl, "")
	port := base[strings.LastIndex(base, ":")+1:]
	cases := map[string]int{
		"127.0.0.1:" + port:          200,
		"localhost:" + port:          200,
		"LOCALHOST.:" + port:         200,
		"app.localhost:" + port:      200,
		"[::1]:" + port:              200,
		"10.1.2.3":                   200, // an IP literal cannot be rebound
		"evil.example.com:" + port:   403,
		"evil.example.com":           403,
		"localhost.evil.com:" + port: 403,
	}
	for host, want := range cases {
		req, _ := http.NewRequest("POST", base+"/api/v1/reload", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %q: status %d, want %d", host, resp.StatusCode, want)
		}
	}
	if n := ctl.reloadCount(); n != 6 {
		t.Errorf("%d reloads went through, want 6 (one per allowed host)", n)
	}

	// With a token, the token is the protection: any host name may be used.
	ctl2 := newTestController(t)
	base2 := startAdmin(t, ctl2, "tok")
	req, _ := http.NewRequest("GET", base2+"/healthz", nil)
	req.Host = "sluice.example.com"
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("host name with token: status %d, want 200", resp.StatusCode)
	}
}

func TestCrossOriginWritesRefused(t *testing.T) {
	ctl := newTestController(t)
	base := startAdmin(t, ctl, "")
	_, id := ctl.open("web")
	send := func(method, path string, hdr map[string]string) (*http.Response, string) {
		req, _ := http.NewRequest(method, base+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	cross := map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}
	resp, body := send("POST", "/api/v1/reload", cross)
	wantJSONError(t, resp, body, http.StatusForbidden, "cross-origin")
	resp, body = send("DELETE", fmt.Sprintf("/api/v1/connections/%d", id), cross)
	wantJSONError(t, resp, body, http.StatusForbidden, "cross-origin")
	if ctl.reloadCount() != 0 || len(ctl.closed()) != 0 {
		t.Fatal("a cross-origin write reached the controller")
	}
	// Reads stay open to other origins' navigation, and same-origin writes work.
	if resp, _ := send("GET", "/api/v1/rules", cross); resp.StatusCode != 200 {
		t.Errorf("cross-site GET: %d, want 200", resp.StatusCode)
	}
	if resp, _ := send("POST", "/api/v1/reload", map[string]string{"Sec-Fetch-Site": "same-origin"}); resp.StatusCode != 200 {
		t.Errorf("same-origin POST: %d, want 200", resp.StatusCode)
	}
}
