package rooms

import (
	"time"

	"github.com/roomwire/roomwire/netcode"
)

// run is the room's tick loop. Ticks are scheduled against the hub's epoch,
// so the loop never drifts; when a tick runs late past the next one's slot,
// the missed slots are counted as late and skipped, never bunched. It ends
// when the hub closes or the room was empty for EmptyGrace.
//
// Every room of one tick rate ticks in the same slots: the tick loops wake
// together and their snapshots leave in one burst a tick. Spread over the
// tick, as rooms started at random times would be, the same datagrams cost
// the server about 1.6 times the CPU, each burst waking idle CPUs and
// sleeping receivers anew (BENCHMARKS.md, "Ticks in phase").
func (g *GameRoom) run() {
	defer g.hub.wg.Done()
	start := g.hub.slot(time.Now(), g.period)
	g.mu.Lock()
	tick := g.lastTick // 0, or where a moved room left off
	g.mu.Unlock()
	base := tick
	timer := time.NewTimer(time.Until(start.Add(g.period)))
	defer timer.Stop()
	var emptySince time.Time
	for {
		select {
		case <-g.stop:
			g.shut()
			return
		case <-timer.C:
		}
		now := time.Now()
		due := base + uint32(now.Sub(start)/g.period)
		if due <= tick {
			due = tick + 1 // woke a hair early
		}
		late := uint64(due - tick - 1)
		tick = due
		empty := g.step(tick, late, now)
		if !empty {
			emptySince = time.Time{}
		} else if emptySince.IsZero() {
			emptySince = now
		} else if now.Sub(emptySince) >= g.opts.EmptyGrace && g.hub.dispose(g) {
			return
		}
		next := start.Add(time.Duration(tick-base+1) * g.period)
		timer.Reset(time.Until(next))
	}
}

// step runs one tick: the inputs queued since the last tick go to the game,
// the game steps, and its snapshot is queued for every member. It reports
// whether the room is empty. In steady state it does not allocate.
func (g *GameRoom) step(tick uint32, late uint64, now time.Time) (empty bool) {
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
		m.SendSnapshotBatch(snap, &g.batch)
	}
	g.batch.Flush()
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

// slot is the start of the tick slot of length period that now falls in,
// counted from the hub's epoch.
func (h *Hub) slot(now time.Time, period time.Duration) time.Time {
	return now.Add(-now.Sub(h.epoch) % period)
}
