package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/rooms"
	"github.com/roomwire/roomwire/rooms/arena"
)

// requireToken admits a request with the token in the query or as a
// bearer token, and answers 401 to every other; without a token it admits
// all.
func TestDashboardTokenCheck(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "let in") })
	guarded := requireToken("s3cret", ok)
	for _, c := range []struct {
		query, auth string
		want        int
	}{
		{"", "", http.StatusUnauthorized},
		{"?token=", "", http.StatusUnauthorized},
		{"?token=wrong", "", http.StatusUnauthorized},
		{"?token=s3cre", "", http.StatusUnauthorized},
		{"?token=s3cretX", "", http.StatusUnauthorized},
		{"?token=s3cret", "", http.StatusOK},
		{"", "Bearer s3cret", http.StatusOK},
		{"", "bearer s3cret", http.StatusOK},
		{"", "Bearer wrong", http.StatusUnauthorized},
		{"", "Basic s3cret", http.StatusUnauthorized},
		{"", "s3cret", http.StatusUnauthorized},
		{"?token=wrong", "Bearer s3cret", http.StatusUnauthorized}, // the query, when given, is the one checked
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/dashboard"+c.query, nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		guarded.ServeHTTP(rec, req)
		require.Equal(t, c.want, rec.Code, "%+v", c)
		if c.want == http.StatusUnauthorized {
			require.Contains(t, rec.Header().Get("WWW-Authenticate"), "Bearer")
			require.NotContains(t, rec.Body.String(), "let in")
		} else {
			require.Equal(t, "let in", rec.Body.String())
		}
	}
	rec := httptest.NewRecorder()
	requireToken("", ok).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/dashboard", nil))
	require.Equal(t, http.StatusOK, rec.Code, "no token set: open")
}

// The rates and histograms the dashboard shows, from counters and values.
func TestDashboardRatesAndDistributions(t *testing.T) {
	var m rateMeter
	id, t0 := netcode.ID{1}, time.Unix(1000, 0)
	_, ok := m.observe(id, t0, 100)
	require.False(t, ok, "one read is no rate")
	r, ok := m.observe(id, t0.Add(time.Second), 130)
	require.True(t, ok)
	require.InDelta(t, 30, r, 1e-9)
	r, ok = m.observe(id, t0.Add(1200*time.Millisecond), 200)
	require.True(t, ok)
	require.InDelta(t, 30, r, 1e-9, "a read within minRateWindow of the last sees the last rate")
	r, _ = m.observe(id, t0.Add(2200*time.Millisecond), 190)
	require.InDelta(t, 50, r, 1e-9, "over the 1.2 s since the last counted read: (190-130)/1.2")
	m.keep(map[netcode.ID]bool{})
	_, ok = m.observe(id, t0.Add(3*time.Second), 300)
	require.False(t, ok, "a connection gone from the open ones is forgotten")

	d := newDistribution(rttEdges, []float64{900, 0.5, 7, 1, 1.5})
	require.Equal(t, []int{2, 1, 0, 1, 0, 0, 0, 0, 0, 1}, d.Counts)
	require.Equal(t, 5, d.N)
	require.Equal(t, 1.5, d.P50)
	require.Equal(t, 900.0, d.P99)
	require.Equal(t, 900.0, d.Max)
	d = newDistribution(lossEdges, []float64{0, 0, 0.5, 60})
	require.Equal(t, []int{2, 1, 0, 0, 0, 0, 0, 1}, d.Counts, "no loss in the first bucket")
	d = newDistribution(rttEdges, nil)
	require.Zero(t, d.N)
	require.Len(t, d.Counts, len(rttEdges)+1)
}

