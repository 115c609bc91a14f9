package rooms

import (
	"sort"
	"sync/atomic"
	"time"
)

// tickBounds are the upper bounds of the tick-duration buckets: from well
// under a tick's budget to three ticks at 30 Hz.
var tickBounds = [...]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
}

// kindStats count the ticks of every room of one kind, disposed rooms
// included, so the counts only grow. The rooms' tick loops add to them;
// recording is a few atomic adds and never allocates.
type kindStats struct {
	buckets   [len(tickBounds) + 1]atomic.Uint64 // per bucket; the last is over every bound
	tickNanos atomic.Uint64
	lateTicks atomic.Uint64
}

func (k *kindStats) observe(d time.Duration, late uint64) {
	i := 0
	for i < len(tickBounds) && d > tickBounds[i] {
		i++
	}
	k.buckets[i].Add(1)
	k.tickNanos.Add(uint64(max(d, 0)))
	if late > 0 {
		k.lateTicks.Add(late)
	}
}

// KindStats describe one kind of game room: its rooms and members now, and
// counters over every room of the kind since it was defined, disposed rooms
// included, which only grow.
type KindStats struct {
	Kind    string `json:"kind"`
	Rooms   int    `json:"rooms"`
	Members int    `json:"members"`
	// Ticks counts the ticks run; LateTicks the tick slots skipped because
	// a tick ran past them.
	Ticks     uint64 `json:"ticks"`
	LateTicks uint64 `json:"late_ticks"`
	// TickTime sums the ticks' durations.
	TickTime time.Duration `json:"tick_time_ns"`
	// TickBuckets count the ticks by duration, cumulatively: each the
	// ticks that took at most Le, in increasing Le. Ticks counts them all.
	TickBuckets []TickBucket `json:"tick_buckets"`
}

// TickBucket is one bucket of KindStats.TickBuckets.
type TickBucket struct {
	Le    time.Duration `json:"le_ns"`
	Count uint64        `json:"count"`
}

// Kinds describes every defined kind of game room, sorted by kind.
func (h *Hub) Kinds() []KindStats {
	h.mu.Lock()
	byKind := make(map[string]*KindStats, len(h.kinds))
	stats := make(map[string]*kindStats, len(h.kinds))
	for name, k := range h.kinds {
		byKind[name] = &KindStats{Kind: name}
		stats[name] = k.stats
	}
	rooms := make([]*GameRoom, 0, len(h.games))
	for _, g := range h.games {
		rooms = append(rooms, g)
	}
	h.mu.Unlock()
	for _, g := range rooms {
		ks := byKind[g.kind]
		if ks == nil {
			continue // cannot happen: kinds are never removed
		}
		g.mu.Lock()
		n := len(g.members)
		g.mu.Unlock()
		ks.Rooms++
		ks.Members += n
	}
	out := make([]KindStats, 0, len(byKind))
	for name, ks := range byKind {
		k := stats[name]
		ks.TickBuckets = make([]TickBucket, len(tickBounds))
		var n uint64
		for i, le := range tickBounds {
			n += k.buckets[i].Load()
			ks.TickBuckets[i] = TickBucket{Le: le, Count: n}
		}
		ks.Ticks = n + k.buckets[len(tickBounds)].Load()
		ks.TickTime = time.Duration(k.tickNanos.Load())
		ks.LateTicks = k.lateTicks.Load()
		out = append(out, *ks)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}
