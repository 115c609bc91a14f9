// Package promexport exports a Roomwire server's metrics to Prometheus.
//
// A Collector reads a netcode.Server, and a rooms.Hub if given one, each
// time it is scraped: nothing is counted on the server's hot paths for it.
// Register one with a registry of your own, or serve Handler, which adds
// the Go runtime's and the process's metrics. A Collector is safe for
// concurrent use, as prometheus.Collector asks.
//
// The metrics, all counters monotonic across connections that come and go:
//
//	roomwire_connections{transport,state}          gauge; state handshaking or open
//	roomwire_handshakes_total{transport,outcome}   accepted, or the failure's close code name
//	roomwire_bytes_total{transport,direction}      payload bytes, in or out
//	roomwire_datagrams_total{transport,direction}  unreliable datagrams, in or out
//	roomwire_frames_total{transport,direction}     reliable frames, in or out
//	roomwire_datagrams_dropped_total{transport}    outgoing datagrams dropped
//	roomwire_snapshots_sent_total{transport}
//	roomwire_snapshots_replaced_total{transport}   dropped unsent for a newer one
//	roomwire_rtt_seconds{transport}                summary over the open connections
//	roomwire_datagram_loss_ratio{transport}        summary over the open connections
//	roomwire_drops_total{reason}                   netcode.Metrics.Drops (Server.Drop)
//	roomwire_closes_total{code}                    netcode.Metrics.Closes
//	roomwire_handler_panics_total
//	roomwire_kcp_listener_events_total{event}      each counter of kcp.ListenerStats
//	roomwire_kcp_listener_sessions                 gauge
//	roomwire_kcp_listener_tokens_remembered        gauge
//	roomwire_rooms{kind}                           gauge
//	roomwire_room_members{kind}                    gauge
//	roomwire_room_tick_duration_seconds{kind}      histogram over every room of the kind
//	roomwire_room_late_ticks_total{kind}
//
// Labels take only names the server chose (transports, close codes, drop
// reasons, room kinds), never a room's name or anything a client sent, so
// the number of series stays small.
package promexport

import (
	"math"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/netcode/transport/kcp"
	"github.com/roomwire/roomwire/rooms"
)

const namespace = "roomwire"

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
}

var (
	connectionsDesc = desc("connections", "Connections by transport and state: handshaking (not yet admitted, those being refused among them) or open.", "transport", "state")
	handshakesDesc  = desc("handshakes_total", "Finished handshakes by transport and outcome: accepted, or the failure's close code name.", "transport", "outcome")
	bytesDesc       = desc("bytes_total", "Roomwire payload bytes of both channels, by transport and direction (in, out).", "transport", "direction")
	datagramsDesc   = desc("datagrams_total", "Unreliable datagrams by transport and direction (in, out).", "transport", "direction")
	framesDesc      = desc("frames_total", "Reliable frames by transport and direction (in, out).", "transport", "direction")
	dgDroppedDesc   = desc("datagrams_dropped_total", "Outgoing datagrams dropped, the queue full or the transport refusing them, by transport.", "transport")
	snapsSentDesc   = desc("snapshots_sent_total", "Snapshots sent, by transport.", "transport")
	snapsReplDesc   = desc("snapshots_replaced_total", "Snapshots dropped unsent because a newer one for the connection was ready first, by transport.", "transport")
	rttDesc         = desc("rtt_seconds", "Smoothed round-trip times, from datagram acks, of the open connections that measured one, by transport.", "transport")
	lossDesc        = desc("datagram_loss_ratio", "Smoothed share of datagrams the peer never acknowledged, over the open connections that sent any, by transport.", "transport")
	dropsDesc       = desc("drops_total", "What the server dropped or refused while connections went on, by reason.", "reason")
	closesDesc      = desc("closes_total", "Connections that ended, failed handshakes included, by close code name.", "code")
	panicsDesc      = desc("handler_panics_total", "Panics recovered in application handlers and hooks.")
	kcpEventsDesc   = desc("kcp_listener_events_total", "The KCP listener's packet counters, by event: received, challenges, denied, accepted and dropped_* by reason.", "event")
	roomsDesc       = desc("rooms", "Game rooms, by kind.", "kind")
	membersDesc     = desc("room_members", "Players in game rooms, by kind.", "kind")
	tickDesc        = desc("room_tick_duration_seconds", "Durations of game room ticks over every room of the kind, disposed ones too.", "kind")
	lateDesc        = desc("room_late_ticks_total", "Tick slots skipped because a tick ran past them, by kind.", "kind")
)

