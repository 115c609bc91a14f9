package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/roomwire/roomwire/cluster"
	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/rooms"
	"github.com/roomwire/roomwire/web"
)

// The live dashboard of the side port: the page (package web's embedded
// files) at GET /dashboard, which polls GET /dashboard/data.json once a
// second, and GET /rooms/{name}, one room's members. All of it only reads.

// dashboardData is the JSON of GET /dashboard/data.json: everything the
// page shows, gathered in one pass, so that one request a second serves
// it. Rates (bandwidth) are the page's: differences of the monotonic byte
// counters between two polls, over the difference of TimeMs.
type dashboardData struct {
	// TimeMs is the server's clock at the read, in Unix milliseconds.
	TimeMs int64 `json:"time_ms"`
	// Node is this node's id in a cluster; empty on a single server.
	Node string `json:"node,omitempty"`
	// Server has the connection counts, and drops and closes by reason.
	Server     netcode.Metrics `json:"server"`
	Transports []dashTransport `json:"transports"`
	// Rooms are this server's game rooms; in a cluster, every node's, each
	// with its owner (and figures only for this node's own).
	Rooms []clusterRoom `json:"rooms"`
	// RTT and Loss are distributions over the open connections that have
	// measured them.
	RTT  distribution `json:"rtt_ms"`
	Loss distribution `json:"loss_percent"`
	// Nodes are the cluster's live nodes; absent on a single server.
	Nodes []cluster.NodeInfo `json:"nodes,omitempty"`
	// Room is the room asked for with ?room=NAME, as GET /rooms/{name}
	// answers; RoomError says why it is absent when it was asked for.
	Room      *roomDetail `json:"room,omitempty"`
	RoomError string      `json:"room_error,omitempty"`
}

// dashTransport is one transport's connections now and its payload bytes
// since the server started, ended connections included, so that the
// difference between two reads is the traffic between them.
type dashTransport struct {
	Transport   string `json:"transport"`
	Open        int    `json:"open"`
	Handshaking int    `json:"handshaking"`
	BytesIn     uint64 `json:"bytes_in"`
	BytesOut    uint64 `json:"bytes_out"`
}

// roomDetail is the JSON of GET /rooms/{name}: the room's figures, as in
// /rooms, and its members.
type roomDetail struct {
	Room    rooms.RoomInfo `json:"room"`
	Members []memberInfo   `json:"members"`
}

// memberInfo is one member of a room as the server sees its connection.
type memberInfo struct {
	ID        string  `json:"id"`
	Transport string  `json:"transport"`
	RTTMs     float64 `json:"rtt_ms"`
	Loss      float64 `json:"loss_percent"`
	// SnapshotsPerS is the rate of snapshots sent to the member between
	// two reads of its counters at least half a second apart; null until
	// there are two.
	SnapshotsPerS *float64 `json:"snapshots_per_s"`
	Away          bool     `json:"away"`
}

// distribution is a histogram of one figure over connections: Counts[i]
// of them have a value at most Edges[i] (and above the edge before it);
// the last count, one more than the edges, those above every edge.
type distribution struct {
	Edges  []float64 `json:"edges"`
	Counts []int     `json:"counts"`
	N      int       `json:"n"`
	P50    float64   `json:"p50"`
	P99    float64   `json:"p99"`
	Max    float64   `json:"max"`
}

// The histograms' bucket edges: round-trip times in milliseconds, loss in
// percent (the first bucket, at most 0, is the connections without loss).
var (
	rttEdges  = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500}
	lossEdges = []float64{0, 1, 2, 5, 10, 20, 50}
)

func newDistribution(edges, values []float64) distribution {
	d := distribution{Edges: edges, Counts: make([]int, len(edges)+1), N: len(values)}
	if len(values) == 0 {
		return d
	}
	slices.Sort(values)
	for _, v := range values {
		i, _ := slices.BinarySearch(edges, v) // the first edge ≥ v
		d.Counts[i]++
	}
	at := func(q float64) float64 { return values[int(q*float64(len(values)-1)+0.5)] }
	d.P50, d.P99, d.Max = at(0.50), at(0.99), values[len(values)-1]
	return d
}

// dashboard serves the page's data. It remembers each connection's last
// snapshot count, for the members' snapshot rates.
type dashboard struct {
	g     *game
	rates rateMeter
}

func newDashboard(g *game) *dashboard { return &dashboard{g: g} }

// routes mounts the dashboard on mux: the page and its data behind the
// token (when there is one), the page's script and stylesheet open to all,
// as they hold nothing but the code in this repository.
func (d *dashboard) routes(mux *http.ServeMux, token string) {
	files := web.Dashboard()
	mux.Handle("GET /dashboard", requireToken(token, files))
	mux.Handle("GET /dashboard/dashboard.js", files)
	mux.Handle("GET /dashboard/dashboard.css", files)
	mux.HandleFunc("GET /dashboard/{$}", func(w http.ResponseWriter, r *http.Request) {
		u := *r.URL
		u.Path = "/dashboard"
		http.Redirect(w, r, u.RequestURI(), http.StatusFound)
	})
	mux.Handle("GET /dashboard/data.json", requireToken(token, http.HandlerFunc(d.serveData)))
	mux.Handle("GET /rooms/{name}", requireToken(token, http.HandlerFunc(d.serveRoom)))
}

