package netcode

import (
	"sync/atomic"
	"time"
)

// Stats are one connection's counters since it opened.
type Stats struct {
	// BytesSent and BytesReceived count both channels' payload bytes as
	// Roomwire handed them to or got them from the transport.
	BytesSent, BytesReceived uint64
	// FramesSent and FramesReceived count reliable frames.
	FramesSent, FramesReceived uint64
	// DatagramsSent and DatagramsReceived count unreliable datagrams.
	DatagramsSent, DatagramsReceived uint64
	// DatagramsStale counts received datagrams dropped as older than the
	// newest; DatagramsBad those dropped as malformed.
	DatagramsStale, DatagramsBad uint64
	// DatagramsDropped counts outgoing datagrams dropped: queue full or the
	// transport refused them.
	DatagramsDropped uint64
	// SnapshotsReplaced counts snapshots dropped unsent because a newer one
	// for this connection was ready first.
	SnapshotsReplaced uint64
	// SnapshotsTooLarge counts snapshots too big to fragment.
	SnapshotsTooLarge uint64
	// SnapshotsReceived counts whole snapshots delivered to the client;
	// SnapshotsIncomplete those given up with fragments missing;
	// SnapshotsUndecodable deltas whose baseline the client did not hold.
	SnapshotsReceived, SnapshotsIncomplete, SnapshotsUndecodable uint64
	// SnapshotsSent counts snapshots sent by the server, SnapshotsDelta how
	// many of them went as deltas against an acknowledged baseline.
	SnapshotsSent, SnapshotsDelta uint64
	// InputsReceived counts inputs handed to the application once each;
	// InputsRedundant the copies that arrived again and were dropped.
	InputsReceived, InputsRedundant uint64
	// CopiesSent counts RELIABLE datagrams sent: copies of reliable frames
	// that beat the stream's retransmission under loss. FramesFromCopies
	// counts the peer's frames delivered from such a copy, before the
	// stream had them.
	CopiesSent, FramesFromCopies uint64

	// RTT is the smoothed round-trip time measured from datagram acks.
	RTT time.Duration
	// LossPercent is the smoothed share of this side's datagrams that the
	// peer never acknowledged.
	LossPercent float64
	// DatagramsAcked and DatagramsLost count this side's datagrams the peer
	// acknowledged, and those it never did.
	DatagramsAcked, DatagramsLost uint64

	// InterpFrames counts Client.Interpolate calls that had snapshots;
	// InterpUnderruns those whose render time was past the newest snapshot.
	InterpFrames, InterpUnderruns uint64
	// InterpDelayTotal sums Interpolation.Delay (the newest snapshot's lead
	// over the render time, negative on an underrun) over those calls, and
	// InterpTargetTotal sums Interpolation.Target: divided by InterpFrames,
	// the mean buffered lead and the mean delay chosen.
	InterpDelayTotal, InterpTargetTotal time.Duration
}

// connStats are the counters both sides of a connection keep; a client
// keeps clientStats as well, which a server's connections have no use for
// (a thousand idle ones would carry them all the same).
type connStats struct {
	bytesSent, bytesReceived         atomic.Uint64
	framesSent, framesReceived       atomic.Uint64
	datagramsSent, datagramsReceived atomic.Uint64
	datagramsStale, datagramsBad     atomic.Uint64
	datagramsDropped                 atomic.Uint64
	snapshotsReplaced                atomic.Uint64
	snapshotsTooLarge                atomic.Uint64
	snapshotsSent, snapshotsDelta    atomic.Uint64
	inputsReceived, inputsRedundant  atomic.Uint64
	copiesSent, framesFromCopies     atomic.Uint64
}

// clientStats are the counters of what only a client receives and plays.
type clientStats struct {
	snapshotsReceived             atomic.Uint64
	snapshotsIncomplete           atomic.Uint64
	snapshotsUndecodable          atomic.Uint64
	interpFrames, interpUnderruns atomic.Uint64
	interpDelayTotal              atomic.Int64
	interpTargetTotal             atomic.Int64
}