// kcpField is one field of kcp.ListenerStats: a counter, exported as an
// event of kcp_listener_events_total, or a gauge of its own.
type kcpField struct {
	index int
	name  string
	gauge *prometheus.Desc // nil for a counter
}

// kcpFields are found by reflection, so a counter added to ListenerStats is
// exported without a change here.
var kcpFields = func() []kcpField {
	var out []kcpField
	t := reflect.TypeFor[kcp.ListenerStats]()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		switch f.Type.Kind() {
		case reflect.Uint64:
			out = append(out, kcpField{index: i, name: name})
		case reflect.Int, reflect.Int64:
			out = append(out, kcpField{index: i, name: name, gauge: desc("kcp_listener_"+name, "The KCP listener's "+strings.ReplaceAll(name, "_", " ")+" now.")})
		}
	}
	return out
}()

// Collector is a prometheus.Collector of a Roomwire server's metrics.
type Collector struct {
	srv *netcode.Server
	hub *rooms.Hub
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector of srv's metrics and, if hub is not nil,
// of its game rooms.
func NewCollector(srv *netcode.Server, hub *rooms.Hub) *Collector {
	return &Collector{srv: srv, hub: hub}
}

// Register registers a Collector of srv and hub (which may be nil) with reg.
func Register(reg prometheus.Registerer, srv *netcode.Server, hub *rooms.Hub) error {
	return reg.Register(NewCollector(srv, hub))
}

// Handler serves srv's and hub's metrics (hub may be nil), with the Go
// runtime's and the process's, in the Prometheus text format, from a
// registry of its own.
func Handler(srv *netcode.Server, hub *rooms.Hub) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		NewCollector(srv, hub),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Describe sends the descriptors of every metric the Collector may send.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		connectionsDesc, handshakesDesc, bytesDesc, datagramsDesc, framesDesc, dgDroppedDesc,
		snapsSentDesc, snapsReplDesc, rttDesc, lossDesc, dropsDesc, closesDesc, panicsDesc,
		kcpEventsDesc, roomsDesc, membersDesc, tickDesc, lateDesc,
	} {
		ch <- d
	}
	for _, f := range kcpFields {
		if f.gauge != nil {
			ch <- f.gauge
		}
	}
}

// Collect reads the server (and hub) and sends their metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.collectTransports(ch)
	m := c.srv.Metrics()
	for reason, n := range m.Drops {
		send(ch, dropsDesc, prometheus.CounterValue, float64(n), reason)
	}
	for code, n := range m.Closes {
		send(ch, closesDesc, prometheus.CounterValue, float64(n), code)
	}
	send(ch, panicsDesc, prometheus.CounterValue, float64(m.HandlerPanics))
	if ks, ok := c.srv.KCPStats(); ok {
		v := reflect.ValueOf(ks)
		for _, f := range kcpFields {
			fv := v.Field(f.index)
			if f.gauge != nil {
				send(ch, f.gauge, prometheus.GaugeValue, float64(fv.Int()))
			} else {
				send(ch, kcpEventsDesc, prometheus.CounterValue, float64(fv.Uint()), f.name)
			}
		}
	}
	if c.hub != nil {
		c.collectRooms(ch)
	}
}

