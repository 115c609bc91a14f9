package promexport_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"

	nt "github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/promexport"
	"github.com/roomwire/roomwire/rooms"
	"github.com/roomwire/roomwire/rooms/arena"
)

func TestMain(m *testing.M) {
	nt.VerifyTestMain(m)
}

// The collector describes every metric it sends (a pedantic registry
// checks), its names pass promlint, and a drop reason or close code that
// shows up at run time becomes a series.
func TestCollectorIsConsistent(t *testing.T) {
	tr := nt.Find("kcp")
	srv := nt.Server(t, tr, nil, nil)
	hub := rooms.NewHub(srv, rooms.HubOptions{})
	t.Cleanup(hub.Close)
	require.NoError(t, hub.Define(arena.Kind, func() rooms.Game { return arena.New() }, rooms.Options{}))
	cl := nt.Client(t, tr, srv, nil)
	_, err := rooms.Join(context.Background(), cl, arena.Kind, "")
	require.NoError(t, err)
	srv.Drop("room_cap")
	srv.Drop("room_cap")

	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, promexport.Register(reg, srv, hub))
	require.Error(t, promexport.Register(reg, srv, hub), "registered twice")
	fams, err := reg.Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
	}
	for _, want := range []string{"roomwire_connections", "roomwire_bytes_total", "roomwire_drops_total", "roomwire_kcp_listener_events_total", "roomwire_kcp_listener_sessions", "roomwire_rooms", "roomwire_room_tick_duration_seconds"} {
		require.True(t, names[want], "no %s in %v", want, names)
	}

	c := promexport.NewCollector(srv, hub)
	problems, err := testutil.CollectAndLint(c)
	require.NoError(t, err)
	require.Empty(t, problems)
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(`
# HELP roomwire_drops_total What the server dropped or refused while connections went on, by reason.
# TYPE roomwire_drops_total counter
roomwire_drops_total{reason="room_cap"} 2
# HELP roomwire_connections Connections by transport and state: handshaking (not yet admitted, those being refused among them) or open.
# TYPE roomwire_connections gauge
roomwire_connections{state="handshaking",transport="kcp"} 0
roomwire_connections{state="open",transport="kcp"} 1
# HELP roomwire_rooms Game rooms, by kind.
# TYPE roomwire_rooms gauge
roomwire_rooms{kind="arena"} 1
`), "roomwire_drops_total", "roomwire_connections", "roomwire_rooms"))

	// Without a hub, no room metrics; the rest is there.
	text, err := testutil.CollectAndFormat(promexport.NewCollector(srv, nil), expfmt.TypeTextPlain, "roomwire_rooms", "roomwire_connections")
	require.NoError(t, err)
	require.NotContains(t, string(text), "roomwire_rooms")
	require.Contains(t, string(text), `roomwire_connections{state="open",transport="kcp"} 1`)
}
