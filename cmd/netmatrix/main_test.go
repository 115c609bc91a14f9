package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/roomwire/roomwire/loadtest/matrix"
	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/rooms"
	"github.com/roomwire/roomwire/rooms/arena"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, nt.GoleakOptions()...)
}

func TestFlagErrors(t *testing.T) {
	require.NoError(t, run([]string{"-h"}, io.Discard, io.Discard))
	require.ErrorContains(t, run([]string{"-cells", "udp/0s/0%"}, io.Discard, io.Discard), "transport")
	require.ErrorContains(t, run([]string{"-quic", "", "-cells", "quic/0s/0%"}, io.Discard, io.Discard), "no cells")
	require.ErrorContains(t, run([]string{"extra"}, io.Discard, io.Discard), "unexpected")
}

// One short cell against an in-process server with a side port shaped
// like the gameserver's: a Markdown row, inputs counted by the server, and
// JSON lines without -md.
func TestOneCell(t *testing.T) {
	tc, err := netcode.DevTLSConfig()
	require.NoError(t, err)
	srv, err := netcode.NewServer(netcode.Config{QUICAddr: "127.0.0.1:0", TLS: tc,
		Tokens: &netcode.Tokens{Key: token.DevKey, ProtocolID: token.DefaultProtocolID}})
	require.NoError(t, err)
	hub := rooms.NewHub(srv, rooms.HubOptions{})
	require.NoError(t, hub.Define(arena.Kind, func() rooms.Game { return arena.New() }, rooms.Options{TickRate: 30}))
	srv.Handle("ping", func(_ *netcode.Conn, req []byte) ([]byte, error) { return req, nil })
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(context.Background()) }()
	defer func() { _ = srv.Close(); <-done; hub.Close() }()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"server": srv.Metrics()})
	})
	side := httptest.NewServer(mux)
	defer side.Close()

	args := []string{"-quic", "quic://" + srv.Addrs()[0].String(), "-kcp", "", "-http", side.URL, "-insecure",
		"-bots", "2", "-duration", "1s", "-cells", "quic/0s/0%"}
	var out bytes.Buffer
	require.NoError(t, run(append(args, "-md"), &out, io.Discard))
	require.Contains(t, out.String(), "| quic | 0 | 0% |")
	require.Contains(t, out.String(), "100.00 % (", "every input reached the server")

	out.Reset()
	require.NoError(t, run(args, &out, io.Discard))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 1)
	var row matrix.Row
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &row))
	require.Equal(t, "quic", row.Cell.Transport)
	require.Equal(t, 2, row.Report.Connected)
	require.True(t, row.HaveServer)
	require.NotZero(t, row.InputsReceived)
	require.Equal(t, uint64(row.Report.InputsSent), row.InputsReceived)
	side.CloseClientConnections()
}