func (c *Collector) collectTransports(ch chan<- prometheus.Metric) {
	tms := c.srv.TransportMetrics()
	for _, tm := range tms {
		t := tm.Transport
		send(ch, connectionsDesc, prometheus.GaugeValue, float64(tm.Handshaking), t, "handshaking")
		send(ch, connectionsDesc, prometheus.GaugeValue, float64(tm.Open), t, "open")
		for outcome, n := range tm.Handshakes {
			send(ch, handshakesDesc, prometheus.CounterValue, float64(n), t, outcome)
		}
		st := tm.Totals
		send(ch, bytesDesc, prometheus.CounterValue, float64(st.BytesReceived), t, "in")
		send(ch, bytesDesc, prometheus.CounterValue, float64(st.BytesSent), t, "out")
		send(ch, datagramsDesc, prometheus.CounterValue, float64(st.DatagramsReceived), t, "in")
		send(ch, datagramsDesc, prometheus.CounterValue, float64(st.DatagramsSent), t, "out")
		send(ch, framesDesc, prometheus.CounterValue, float64(st.FramesReceived), t, "in")
		send(ch, framesDesc, prometheus.CounterValue, float64(st.FramesSent), t, "out")
		send(ch, dgDroppedDesc, prometheus.CounterValue, float64(st.DatagramsDropped), t)
		send(ch, snapsSentDesc, prometheus.CounterValue, float64(st.SnapshotsSent), t)
		send(ch, snapsReplDesc, prometheus.CounterValue, float64(st.SnapshotsReplaced), t)
	}

	// RTT and loss of the open connections, summarised per transport.
	type samples struct{ rtt, loss []float64 }
	byTransport := make(map[string]*samples, len(tms))
	for _, tm := range tms {
		byTransport[tm.Transport] = new(samples)
	}
	c.srv.Conns(func(conn *netcode.Conn) {
		s := byTransport[conn.Transport()]
		if s == nil {
			s = new(samples)
			byTransport[conn.Transport()] = s
		}
		st := conn.Stats()
		if st.RTT > 0 {
			s.rtt = append(s.rtt, st.RTT.Seconds())
		}
		if st.DatagramsAcked+st.DatagramsLost > 0 {
			s.loss = append(s.loss, st.LossPercent/100)
		}
	})
	for t, s := range byTransport {
		sendSummary(ch, rttDesc, s.rtt, t)
		sendSummary(ch, lossDesc, s.loss, t)
	}
}

func (c *Collector) collectRooms(ch chan<- prometheus.Metric) {
	for _, k := range c.hub.Kinds() {
		send(ch, roomsDesc, prometheus.GaugeValue, float64(k.Rooms), k.Kind)
		send(ch, membersDesc, prometheus.GaugeValue, float64(k.Members), k.Kind)
		send(ch, lateDesc, prometheus.CounterValue, float64(k.LateTicks), k.Kind)
		buckets := make(map[float64]uint64, len(k.TickBuckets))
		for _, b := range k.TickBuckets {
			buckets[b.Le.Seconds()] = b.Count
		}
		h, err := prometheus.NewConstHistogram(tickDesc, k.Ticks, k.TickTime.Seconds(), buckets, k.Kind)
		if err != nil {
			h = prometheus.NewInvalidMetric(tickDesc, err)
		}
		ch <- h
	}
}

// quantiles are the ones the summaries report.
var quantiles = []float64{0.5, 0.9, 0.99}

// sendSummary sends a summary of values (which it sorts) with quantiles
// by the nearest rank.
func sendSummary(ch chan<- prometheus.Metric, d *prometheus.Desc, values []float64, labels ...string) {
	slices.Sort(values)
	var sum float64
	for _, v := range values {
		sum += v
	}
	var qs map[float64]float64
	if n := len(values); n > 0 {
		qs = make(map[float64]float64, len(quantiles))
		for _, q := range quantiles {
			i := int(math.Ceil(q*float64(n))) - 1
			qs[q] = values[max(i, 0)]
		}
	}
	m, err := prometheus.NewConstSummary(d, uint64(len(values)), sum, qs, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}

// send sends one constant metric; a label value Prometheus refuses (one not
// UTF-8) fails only that metric, not the scrape.
func send(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}
