package web_test

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/web"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, h http.Handler, target string, hdr ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	require.NoError(t, err)
	return string(b)
}

// The page, the client and its types, each with its content type, and
// revalidated by ETag.
func TestFiles(t *testing.T) {
	h := web.NewHandler(web.Options{})
	for _, c := range []struct{ path, ctype, has string }{
		{"/", "text/html; charset=utf-8", `<script type="module" src="/demo.js">`},
		{"/index.html", "text/html; charset=utf-8", "<canvas"},
		{"/demo.js", "text/javascript; charset=utf-8", `from "/roomwire.js"`},
		{"/roomwire.js", "text/javascript; charset=utf-8", "export async function connect(url, opts = {})"},
		{"/roomwire.d.ts", "application/typescript; charset=utf-8", "export function connect(url: string, opts?: ConnectOptions): Promise<Client>;"},
	} {
		r := get(t, h, c.path)
		require.Equal(t, http.StatusOK, r.StatusCode, c.path)
		require.Equal(t, c.ctype, r.Header.Get("Content-Type"), c.path)
		require.Equal(t, "nosniff", r.Header.Get("X-Content-Type-Options"))
		require.Contains(t, body(t, r), c.has, c.path)
		etag := r.Header.Get("ETag")
		require.NotEmpty(t, etag)
		require.Equal(t, http.StatusNotModified, get(t, h, c.path, "If-None-Match", etag).StatusCode, c.path)
	}
	req := httptest.NewRequest(http.MethodHead, "/roomwire.js", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Empty(t, rec.Body.String())
	require.NotEmpty(t, rec.Header().Get("Content-Length"))

	require.Equal(t, http.StatusNotFound, get(t, h, "/nothing").StatusCode)
	require.Equal(t, http.StatusNotFound, get(t, h, "/ws").StatusCode, "no WebSocket handler")
	require.Equal(t, http.StatusNotFound, get(t, h, "/cert-hash").StatusCode, "no WebTransport")
	require.Equal(t, http.StatusNotFound, get(t, h, "/dev-token").StatusCode, "no dev key")
	post := httptest.NewRecorder()
	h.ServeHTTP(post, httptest.NewRequest(http.MethodPost, "/roomwire.js", strings.NewReader("x")))
	require.Equal(t, http.StatusNotFound, post.Code, "not a GET: left to Next")
}

// /ws goes to the WebSocket handler; what the handler does not serve goes
// to Next, so a game server keeps its own routes.
func TestWebSocketAndNext(t *testing.T) {
	ws := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "upgrade here") })
	next := http.NewServeMux()
	next.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	next.HandleFunc("/ws", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "next's /ws") })
	h := web.NewHandler(web.Options{WebSocket: ws, Next: next})
	require.Equal(t, "upgrade here", body(t, get(t, h, "/ws")))
	require.Equal(t, "ok\n", body(t, get(t, h, "/healthz")))
	require.Equal(t, http.StatusNotFound, get(t, h, "/metrics").StatusCode)
	require.Contains(t, body(t, get(t, h, "/")), "<canvas", "the page stays the handler's")

	// Without a WebSocket handler of its own, /ws is Next's.
	require.Equal(t, "next's /ws", body(t, get(t, web.NewHandler(web.Options{Next: next}), "/ws")))
}

// /cert-hash names the certificate's SHA-256 and the WebTransport URL on
// the host the page came from.
func TestCertHash(t *testing.T) {
	der := []byte("the certificate's DER")
	conf := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}}}}
	hash, err := web.CertHash(conf)
	require.NoError(t, err)
	want := sha256.Sum256(der)
	require.Equal(t, want[:], hash)

	h := web.NewHandler(web.Options{CertSHA256: hash, WebTransportPort: 7777})
	for host, url := range map[string]string{
		"127.0.0.1:8080": "https://127.0.0.1:7777/wt",
		"localhost:8080": "https://localhost:7777/wt",
		"[::1]:8080":     "https://[::1]:7777/wt",
		"game.example":   "https://game.example:7777/wt",
	} {
		req := httptest.NewRequest(http.MethodGet, "/cert-hash", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code)
		require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
		require.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
		require.Equal(t, "*", rec.Header().Get("Access-Control-Allow-Origin"), "readable by a game's page on another origin")
		var info web.CertInfo
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &info))
		require.Equal(t, url, info.WebTransport, host)
		got, err := base64.StdEncoding.DecodeString(info.SHA256)
		require.NoError(t, err)
		require.Equal(t, hash, got)
	}

	var info map[string]string
	r := get(t, web.NewHandler(web.Options{WebTransportURL: "https://wt.game.example/play"}), "/cert-hash")
	require.NoError(t, json.NewDecoder(r.Body).Decode(&info))
	require.Equal(t, map[string]string{"sha256": "", "webtransport": "https://wt.game.example/play"}, info)

	_, err = web.CertHash(nil)
	require.Error(t, err)
}

// /dev-token mints a token for the protocol id under the dev key: its
// wire form opens on a server with that key, and its keys are the ones the
// server will check the proof with.
func TestDevToken(t *testing.T) {
	now := time.Unix(1735689600, 0)
	key := token.DevKey
	h := web.NewHandler(web.Options{DevKey: &key, ProtocolID: 0x1234, Now: func() time.Time { return now }})
	r := get(t, h, "/dev-token")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, "application/json", r.Header.Get("Content-Type"))
	require.Equal(t, "no-store", r.Header.Get("Cache-Control"))
	require.Empty(t, r.Header.Get("Access-Control-Allow-Origin"), "not readable by other sites' pages")
	var raw map[string]any
	require.NoError(t, json.NewDecoder(r.Body).Decode(&raw))
	require.ElementsMatch(t, []string{"wire", "client_to_server_key", "server_to_client_key", "expires"}, keys(raw))
	require.Equal(t, float64(now.Unix()+45), raw["expires"])

	dec := func(s any) []byte {
		b, err := base64.StdEncoding.DecodeString(s.(string))
		require.NoError(t, err)
		return b
	}
	wire := dec(raw["wire"])
	require.Len(t, wire, token.WireSize)
	claims, err := token.NewOpener(key, 0x1234).Open(wire, now)
	require.NoError(t, err)
	require.Equal(t, claims.ClientToServer[:], dec(raw["client_to_server_key"]))
	require.Equal(t, claims.ServerToClient[:], dec(raw["server_to_client_key"]))
	_, err = token.NewOpener(key, token.DefaultProtocolID).Open(wire, now)
	require.ErrorIs(t, err, token.ErrProtocol)

	// Each request gets a token of its own; the default protocol id is the demo's.
	h = web.NewHandler(web.Options{DevKey: &key})
	var a, b web.DevToken
	require.NoError(t, json.NewDecoder(get(t, h, "/dev-token").Body).Decode(&a))
	require.NoError(t, json.NewDecoder(get(t, h, "/dev-token").Body).Decode(&b))
	require.NotEqual(t, a.Wire, b.Wire)
	_, err = token.NewOpener(key, token.DefaultProtocolID).Open(dec(a.Wire), time.Now())
	require.NoError(t, err)
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