func (d *dashboard) serveData(w http.ResponseWriter, r *http.Request) {
	srv, now := d.g.srv, time.Now()
	out := dashboardData{TimeMs: now.UnixMilli(), Server: srv.Metrics()}
	for _, t := range srv.TransportMetrics() {
		out.Transports = append(out.Transports, dashTransport{
			Transport: t.Transport, Open: t.Open, Handshaking: t.Handshaking,
			BytesIn: t.Totals.BytesReceived, BytesOut: t.Totals.BytesSent,
		})
	}
	var rtts, losses []float64
	live := map[netcode.ID]bool{}
	srv.Conns(func(c *netcode.Conn) {
		st := c.Stats()
		live[c.ID()] = true
		d.rates.observe(c.ID(), now, st.SnapshotsSent)
		if st.RTT > 0 || st.DatagramsAcked > 0 {
			rtts = append(rtts, ms(st.RTT))
			losses = append(losses, st.LossPercent)
		}
	})
	d.rates.keep(live)
	out.RTT, out.Loss = newDistribution(rttEdges, rtts), newDistribution(lossEdges, losses)

	var list []clusterRoom
	if d.g.node != nil {
		out.Node, out.Nodes = d.g.node.ID(), d.g.node.Nodes()
		list = clusterRooms(r.Context(), d.g)
	} else {
		for _, ri := range d.g.hub.Rooms() {
			list = append(list, clusterRoom{RoomInfo: ri})
		}
	}
	slices.SortFunc(list, func(a, b clusterRoom) int { return strings.Compare(a.Name, b.Name) })
	out.Rooms = list
	if out.Rooms == nil {
		out.Rooms = []clusterRoom{}
	}
	if out.Transports == nil {
		out.Transports = []dashTransport{}
	}
	if name := r.URL.Query().Get("room"); name != "" {
		if detail, msg := d.room(r.Context(), name, now); detail != nil {
			out.Room = detail
		} else {
			out.RoomError = msg
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, out)
}

func (d *dashboard) serveRoom(w http.ResponseWriter, r *http.Request) {
	detail, msg := d.room(r.Context(), r.PathValue("name"), time.Now())
	w.Header().Set("Cache-Control", "no-store")
	if detail == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		writeJSON(w, map[string]string{"error": msg})
		return
	}
	writeJSON(w, detail)
}

// room is the detail of this node's room name, or, when it has no such
// room, nil and why: gone, or (in a cluster) on another node.
func (d *dashboard) room(ctx context.Context, name string, now time.Time) (*roomDetail, string) {
	gr := d.g.hub.Room(name)
	if gr == nil {
		if d.g.node != nil {
			for _, cr := range clusterRooms(ctx, d.g) {
				if cr.Name == name && cr.Owner != d.g.node.ID() {
					return nil, "room " + strconv.Quote(name) + " is on node " + cr.Owner + ": its members are on that node's dashboard"
				}
			}
		}
		return nil, "no room " + strconv.Quote(name)
	}
	members := gr.Members()
	out := &roomDetail{Room: gr.Info(), Members: make([]memberInfo, 0, len(members))}
	for _, c := range members {
		st := c.Stats()
		m := memberInfo{ID: c.ID().String(), Transport: c.Transport(), RTTMs: ms(st.RTT), Loss: st.LossPercent, Away: c.Away()}
		if rate, ok := d.rates.observe(c.ID(), now, st.SnapshotsSent); ok {
			m.SnapshotsPerS = &rate
		}
		out.Members = append(out.Members, m)
	}
	return out, ""
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// minRateWindow is the shortest interval a rate is measured over: a read
// sooner after the last (a second viewer's poll) sees the rate then.
const minRateWindow = 500 * time.Millisecond

// rateMeter turns each connection's growing counter into a rate a second,
// from two reads.
type rateMeter struct {
	mu   sync.Mutex
	last map[netcode.ID]rateSample
}

type rateSample struct {
	at    time.Time
	count uint64
	rate  float64 // over the window that ended at at; < 0 before one
}

// observe records connection id's count at now and returns its rate over
// the interval since the read before, once there is one of at least
// minRateWindow.
func (m *rateMeter) observe(id netcode.ID, now time.Time, count uint64) (float64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == nil {
		m.last = make(map[netcode.ID]rateSample)
	}
	s, ok := m.last[id]
	switch {
	case !ok:
		s = rateSample{at: now, count: count, rate: -1}
	case now.Sub(s.at) >= minRateWindow:
		s.rate = float64(count-min(count, s.count)) / now.Sub(s.at).Seconds()
		s.at, s.count = now, count
	}
	m.last[id] = s
	return s.rate, s.rate >= 0
}

// keep forgets every connection not in live, the open ones.
func (m *rateMeter) keep(live map[netcode.ID]bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id := range m.last {
		if !live[id] {
			delete(m.last, id)
		}
	}
}

// requireToken lets a request through to h only if it carries token, as
// ?token=… or an Authorization: Bearer header; else it answers 401. An
// empty token lets every request through. Both sides are hashed before
// the comparison, so that its time tells nothing of the token, not even
// its length.
func requireToken(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.URL.Query().Get("token")
		if auth := r.Header.Get("Authorization"); got == "" && len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
			got = strings.TrimSpace(auth[7:])
		}
		sum := sha256.Sum256([]byte(got))
		if got == "" || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="roomwire dashboard"`)
			http.Error(w, "unauthorized: the dashboard needs ?token= or an Authorization: Bearer header (-dashboard-token)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
