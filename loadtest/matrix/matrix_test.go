package matrix_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/loadtest"
	"github.com/roomwire/roomwire/loadtest/matrix"
	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
)

func TestMain(m *testing.M) {
	nt.VerifyTestMain(m)
}

func TestParseCells(t *testing.T) {
	j := matrix.DefaultJitter
	all, err := matrix.ParseCells("", j)
	require.NoError(t, err)
	require.Len(t, all, 2*3*4)
	again, err := matrix.ParseCells("all", j)
	require.NoError(t, err)
	require.Equal(t, all, again)
	for _, c := range all { // String is what ParseCells reads
		got, err := matrix.ParseCells(c.String(), j)
		require.NoError(t, err, c.String())
		require.Equal(t, []matrix.Cell{c}, got)
	}

	got, err := matrix.ParseCells("kcp/150ms/20%, kcp/0.15s/0.2, */150ms/*", j)
	require.NoError(t, err)
	require.Len(t, got, 6, "duplicates dropped: %v", got)
	require.Equal(t, matrix.Cell{Transport: "kcp", RTT: 150 * time.Millisecond, Loss: 0.2, Jitter: j}, got[0])
	got, err = matrix.ParseCells("quic/0/*", 0)
	require.NoError(t, err)
	require.Len(t, got, 3)
	require.Equal(t, "quic/0s/5%", got[1].String())

	for _, bad := range []string{"quic/150ms", "tcp/0s/0%", "quic/soon/0%", "quic/-1s/0%", "quic/0s/5", "quic/0s/0%/x"} {
		_, err := matrix.ParseCells(bad, j)
		require.Error(t, err, bad)
	}
}

func TestCellProfileAndJSON(t *testing.T) {
	c := matrix.Cell{Transport: "quic", RTT: 150 * time.Millisecond, Loss: 0.05, Jitter: 10 * time.Millisecond}
	p := c.Profile()
	require.Equal(t, p.ToServer, p.ToClient)
	require.Equal(t, 75*time.Millisecond, p.ToServer.Delay)
	require.Equal(t, 150*time.Millisecond, p.RTT())
	b, err := json.Marshal(c)
	require.NoError(t, err)
	require.JSONEq(t, `{"transport":"quic","rtt_ms":150,"loss_pct":5,"jitter_ms":10}`, string(b))
}

func TestWriteMarkdown(t *testing.T) {
	rows := []matrix.Row{
		{
			Cell:           matrix.Cell{Transport: "quic", Loss: 0},
			Report:         loadtest.Report{Bots: 2, Connected: 2, InputsSent: 10},
			InputsReceived: 10, HaveServer: true, InputsDeliveredPercent: 100,
			SnapshotsPercent: 99.5, EventP99Ms: 3,
		},
		{
			Cell:       matrix.Cell{Transport: "kcp", RTT: 150 * time.Millisecond, Loss: 0.2},
			Report:     loadtest.Report{Bots: 2, Connected: 1, Failed: 1, Errors: []string{"connect: timeout"}},
			EventP99Ms: 300, EventP99PerRTT: 2, ServerConnsLeft: 1,
		},
	}
	var b strings.Builder
	require.NoError(t, matrix.WriteMarkdown(&b, rows))
	lines := strings.Split(b.String(), "\n")
	require.True(t, strings.HasPrefix(lines[0], "| transport | RTT ms | loss |"), lines[0])
	require.Equal(t, strings.Count(lines[0], "|"), strings.Count(lines[2], "|"), "a cell per column")
	require.Contains(t, lines[2], "| quic | 0 | 0% | 99.5 % |")
	require.Contains(t, lines[2], "3.0 (–)")
	require.Contains(t, lines[2], "100.00 % (10 / 10)")
	require.Contains(t, lines[3], "| kcp | 150 | 20% |")
	require.Contains(t, lines[3], "300.0 (2.00×) | – |", "no server counts: no inputs figure")
	require.Contains(t, b.String(), "kcp/150ms/20%: 1 of 2 bots connected, 1 failed; errors: connect: timeout")
	require.Contains(t, b.String(), "still held 1")
}

func TestHTTPMetrics(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /good/metrics", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "application/json" {
			_, _ = w.Write([]byte("# TYPE roomwire_rooms gauge\n")) // a gameserver's Prometheus text
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"server": netcode.Metrics{ConnsActive: 3, InputsReceived: 42}, "kcp": map[string]int{"x": 1}})
	})
	mux.HandleFunc("GET /empty/metrics", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"kcp":{}}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx := context.Background()

	m, err := matrix.HTTPMetrics(srv.URL + "/good/")(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(3), m.ConnsActive)
	require.Equal(t, uint64(42), m.InputsReceived)
	_, err = matrix.HTTPMetrics(srv.URL + "/empty")(ctx)
	require.ErrorContains(t, err, "no \"server\"")
	_, err = matrix.HTTPMetrics(srv.URL + "/missing")(ctx)
	require.ErrorContains(t, err, "404")
	srv.CloseClientConnections()
}

// A cell needs a server URL of its transport.
func TestRunCellNeedsURL(t *testing.T) {
	_, err := matrix.RunCell(context.Background(), matrix.Config{QUIC: "quic://127.0.0.1:7777"},
		matrix.Cell{Transport: "kcp"})
	require.ErrorContains(t, err, "no kcp:// server URL")
	_, err = matrix.RunCell(context.Background(), matrix.Config{KCP: "quic://127.0.0.1:7777"},
		matrix.Cell{Transport: "kcp"})
	require.Error(t, err)
}
