package web_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/web"
)

// The dashboard's page, script and stylesheet, each with its content type;
// the page kept to its own origin by its Content-Security-Policy.
func TestDashboardFiles(t *testing.T) {
	h := web.Dashboard()
	files := map[string]string{}
	for _, c := range []struct{ path, ctype, has string }{
		{"/dashboard", "text/html; charset=utf-8", `<script type="module" src="dashboard/dashboard.js">`},
		{"/dashboard/dashboard.js", "text/javascript; charset=utf-8", `new URL("dashboard/data.json", location.href)`},
		{"/dashboard/dashboard.css", "text/css; charset=utf-8", "#rooms"},
	} {
		r := get(t, h, c.path)
		require.Equal(t, http.StatusOK, r.StatusCode, c.path)
		require.Equal(t, c.ctype, r.Header.Get("Content-Type"), c.path)
		files[c.path] = body(t, r)
		require.Contains(t, files[c.path], c.has, c.path)
		etag := r.Header.Get("ETag")
		require.NotEmpty(t, etag)
		require.Equal(t, http.StatusNotModified, get(t, h, c.path, "If-None-Match", etag).StatusCode, c.path)
	}
	page := get(t, h, "/dashboard")
	csp := page.Header.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		require.Contains(t, csp, d)
	}
	require.Equal(t, "no-referrer", page.Header.Get("Referrer-Policy"), "the URL may hold the token")
	require.Equal(t, http.StatusNotFound, get(t, h, "/dashboard/nothing.js").StatusCode)

	// Self-contained: nothing loaded from anywhere else (the only URL in
	// the script is SVG's namespace, a name, never fetched).
	for _, attr := range regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(files["/dashboard"], -1) {
		require.True(t, strings.HasPrefix(attr[1], "dashboard/") || strings.HasPrefix(attr[1], "data:"), "the page loads %q", attr[1])
	}
	require.NotContains(t, files["/dashboard/dashboard.css"], "url(")
	require.NotContains(t, files["/dashboard/dashboard.css"], "@import")
	js := strings.ReplaceAll(files["/dashboard/dashboard.js"], `"http://www.w3.org/2000/svg"`, "")
	require.NotRegexp(t, `https?://|//[a-z]+\.`, js)
	require.NotContains(t, js, "innerHTML", "values from the server go in as text")
}
