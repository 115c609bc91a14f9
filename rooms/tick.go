package rooms

import (
	"slices"
	"sync"
	"time"

	"github.com/roomwire/roomwire/netcode"
)

// A ticker runs the tick loop of a shard of the hub's rooms that share one
// tick rate: at every slot of the rate, counted from the hub's epoch, it
// steps each of its rooms in turn and then writes all their snapshot
// datagrams at once (on UDP transports one sendmmsg per socket for the whole
// shard). One wake-up and one burst a tick for many rooms cost the server
// far less than a goroutine per room waking on its own: spread over the
// tick, the same datagrams cost the bare-UDP floor itself about 1.6 times
// the CPU (BENCHMARKS.md, "Ticks in phase"). A hub has up to GOMAXPROCS
// tickers per rate, so rooms still tick in parallel on many cores; the cost
// is that a room whose game is slow delays the others of its shard.
//
// The ticker's goroutine starts with its first room and ends when it has
// none left: rooms leave it when they are disposed, moved away or the hub
// closes (their stop channel). It is counted in the hub's WaitGroup.
type ticker struct {
	hub    *Hub
	period time.Duration

	mu      sync.Mutex
	rooms   []*GameRoom // the shard, guarded by mu
	running bool        // its goroutine is running (under mu)

	// The loop's own.
	list  []*GameRoom
	batch netcode.Batch
}

// startTicking puts g in the shard of its tick rate with the fewest rooms
// (h.mu held).
func (h *Hub) startTicking(g *GameRoom) {
	shards := h.tickers[g.period]
	var t *ticker
	fewest := 0
	for _, s := range shards {
		s.mu.Lock()
		n := len(s.rooms)
		s.mu.Unlock()
		if t == nil || n < fewest {
			t, fewest = s, n
		}
	}
	if t == nil || (fewest > 0 && len(shards) < h.shards) {
		t = &ticker{hub: h, period: g.period}
		h.tickers[g.period] = append(shards, t)
	}
	g.mu.Lock()
	g.tickNo = g.lastTick // 0, or where a moved room left off
	g.mu.Unlock()
	t.mu.Lock()
	t.rooms = append(t.rooms, g)
	if !t.running {
		t.running = true
		h.wg.Add(1)
		go t.run()
	}
	t.mu.Unlock()
}

// run steps the shard's rooms at every slot. When a tick runs late past the
// next one's slot, the missed slots are counted as late and skipped, never
// bunched.
func (t *ticker) run() {
	defer t.hub.wg.Done()
	epoch := t.hub.epoch
	slot := int64(time.Since(epoch) / t.period)
	timer := time.NewTimer(time.Until(epoch.Add(time.Duration(slot+1) * t.period)))
	defer timer.Stop()
	for {
		<-timer.C
		now := time.Now()
		due := int64(now.Sub(epoch) / t.period)
		if due <= slot {
			due = slot + 1 // woke a hair early
		}
		late := uint64(due - slot - 1)
		slot = due

		t.mu.Lock()
		t.list = append(t.list[:0], t.rooms...)
		t.mu.Unlock()
		gone := 0
		for _, g := range t.list {
			if t.tickRoom(g, late, now) {
				g.untick = true
				gone++
			}
		}
		t.batch.Flush()
		clear(t.list) // lets disposed rooms go

		t.mu.Lock()
		if gone > 0 {
			t.rooms = slices.DeleteFunc(t.rooms, func(g *GameRoom) bool { return g.untick })
		}
		if len(t.rooms) == 0 {
			t.running = false
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
		timer.Reset(time.Until(epoch.Add(time.Duration(slot+1) * t.period)))
	}
}

// tickRoom runs one tick of g, its snapshots into the ticker's batch, and
// reports whether g leaves the ticker: the hub closed, g moved away, or it
// was empty for EmptyGrace and is disposed.
func (t *ticker) tickRoom(g *GameRoom, late uint64, now time.Time) (done bool) {
	select {
	case <-g.stop:
		g.shut()
		return true
	default:
	}
	if !g.ticking { // its first tick: the slots before it are not its
		g.ticking = true
		late = 0
	}
	g.tickNo += uint32(late) + 1
	if !g.step(g.tickNo, late, now, &t.batch) {
		g.emptySince = time.Time{}
	} else if g.emptySince.IsZero() {
		g.emptySince = now
	} else if now.Sub(g.emptySince) >= g.opts.EmptyGrace && t.hub.dispose(g) {
		return true
	}
	return false
}

// step runs one tick: the inputs queued since the last tick go to the game,
// the game steps, and its snapshot is sent to every member, on UDP
// transports into b for the caller to flush. It reports whether the room is
// empty. In steady state it does not allocate.
func (g *GameRoom) step(tick uint32, late uint64, now time.Time, b *netcode.Batch) (empty bool) {
	// Take the inputs queued since the last tick, leaving the previous
	// tick's buffers for the producers to fill next.
	g.inMu.Lock()
	inputs, inBytes := g.inputs, g.inBytes
	g.inputs, g.inBytes = g.spareInputs[:0], g.spareBytes[:0]
	clear(g.inCount) // keeps its buckets: no allocation next tick
	g.inMu.Unlock()

	g.mu.Lock()
	if g.frozen { // moving: no tick, and the inputs meanwhile are dropped
		for i := range inputs {
			inputs[i].c = nil
		}
		g.spareInputs, g.spareBytes = inputs, inBytes
		g.mu.Unlock()
		return false
	}
	g.lastTick = tick
	for _, in := range inputs {
		g.game.Input(in.c, inBytes[in.off:in.end])
	}
	for i := range inputs {
		inputs[i].c = nil // let closed connections go
	}
	g.spareInputs, g.spareBytes = inputs, inBytes
	snap := netcode.NewSnapshot(tick)
	snap.Stream = g.stream
	snap.Data = g.game.Tick(tick, g.period, snap.Data)
	for _, m := range g.members {
		m.SendSnapshotBatch(snap, b)
	}
	empty = len(g.members) == 0
	g.ticks++
	g.lateTicks += late
	d := time.Since(now)
	_ = g.tickDur.RecordValue(int64(d / time.Microsecond))
	g.kstats.observe(d, late)
	g.mu.Unlock()
	snap.Release()
	return empty
}

// shut marks the room closed when the hub closes.
func (g *GameRoom) shut() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}