// The dashboard's JSON, over HTTP from the server as serve builds it, with
// a token: the rooms are the hub's, the connections its transports', and a
// room's members are the clients in it, each with its snapshot rate.
func TestDashboardData(t *testing.T) {
	srv, hub, base := testServerWith(t, options{dashboardToken: "s3cret"})
	quicURL, kcpURL := "quic://"+srv.Addrs()[0].String(), "kcp://"+srv.Addrs()[1].String()
	const odd = "blue/x y" // escaped in a path
	ids := map[string][]string{}
	for _, c := range []struct{ url, room string }{{quicURL, "red"}, {quicURL, "red"}, {kcpURL, odd}} {
		cl, err := dialDev(t, c.url, token.DevKey)
		require.NoError(t, err)
		t.Cleanup(func() { _ = cl.Close() })
		_, err = rooms.Join(context.Background(), cl, arena.Kind, c.room)
		require.NoError(t, err)
		ids[c.room] = append(ids[c.room], cl.ID().String())
	}
	srv.Drop("test_reason")

	get := func(path string, auth bool, v any) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		require.NoError(t, err)
		if auth {
			req.Header.Set("Authorization", "Bearer s3cret")
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		if v != nil && resp.StatusCode != http.StatusUnauthorized {
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"), path)
			require.Equal(t, "no-store", resp.Header.Get("Cache-Control"), path)
			require.NoError(t, json.NewDecoder(resp.Body).Decode(v), path)
		}
		return resp.StatusCode
	}

	// The token guards the page and its data, and nothing else.
	for _, path := range []string{"/dashboard", "/dashboard/data.json", "/rooms/red"} {
		require.Equal(t, http.StatusUnauthorized, get(path, false, nil), path)
	}
	for _, path := range []string{"/dashboard?token=s3cret", "/dashboard/dashboard.js", "/dashboard/dashboard.css", "/rooms", "/healthz"} {
		require.Equal(t, http.StatusOK, get(path, false, nil), path)
	}

	var d dashboardData
	nt.Eventually(t, func() bool {
		d = dashboardData{}
		require.Equal(t, http.StatusOK, get("/dashboard/data.json", true, &d))
		return d.RTT.N == 3
	}, "every connection's RTT measured")
	require.WithinDuration(t, time.Now(), time.UnixMilli(d.TimeMs), 5*time.Second)
	require.Empty(t, d.Node, "a single server")
	require.Nil(t, d.Nodes)
	require.EqualValues(t, 3, d.Server.ConnsActive)
	require.EqualValues(t, 1, d.Server.Drops["test_reason"])
	open := map[string]int{}
	for _, tr := range d.Transports {
		open[tr.Transport] = tr.Open
		require.Positive(t, tr.BytesIn, tr.Transport)
		require.Positive(t, tr.BytesOut, tr.Transport)
	}
	require.Equal(t, map[string]int{"quic": 2, "kcp": 1}, open)
	sum := 0
	for _, n := range d.RTT.Counts {
		sum += n
	}
	require.Equal(t, 3, sum)
	require.Equal(t, 3, d.Loss.N)
	list := hub.Rooms()
	require.Len(t, d.Rooms, len(list))
	for i, ri := range list {
		require.Equal(t, ri.Name, d.Rooms[i].Name)
		require.Equal(t, ri.Members, d.Rooms[i].Members)
		require.Equal(t, ri.TickRate, d.Rooms[i].TickRate)
		require.Empty(t, d.Rooms[i].Owner)
	}
	require.Equal(t, []string{odd, "red"}, []string{d.Rooms[0].Name, d.Rooms[1].Name}, "sorted by name")
	require.Nil(t, d.Room, "no room asked for")

	// A room's members, and their snapshot rates once two reads of their
	// counters are half a second apart.
	var detail roomDetail
	nt.Eventually(t, func() bool {
		detail = roomDetail{}
		require.Equal(t, http.StatusOK, get("/rooms/red", true, &detail))
		return detail.Members[0].SnapshotsPerS != nil && detail.Members[1].SnapshotsPerS != nil
	}, "snapshot rates")
	require.Equal(t, "red", detail.Room.Name)
	require.Equal(t, 2, detail.Room.Members)
	require.Len(t, detail.Members, 2)
	for i, m := range detail.Members {
		require.Equal(t, ids["red"][i], m.ID, "in the order they joined")
		require.Equal(t, netcode.TransportQUIC, m.Transport)
		require.False(t, m.Away)
		require.Greater(t, m.RTTMs, 0.0)
		require.Less(t, m.RTTMs, 1000.0, "loopback")
		require.InDelta(t, 30, *m.SnapshotsPerS, 15, "a 30 Hz room")
	}
	detail = roomDetail{}
	require.Equal(t, http.StatusOK, get("/rooms/"+url.PathEscape(odd), true, &detail))
	require.Equal(t, odd, detail.Room.Name)
	require.Len(t, detail.Members, 1)
	require.Equal(t, ids[odd][0], detail.Members[0].ID)
	require.Equal(t, netcode.TransportKCP, detail.Members[0].Transport)

	var missing map[string]string
	require.Equal(t, http.StatusNotFound, get("/rooms/nope", true, &missing))
	require.Contains(t, missing["error"], `no room "nope"`)

	// The page's one poll carries the room it shows.
	d = dashboardData{}
	require.Equal(t, http.StatusOK, get("/dashboard/data.json?room=red&token=s3cret", false, &d))
	require.NotNil(t, d.Room)
	require.Len(t, d.Room.Members, 2)
	d = dashboardData{}
	require.Equal(t, http.StatusOK, get("/dashboard/data.json?room=nope", true, &d))
	require.Nil(t, d.Room)
	require.Contains(t, d.RoomError, "no room")
}
