package netcode

import (
	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/netcode/transport/kcp"
	"github.com/roomwire/roomwire/netcode/transport/quic"
	"github.com/roomwire/roomwire/netcode/transport/websocket"
	"github.com/roomwire/roomwire/netcode/transport/webtransport"
)

// Transport names, as Conn.Transport and TransportMetrics report them. A
// transport from Config.Listeners other than this package's QUIC, KCP and
// WebTransport and WebSocket is "other".
const (
	TransportQUIC         = "quic"
	TransportKCP          = "kcp"
	TransportWebTransport = "webtransport"
	TransportWebSocket    = "ws"
	TransportOther        = "other"
)

// transportKind indexes the server's per-transport totals.
type transportKind uint8

const (
	kindQUIC transportKind = iota
	kindKCP
	kindWebTransport
	kindWebSocket
	kindOther
	numTransports
)

var transportNames = [numTransports]string{TransportQUIC, TransportKCP, TransportWebTransport, TransportWebSocket, TransportOther}

func sessionKind(s transport.Session) transportKind {
	switch s.(type) {
	case *quic.Session:
		return kindQUIC
	case *kcp.Session:
		return kindKCP
	case *webtransport.Session:
		return kindWebTransport
	case *websocket.Session:
		return kindWebSocket
	}
	return kindOther
}

func listenerKind(l transport.Listener) transportKind {
	switch l.(type) {
	case *quic.Listener:
		return kindQUIC
	case *kcp.Listener:
		return kindKCP
	case *webtransport.Listener:
		return kindWebTransport
	case *websocket.Listener:
		return kindWebSocket
	}
	return kindOther
}

// Transport names the transport the connection came over: "quic", "kcp",
// "webtransport", "ws" (WebSocket, with or without TLS), or "other" for a
// custom one.
func (c *Conn) Transport() string { return transportNames[c.transport] }

// TransportMetrics are one transport's connections now and its traffic
// since the server started, for dashboards.
type TransportMetrics struct {
	// Transport is the transport's name, as Conn.Transport.
	Transport string `json:"transport"`
	// Handshaking counts the connections not yet admitted, those being
	// refused among them; Open those admitted and not yet ended.
	Handshaking int `json:"handshaking"`
	Open        int `json:"open"`
	// Handshakes counts finished handshakes by outcome: "accepted", or the
	// close code name of the failure ("refused", "handshake_timeout",
	// "protocol_error", "version_mismatch", ...).
	Handshakes map[string]uint64 `json:"handshakes"`
	// Totals sums the counters of every connection the transport carried,
	// those that ended (refused handshakes too) and those live now; each
	// field only grows. RTT and LossPercent are zero.
	Totals Stats `json:"totals"`
}

// transportTotals are one transport's counters of connections that ended.
type transportTotals struct {
	handshakes Counters
	ended      Stats // under Server.connsMu
}

// TransportMetrics returns the metrics of each transport the server listens
// on, and of any other that carried a connection, in the order QUIC, KCP,
// WebTransport, WebSocket, other. The live connections' counters and the ended ones' totals are read
// under one lock, so a sum never goes down between two calls; the call
// takes time in proportion to the live connections, for a scrape, not a
// hot path.
func (s *Server) TransportMetrics() []TransportMetrics {
	var out [numTransports]TransportMetrics
	s.connsMu.Lock()
	for i := range out {
		out[i].Totals = s.transports[i].ended
	}
	for c := range s.handshaking {
		t := &out[c.transport]
		t.Handshaking++
		t.Totals.add(c.statsNow())
	}
	for _, c := range s.conns {
		t := &out[c.transport]
		t.Open++
		t.Totals.add(c.statsNow())
	}
	s.connsMu.Unlock()
	list := make([]TransportMetrics, 0, numTransports)
	for i := range out {
		t := out[i]
		t.Transport = transportNames[i]
		t.Handshakes = s.transports[i].handshakes.Snapshot()
		if !s.listens[i] && t.Handshaking == 0 && len(t.Handshakes) == 0 {
			continue
		}
		list = append(list, t)
	}
	return list
}

// ended adds an ended connection's counters to its transport's totals. The
// caller holds connsMu and removes c from the live sets in the same section.
func (s *Server) ended(c *Conn) {
	s.transports[c.transport].ended.add(c.statsNow())
}

// add adds o's counters to s; RTT and LossPercent, which are no counters,
// stay as they are.
func (s *Stats) add(o Stats) {
	s.BytesSent += o.BytesSent
	s.BytesReceived += o.BytesReceived
	s.FramesSent += o.FramesSent
	s.FramesReceived += o.FramesReceived
	s.DatagramsSent += o.DatagramsSent
	s.DatagramsReceived += o.DatagramsReceived
	s.DatagramsStale += o.DatagramsStale
	s.DatagramsBad += o.DatagramsBad
	s.DatagramsDropped += o.DatagramsDropped
	s.SnapshotsReplaced += o.SnapshotsReplaced
	s.SnapshotsTooLarge += o.SnapshotsTooLarge
	s.SnapshotsReceived += o.SnapshotsReceived
	s.SnapshotsIncomplete += o.SnapshotsIncomplete
	s.SnapshotsUndecodable += o.SnapshotsUndecodable
	s.SnapshotsSent += o.SnapshotsSent
	s.SnapshotsDelta += o.SnapshotsDelta
	s.InputsReceived += o.InputsReceived
	s.InputsRedundant += o.InputsRedundant
	s.CopiesSent += o.CopiesSent
	s.FramesFromCopies += o.FramesFromCopies
	s.DatagramsAcked += o.DatagramsAcked
	s.DatagramsLost += o.DatagramsLost
	s.InterpFrames += o.InterpFrames
	s.InterpUnderruns += o.InterpUnderruns
	s.InterpDelayTotal += o.InterpDelayTotal
	s.InterpTargetTotal += o.InterpTargetTotal
}
