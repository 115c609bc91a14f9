// Package web serves Roomwire's browser side of a game server's HTTP port:
// the demo page (the arena game in the browser), the JavaScript client
// (roomwire.js, an ES module with no build step, and its TypeScript types
// roomwire.d.ts), the WebSocket transport at /ws, the WebTransport
// certificate's hash at /cert-hash and, in development, connect tokens at
// /dev-token. Dashboard serves the files of the game server's live
// dashboard (web/dashboard/), whose data the game server serves.
//
// A library user mounts it with one call:
//
//	http.Handle("/", web.NewHandler(web.Options{WebSocket: wsListener, Next: myRoutes}))
//
// The files are embedded in the binary (go:embed); the handler keeps no
// state between requests and is safe for concurrent use.
//
// The JSON of /cert-hash is {"sha256": "<base64 of the SHA-256 of the
// certificate's DER>", "webtransport": "https://<host>:<port>/wt"}; that of
// /dev-token is {"wire": "<base64 of the 1066-byte wire form>",
// "client_to_server_key": "<base64>", "server_to_client_key": "<base64>",
// "expires": <Unix seconds>}, the form a game's matchmaker hands its
// clients too (PROTOCOL.md 7.2, 7.3).
package web

import (
	"crypto/sha256"
	"crypto/tls"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/roomwire/roomwire/netcode/token"
)

//go:embed client/index.html client/demo.js client/roomwire.js client/roomwire.d.ts
//go:embed dashboard/index.html dashboard/dashboard.js dashboard/dashboard.css
var files embed.FS

// Options configure the handler. The zero value serves the page and the
// client, with nothing at /ws, /cert-hash or /dev-token.
type Options struct {
	// WebSocket is the WebSocket transport's handler, mounted at /ws. Nil
	// leaves /ws to Next.
	WebSocket http.Handler

	// CertSHA256 is the SHA-256 of the WebTransport certificate's DER
	// (CertHash computes it), for the page's serverCertificateHashes.
	// Browsers accept such a pin only for an ECDSA certificate valid at
	// most 14 days, as netcode.DevTLSConfig's is; leave it empty for a
	// certificate the browser verifies by name.
	CertSHA256 []byte
	// WebTransportURL is the URL /cert-hash names. Empty builds it from
	// WebTransportPort: https://<the request's host>:<port><path>.
	WebTransportURL string
	// WebTransportPort is the UDP port of WebTransport. Zero, with no
	// WebTransportURL, means no WebTransport: /cert-hash is left to Next.
	WebTransportPort int
	// WebTransportPath is the WebTransport session's path. Empty means
	// "/wt".
	WebTransportPath string

	// DevKey, when set, turns on /dev-token, which mints a connect token
	// under it for anyone who asks: for development servers only (the
	// public token.DevKey). A production game's matchmaker mints tokens
	// (token.Issue) and hands out the same JSON.
	DevKey *token.Key
	// ProtocolID is the dev tokens' protocol id. Zero means
	// token.DefaultProtocolID.
	ProtocolID uint64
	// DevTokenTTL is how long a dev token admits its holder. Zero means
	// token.Issue's default, 45 s.
	DevTokenTTL time.Duration
	// Now is the clock dev tokens are issued by. Nil means time.Now.
	Now func() time.Time

	// Next serves every request the handler does not: a game server's own
	// routes, such as the demo server's /healthz and /metrics. Nil means
	// they are not found.
	Next http.Handler
}

// Content types of the embedded files.
const (
	typeHTML = "text/html; charset=utf-8"
	typeJS   = "text/javascript; charset=utf-8"
	typeTS   = "application/typescript; charset=utf-8"
	typeJSON = "application/json"
	typeCSS  = "text/css; charset=utf-8"
)

