package web

import "net/http"

// dashboardCSP keeps the dashboard's page to its own server: no script,
// style or connection anywhere else, no framing by other sites.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Dashboard serves the files of the game server's live, read-only
// dashboard: GET /dashboard (the page), /dashboard/dashboard.js and
// /dashboard/dashboard.css, hand-written, with no build step and nothing
// fetched from elsewhere, so that it works offline. The page is static:
// what it shows comes from the JSON it polls once a second,
// dashboard/data.json and rooms/{name} relative to the page, which the
// game server serves beside it (cmd/gameserver). The page goes with a
// Content-Security-Policy that allows its own origin only, and sends no
// Referer, since its URL may hold a ?token=. Mount the handler at those
// paths, and guard /dashboard as the data is guarded; the script and
// stylesheet hold nothing but this package's code.
func Dashboard() http.Handler {
	page := file("dashboard/index.html", typeHTML)
	mux := http.NewServeMux()
	mux.Handle("GET /dashboard", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", dashboardCSP)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		page.ServeHTTP(w, r)
	}))
	mux.Handle("GET /dashboard/dashboard.js", file("dashboard/dashboard.js", typeJS))
	mux.Handle("GET /dashboard/dashboard.css", file("dashboard/dashboard.css", typeCSS))
	return mux
}
