package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode/token"
)

// The side port serves the browser's page and client beside its own
// routes, and development tokens only in -dev mode.
func TestSidePortPages(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "token.key")
	require.NoError(t, os.WriteFile(keyFile, []byte(token.NewKey().String()+"\n"), 0o600))
	for _, dev := range []bool{true, false} {
		o := options{quicAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0", ws: true, tick: 30, maxMembers: 16, dev: dev, protocolID: token.DefaultProtocolID}
		if !dev {
			o.tokenKey = keyFile
		}
		srv, stop := serveForTest(t, o)
		base := "http://" + srv.http.String()
		get := func(path string) (int, string, string) {
			resp, err := http.Get(base + path)
			require.NoError(t, err)
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
		}
		code, ctype, body := get("/")
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "text/html; charset=utf-8", ctype)
		require.Contains(t, body, "Roomwire arena")
		code, ctype, _ = get("/roomwire.js")
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "text/javascript; charset=utf-8", ctype)
		code, _, body = get("/healthz")
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "ok\n", body)
		code, _, _ = get("/metrics")
		require.Equal(t, http.StatusOK, code)
		code, _, _ = get("/cert-hash")
		require.Equal(t, http.StatusNotFound, code, "no WebTransport on this server")
		code, ctype, body = get("/dev-token")
		if dev {
			require.Equal(t, http.StatusOK, code)
			require.Equal(t, "application/json", ctype)
			require.Contains(t, body, `"client_to_server_key"`)
		} else {
			require.Equal(t, http.StatusNotFound, code, "no dev tokens with a real key")
		}
		stop()
	}
}
