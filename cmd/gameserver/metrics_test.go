package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/rooms"
	"github.com/roomwire/roomwire/rooms/arena"
)

// scrape is one scrape of /metrics, parsed.
type scrape map[string]*dto.MetricFamily

func getMetrics(t *testing.T, base string) scrape {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	require.NoError(t, err)
	// What Prometheus itself sends.
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"), resp.Header.Get("Content-Type"))
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// metric is the series of family name whose labels include the given
// name-value pairs, or nil.
func (s scrape) metric(name string, labels ...string) *dto.Metric {
	f := s[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return m
	}
	return nil
}

// value is a counter's or gauge's value, or -1 when the series is missing.
func (s scrape) value(name string, labels ...string) float64 {
	m := s.metric(name, labels...)
	switch {
	case m == nil:
		return -1
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return -1
}

var transportCounters = []string{"roomwire_bytes_total", "roomwire_datagrams_total", "roomwire_frames_total"}

// requireNoDecrease checks that no per-transport traffic counter went down
// from prev to cur.
func requireNoDecrease(t *testing.T, prev, cur scrape) {
	t.Helper()
	for _, name := range transportCounters {
		for _, tr := range []string{"quic", "kcp"} {
			for _, dir := range []string{"in", "out"} {
				require.GreaterOrEqual(t, cur.value(name, "transport", tr, "direction", dir), prev.value(name, "transport", tr, "direction", dir),
					"%s{transport=%q,direction=%q} went down", name, tr, dir)
			}
		}
	}
}

// pollMetrics scrapes base until cond holds of a scrape, for up to 10 s.
// cond runs on the test's goroutine, so it may use require.
func pollMetrics(t *testing.T, base, what string, cond func(scrape) bool) scrape {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := getMetrics(t, base)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testServer runs the game server as serve builds it, QUIC and KCP on
// loopback, with its side handler on a real HTTP server.
func testServer(t *testing.T) (*netcode.Server, *rooms.Hub, string) {
	t.Helper()
	return testServerWith(t, options{})
}

// testServerWith is testServer with the side port's options of side (the
// dashboard's token).
func testServerWith(t *testing.T, side options) (*netcode.Server, *rooms.Hub, string) {
	t.Helper()
	o := options{quicAddr: "127.0.0.1:0", kcpAddr: "127.0.0.1:0", tick: 30, maxMembers: 16, dev: true, protocolID: token.DefaultProtocolID}
	g, err := newServer(o, slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	srv, hub := g.srv, g.hub
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(context.Background())
	}()
	sideSrv := httptest.NewServer(sideHandler(g, side))
	t.Cleanup(func() {
		sideSrv.Close()
		_ = srv.Close()
		<-done
		hub.Close()
	})
	return srv, hub, sideSrv.URL
}

func dialDev(t *testing.T, url string, key token.Key) (*netcode.Client, error) {
	t.Helper()
	tok, err := token.Issue(key, token.Params{ProtocolID: token.DefaultProtocolID}, time.Now())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return netcode.Dial(ctx, url, netcode.ClientConfig{InsecureSkipVerify: true, Token: tok})
}

// /metrics in the Prometheus text format, scraped over HTTP while QUIC and
// KCP clients play: the gauges follow what is connected and in rooms, the
// counters grow and never go down, a client leaving included.
func TestMetricsPrometheus(t *testing.T) {
	srv, hub, base := testServer(t)
	quicURL, kcpURL := "quic://"+srv.Addrs()[0].String(), "kcp://"+srv.Addrs()[1].String()

	var clients []*netcode.Client
	for _, c := range []struct{ url, room string }{{quicURL, "red"}, {quicURL, "red"}, {kcpURL, "blue"}} {
		cl, err := dialDev(t, c.url, token.DevKey)
		require.NoError(t, err)
		t.Cleanup(func() { _ = cl.Close() })
		_, err = rooms.Join(context.Background(), cl, arena.Kind, c.room)
		require.NoError(t, err)
		clients = append(clients, cl)
	}
	_, err := dialDev(t, quicURL, token.NewKey())
	require.Error(t, err, "a token from another key is refused")
	srv.Drop("test_reason")

	s := pollMetrics(t, base, "the refusal counted and every open connection's RTT measured", func(s scrape) bool {
		return s.value("roomwire_connections", "transport", "quic", "state", "handshaking") == 0 &&
			s.value("roomwire_handshakes_total", "transport", "quic", "outcome", "refused") == 1 &&
			s.metric("roomwire_rtt_seconds", "transport", "quic").GetSummary().GetSampleCount() == 2 &&
			s.metric("roomwire_rtt_seconds", "transport", "kcp").GetSummary().GetSampleCount() == 1
	})

	require.EqualValues(t, 2, s.value("roomwire_connections", "transport", "quic", "state", "open"))
	require.EqualValues(t, 1, s.value("roomwire_connections", "transport", "kcp", "state", "open"))
	require.EqualValues(t, 0, s.value("roomwire_connections", "transport", "kcp", "state", "handshaking"))
	require.EqualValues(t, 2, s.value("roomwire_handshakes_total", "transport", "quic", "outcome", "accepted"))
	require.EqualValues(t, 1, s.value("roomwire_handshakes_total", "transport", "kcp", "outcome", "accepted"))
	require.EqualValues(t, 1, s.value("roomwire_closes_total", "code", "refused"))
	require.EqualValues(t, 1, s.value("roomwire_drops_total", "reason", "test_reason"))
	for _, tr := range []string{"quic", "kcp"} {
		for _, name := range transportCounters {
			for _, dir := range []string{"in", "out"} {
				require.Greater(t, s.value(name, "transport", tr, "direction", dir), 0.0, "%s{%s,%s}", name, tr, dir)
			}
		}
		require.GreaterOrEqual(t, s.value("roomwire_snapshots_sent_total", "transport", tr), 1.0)
		require.GreaterOrEqual(t, s.value("roomwire_snapshots_replaced_total", "transport", tr), 0.0)
		rtt := s.metric("roomwire_rtt_seconds", "transport", tr).GetSummary()
		require.Len(t, rtt.Quantile, 3)
		for _, q := range rtt.Quantile {
			require.Greater(t, q.GetValue(), 0.0)
			require.Less(t, q.GetValue(), 1.0, "loopback")
		}
		require.NotNil(t, s.metric("roomwire_datagram_loss_ratio", "transport", tr).GetSummary())
	}
	require.Greater(t, s.value("roomwire_kcp_listener_events_total", "event", "received"), 0.0)
	require.EqualValues(t, 1, s.value("roomwire_kcp_listener_events_total", "event", "accepted"))
	require.EqualValues(t, 0, s.value("roomwire_kcp_listener_events_total", "event", "dropped_token"))
	require.EqualValues(t, 1, s.value("roomwire_kcp_listener_sessions"))
	require.NotNil(t, s["go_goroutines"], "the Go runtime's metrics too")

	// The rooms' gauges are what the hub lists.
	list := hub.Rooms()
	members := 0
	for _, r := range list {
		members += r.Members
	}
	require.Len(t, list, 2)
	require.EqualValues(t, len(list), s.value("roomwire_rooms", "kind", arena.Kind))
	require.EqualValues(t, members, s.value("roomwire_room_members", "kind", arena.Kind))
	require.EqualValues(t, 3, members)
	hist := s.metric("roomwire_room_tick_duration_seconds", "kind", arena.Kind).GetHistogram()
	require.NotNil(t, hist)
	require.Greater(t, hist.GetSampleCount(), uint64(0))
	require.Greater(t, hist.GetSampleSum(), 0.0)
	var last uint64
	for _, b := range hist.Bucket {
		require.GreaterOrEqual(t, b.GetCumulativeCount(), last)
		last = b.GetCumulativeCount()
	}
	require.LessOrEqual(t, last, hist.GetSampleCount())
	require.GreaterOrEqual(t, s.value("roomwire_room_late_ticks_total", "kind", arena.Kind), 0.0)

	// Snapshots flow at 30 Hz and acks come back: every traffic counter
	// grows, and so does the tick count.
	first := s
	s = pollMetrics(t, base, "traffic between two scrapes", func(s scrape) bool {
		requireNoDecrease(t, first, s)
		for _, tr := range []string{"quic", "kcp"} {
			for _, dir := range []string{"in", "out"} {
				if s.value("roomwire_bytes_total", "transport", tr, "direction", dir) <= first.value("roomwire_bytes_total", "transport", tr, "direction", dir) ||
					s.value("roomwire_datagrams_total", "transport", tr, "direction", dir) <= first.value("roomwire_datagrams_total", "transport", tr, "direction", dir) {
					return false
				}
			}
		}
		return s.metric("roomwire_room_tick_duration_seconds", "kind", arena.Kind).GetHistogram().GetSampleCount() > hist.GetSampleCount()
	})

	// A QUIC client leaves: its close is counted, the gauges follow, and
	// what it carried stays in the totals.
	require.NoError(t, clients[1].Close())
	prev := s
	s = pollMetrics(t, base, "the closed connection gone from the gauges, counted in closes", func(s scrape) bool {
		requireNoDecrease(t, prev, s)
		prev = s
		return s.value("roomwire_connections", "transport", "quic", "state", "open") == 1 &&
			s.value("roomwire_closes_total", "code", "normal") == 1 &&
			s.value("roomwire_room_members", "kind", arena.Kind) == 2
	})
	require.EqualValues(t, 1, s.metric("roomwire_rtt_seconds", "transport", "quic").GetSummary().GetSampleCount())
	for i := 0; i < 3; i++ {
		time.Sleep(50 * time.Millisecond)
		cur := getMetrics(t, base)
		requireNoDecrease(t, prev, cur)
		prev = cur
	}
}

// /metrics gives JSON to a client that asks for it, and /metrics.json
// always.
func TestMetricsJSON(t *testing.T) {
	srv, _, base := testServer(t)
	srv.Drop("test_reason")
	for _, c := range []struct{ path, accept string }{
		{"/metrics", "application/json"},
		{"/metrics", "text/plain;q=0.5, application/json"},
		{"/metrics.json", ""},
	} {
		req, err := http.NewRequest(http.MethodGet, base+c.path, nil)
		require.NoError(t, err)
		if c.accept != "" {
			req.Header.Set("Accept", c.accept)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"), "%+v", c)
		var body struct {
			Server     netcode.Metrics            `json:"server"`
			Transports []netcode.TransportMetrics `json:"transports"`
			Kinds      []rooms.KindStats          `json:"kinds"`
			KCP        map[string]any             `json:"kcp"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		resp.Body.Close()
		require.EqualValues(t, 1, body.Server.Drops["test_reason"])
		require.Len(t, body.Transports, 2)
		require.Equal(t, netcode.TransportQUIC, body.Transports[0].Transport)
		require.Len(t, body.Kinds, 1)
		require.Contains(t, body.KCP, "received")
	}
}

func TestWantsJSON(t *testing.T) {
	for _, c := range []struct {
		accept []string
		want   bool
	}{
		{nil, false},
		{[]string{"application/json"}, true},
		{[]string{"text/plain", "application/json"}, true},
		{[]string{"application/json;q=0.5, text/plain"}, false},
		{[]string{"application/json;q=0"}, false},
		{[]string{"*/*"}, false},
		{[]string{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}, false},
		{[]string{"application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1"}, false},
	} {
		require.Equal(t, c.want, wantsJSON(c.accept), "%q", c.accept)
	}
}

// -pprof serves the profiles on the side port; without it they are not
// there (TestServeAndShutdown checks the 404).
func TestPprofFlag(t *testing.T) {
	o, err := parseFlags([]string{"-pprof", "-quic", "127.0.0.1:0", "-kcp", "", "-http", "127.0.0.1:0"}, io.Discard)
	require.NoError(t, err)
	require.True(t, o.pprof)
	srv, stop := serveForTest(t, o)
	base := fmt.Sprintf("http://%s", srv.http)
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
	stop()
}