func (s *connStats) snapshot() Stats {
	return Stats{
		BytesSent:         s.bytesSent.Load(),
		BytesReceived:     s.bytesReceived.Load(),
		FramesSent:        s.framesSent.Load(),
		FramesReceived:    s.framesReceived.Load(),
		DatagramsSent:     s.datagramsSent.Load(),
		DatagramsReceived: s.datagramsReceived.Load(),
		DatagramsStale:    s.datagramsStale.Load(),
		DatagramsBad:      s.datagramsBad.Load(),
		DatagramsDropped:  s.datagramsDropped.Load(),
		SnapshotsReplaced: s.snapshotsReplaced.Load(),
		SnapshotsTooLarge: s.snapshotsTooLarge.Load(),
		SnapshotsSent:     s.snapshotsSent.Load(),
		SnapshotsDelta:    s.snapshotsDelta.Load(),
		InputsReceived:    s.inputsReceived.Load(),
		InputsRedundant:   s.inputsRedundant.Load(),
		CopiesSent:        s.copiesSent.Load(),
		FramesFromCopies:  s.framesFromCopies.Load(),
	}
}

// fill adds the client's own counters to st.
func (s *clientStats) fill(st *Stats) {
	st.SnapshotsReceived = s.snapshotsReceived.Load()
	st.SnapshotsIncomplete = s.snapshotsIncomplete.Load()
	st.SnapshotsUndecodable = s.snapshotsUndecodable.Load()
	st.InterpFrames = s.interpFrames.Load()
	st.InterpUnderruns = s.interpUnderruns.Load()
	st.InterpDelayTotal = time.Duration(s.interpDelayTotal.Load())
	st.InterpTargetTotal = time.Duration(s.interpTargetTotal.Load())
}

// Metrics are a server's counters since it started, for dashboards and tests.
type Metrics struct {
	ConnsAccepted     uint64 `json:"conns_accepted"`
	ConnsActive       int64  `json:"conns_active"`
	HandshakesFailed  uint64 `json:"handshakes_failed"`
	ProtocolErrors    uint64 `json:"protocol_errors"`
	SlowConsumers     uint64 `json:"slow_consumers"`
	DatagramsBad      uint64 `json:"datagrams_bad"`
	DatagramsStale    uint64 `json:"datagrams_stale"`
	EventsUnhandled   uint64 `json:"events_unhandled"`
	RequestsUnhandled uint64 `json:"requests_unhandled"`
	HandlerPanics     uint64 `json:"handler_panics"`
	// InputsReceived counts inputs handed to the application once each, on
	// every connection (the sum of the connections' Stats.InputsReceived);
	// InputsRedundant the repeated copies dropped. A load test compares
	// InputsReceived with the inputs its clients sent.
	InputsReceived  uint64 `json:"inputs_received"`
	InputsRedundant uint64 `json:"inputs_redundant"`
	// Drops counts, by reason, what the server dropped or refused while the
	// connection went on: each budget and each cap (see Server.Drop).
	Drops map[string]uint64 `json:"drops"`
	// Closes counts the connections that ended, handshakes included, by
	// close code name with underscores ("slow_consumer").
	Closes map[string]uint64 `json:"closes"`
}

type serverMetrics struct {
	connsAccepted     atomic.Uint64
	connsActive       atomic.Int64
	handshakesFailed  atomic.Uint64
	protocolErrors    atomic.Uint64
	slowConsumers     atomic.Uint64
	datagramsBad      atomic.Uint64
	datagramsStale    atomic.Uint64
	eventsUnhandled   atomic.Uint64
	requestsUnhandled atomic.Uint64
	handlerPanics     atomic.Uint64
	inputsReceived    atomic.Uint64
	inputsRedundant   atomic.Uint64
	drops, closes     Counters
}

func (m *serverMetrics) snapshot() Metrics {
	return Metrics{
		ConnsAccepted:     m.connsAccepted.Load(),
		ConnsActive:       m.connsActive.Load(),
		HandshakesFailed:  m.handshakesFailed.Load(),
		ProtocolErrors:    m.protocolErrors.Load(),
		SlowConsumers:     m.slowConsumers.Load(),
		DatagramsBad:      m.datagramsBad.Load(),
		DatagramsStale:    m.datagramsStale.Load(),
		EventsUnhandled:   m.eventsUnhandled.Load(),
		RequestsUnhandled: m.requestsUnhandled.Load(),
		HandlerPanics:     m.handlerPanics.Load(),
		InputsReceived:    m.inputsReceived.Load(),
		InputsRedundant:   m.inputsRedundant.Load(),
		Drops:             m.drops.Snapshot(),
		Closes:            m.closes.Snapshot(),
	}
}
