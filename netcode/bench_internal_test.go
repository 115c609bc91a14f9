package netcode

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/unreliable"
)

// arenaLike fills a snapshot like the arena's with 64 moving players and
// 200 static props: 6.4 KB, of which 64 × 8 bytes change each tick.
func arenaLike(b []byte, tick uint32) []byte {
	b = binary.BigEndian.AppendUint16(b, 64)
	for i := 0; i < 64; i++ {
		var id [16]byte
		id[0] = byte(i)
		b = append(b, id[:]...)
		b = binary.BigEndian.AppendUint32(b, math.Float32bits(float32(i*10)+float32(tick)*0.37))
		b = binary.BigEndian.AppendUint32(b, math.Float32bits(float32(i*7)+float32(tick)*0.21))
	}
	b = binary.BigEndian.AppendUint16(b, 200)
	for i := 0; i < 200; i++ {
		var id [16]byte
		id[1] = byte(i)
		b = append(b, id[:]...)
		b = binary.BigEndian.AppendUint32(b, math.Float32bits(float32(i*37)))
		b = binary.BigEndian.AppendUint32(b, math.Float32bits(float32(i*91)))
	}
	return b
}

// member is one connection's datagram state without a session: what the
// per-tick send does for each member of a room.
type member struct {
	stats connStats
	acks  ackState
	q     *dgramQueue
}

func newMembers(n int) []*member {
	ms := make([]*member, n)
	for i := range ms {
		m := &member{}
		m.q = newDgramQueue(&m.stats, &m.acks, discardSession{})
		m.q.snaps = &snapshotSender{codec: unreliable.XORCodec{}}
		ms[i] = m
	}
	return ms
}

// discardSession is a transport that takes every datagram at once and
// sends nothing.
type discardSession struct{ transport.Session }

func (discardSession) MaxDatagram() int                       { return unreliable.MaxDatagram }
func (discardSession) TrySendDatagram(p []byte) (bool, error) { return true, nil }

// sendTick is the whole per-tick send to a room: each member's delta
// against the previous tick (which it acknowledged), envelope, fragments,
// headers and the transport hand-off.
func sendTick(ms []*member, tick uint32, data []byte) {
	snap := NewSnapshot(tick)
	snap.Stream = 1
	snap.Data = append(snap.Data, data...)
	for _, m := range ms {
		m.q.snaps.ack(unreliable.SnapshotAck{Epoch: 1, Tick: tick - 1})
		m.q.sendSnapshotNow(snap, nil)
	}
	snap.Release()
}

func benchmarkDeltaSend(b *testing.B, n int) {
	ms := newMembers(n)
	data := make([]byte, 0, 8<<10)
	tick := uint32(1)
	for ; tick < 40; tick++ { // fill the baseline rings
		data = arenaLike(data[:0], tick)
		sendTick(ms, tick, data)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		data = arenaLike(data[:0], tick)
		b.StartTimer()
		sendTick(ms, tick, data)
		tick++
	}
	b.StopTimer()
	if d := ms[0].stats.snapshotsDelta.Load(); d < uint64(b.N) {
		b.Fatalf("only %d of %d snapshots went as deltas", d, b.N)
	}
}

// BenchmarkDeltaSendMember and BenchmarkDeltaSendRoom100 are the per-tick
// snapshot send with delta encoding, for one member and for a 100-member
// room (arena: 64 players moving, 200 static props).
func BenchmarkDeltaSendMember(b *testing.B)  { benchmarkDeltaSend(b, 1) }
func BenchmarkDeltaSendRoom100(b *testing.B) { benchmarkDeltaSend(b, 100) }