// NewHandler returns the handler for the browser side: GET / (the demo
// page), /demo.js, /roomwire.js and /roomwire.d.ts, and, as configured,
// /ws, /cert-hash and /dev-token; every other request goes to o.Next.
func NewHandler(o Options) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", file("client/index.html", typeHTML))
	mux.Handle("GET /index.html", file("client/index.html", typeHTML))
	mux.Handle("GET /demo.js", file("client/demo.js", typeJS))
	mux.Handle("GET /roomwire.js", file("client/roomwire.js", typeJS))
	mux.Handle("GET /roomwire.d.ts", file("client/roomwire.d.ts", typeTS))
	if o.WebSocket != nil {
		mux.Handle("/ws", o.WebSocket)
	}
	if o.WebTransportURL != "" || o.WebTransportPort != 0 {
		mux.HandleFunc("GET /cert-hash", o.certHash)
	}
	if o.DevKey != nil {
		mux.HandleFunc("GET /dev-token", o.devToken)
	}
	next := o.Next
	if next == nil {
		next = http.NotFoundHandler()
	}
	mux.Handle("/", next)
	return mux
}

// file serves one embedded file. The page and the client change with the
// server, so browsers revalidate them each time (no-cache, with an ETag).
func file(name, contentType string) http.Handler {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("web: missing embedded file " + name) // a build without the files
	}
	sum := sha256.Sum256(b)
	etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Length", strconv.Itoa(len(b)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(b)
	})
}

// CertInfo is the JSON of /cert-hash.
type CertInfo struct {
	// SHA256 is the base64 of the certificate's SHA-256; empty when the
	// browser verifies the certificate by name.
	SHA256 string `json:"sha256"`
	// WebTransport is the URL of the WebTransport endpoint.
	WebTransport string `json:"webtransport"`
}

func (o *Options) certHash(w http.ResponseWriter, r *http.Request) {
	u := o.WebTransportURL
	if u == "" {
		p := o.WebTransportPath
		if p == "" {
			p = "/wt"
		}
		u = "https://" + net.JoinHostPort(requestHost(r), strconv.Itoa(o.WebTransportPort)) + path.Clean("/"+p)
	}
	info := CertInfo{WebTransport: u}
	if len(o.CertSHA256) > 0 {
		info.SHA256 = base64.StdEncoding.EncodeToString(o.CertSHA256)
	}
	// The hash is public: a game's page on another origin may read it.
	// /dev-token has no such header, so other sites cannot mint tokens
	// through a player's browser.
	w.Header().Set("Access-Control-Allow-Origin", "*")
	writeJSON(w, info)
}

// requestHost is the host the page was loaded from, without its port.
func requestHost(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "" {
		return "127.0.0.1"
	}
	return host
}

// DevToken is the JSON of /dev-token, the form in which a matchmaker hands
// a connect token to a browser client: its wire form and session keys in
// base64, and its expiry in Unix seconds.
type DevToken struct {
	Wire           string `json:"wire"`
	ClientToServer string `json:"client_to_server_key"`
	ServerToClient string `json:"server_to_client_key"`
	Expires        int64  `json:"expires"`
}

// TokenJSON is t in the JSON form of /dev-token, for a matchmaker's reply.
func TokenJSON(t *token.ConnectToken) DevToken {
	enc := base64.StdEncoding.EncodeToString
	return DevToken{
		Wire:           enc(t.Wire()),
		ClientToServer: enc(t.ClientToServer[:]),
		ServerToClient: enc(t.ServerToClient[:]),
		Expires:        t.Expires.Unix(),
	}
}

func (o *Options) devToken(w http.ResponseWriter, _ *http.Request) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	pid := o.ProtocolID
	if pid == 0 {
		pid = token.DefaultProtocolID
	}
	t, err := token.Issue(*o.DevKey, token.Params{ProtocolID: pid, TTL: o.DevTokenTTL}, now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, TokenJSON(t))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", typeJSON)
	if w.Header().Get("Cache-Control") == "" {
		w.Header().Set("Cache-Control", "no-store")
	}
	_ = json.NewEncoder(w).Encode(v)
}

// CertHash is the SHA-256 of the DER of the first certificate in conf,
// the value a page passes in serverCertificateHashes.
func CertHash(conf *tls.Config) ([]byte, error) {
	if conf == nil || len(conf.Certificates) == 0 || len(conf.Certificates[0].Certificate) == 0 {
		return nil, errors.New("web: no certificate in the TLS configuration")
	}
	sum := sha256.Sum256(conf.Certificates[0].Certificate[0])
	return sum[:], nil
}
