package loadtest

import (
	"encoding/binary"
	"sync"
	"time"
)

// The history check (Config.History): each bot emits arena.HistoryEvent
// every historyInterval with the next counter and checks the server's
// echoes (arena.EchoHistory).
const (
	// historyInterval is the time between a bot's history events.
	historyInterval = 100 * time.Millisecond
	// historyTail bounds the wait for the last echoes after a bot stops
	// emitting; those still missing then are lost.
	historyTail = 2 * time.Second
)

// historyCheck checks one bot's history: which counters it emitted, and
// the echoes against them. A counter that comes back above the highest so
// far, skipping some, leaves those missing; one of them arriving later is
// reordered; a counter that came back already is duplicated, as is one
// never emitted (unexpected). Counters still missing when the check ends
// are lost. Its methods may be called concurrently (the emitter and the
// client's reader).
type historyCheck struct {
	mu      sync.Mutex
	sent    uint64              // counters 1..sent were emitted
	high    uint64              // the highest counter echoed
	missing map[uint64]struct{} // below high, not echoed yet
	res     historyResult
	stopped bool // the check has ended: later echoes are ignored
}

// historyResult is what a history check found.
type historyResult struct {
	// Checked counts the echoes checked.
	Checked uint64
	// Lost counts counters emitted but never echoed (before the check
	// ended), Duplicated echoes of a counter echoed before or never
	// emitted, Reordered echoes that came after a higher counter's.
	Lost, Duplicated, Reordered uint64
}

// violations is every echo that broke exactly-once, in-order delivery.
func (r historyResult) violations() uint64 { return r.Lost + r.Duplicated + r.Reordered }

func (r *historyResult) add(o historyResult) {
	r.Checked += o.Checked
	r.Lost += o.Lost
	r.Duplicated += o.Duplicated
	r.Reordered += o.Reordered
}

func newHistoryCheck() *historyCheck {
	return &historyCheck{missing: make(map[uint64]struct{})}
}

// emit takes the next counter and returns it with its payload, to be
// emitted at once; unemit gives it back if that failed. Counting it as
// emitted first lets its echo find it however soon it comes.
func (h *historyCheck) emit() (uint64, []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sent++
	return h.sent, binary.BigEndian.AppendUint64(make([]byte, 0, 8), h.sent)
}

// unemit takes back counter n, the last emit's, which was not emitted.
func (h *historyCheck) unemit(n uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n == h.sent && n > h.high {
		h.sent--
	}
}

// echo checks one echo's payload.
func (h *historyCheck) echo(p []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return
	}
	h.res.Checked++
	if len(p) != 8 {
		h.res.Duplicated++ // not a counter this bot sent
		return
	}
	n := binary.BigEndian.Uint64(p)
	switch {
	case n == 0 || n > h.sent:
		h.res.Duplicated++ // never emitted
	case n == h.high+1:
		h.high = n
	case n > h.high:
		for m := h.high + 1; m < n; m++ { // at most sent-high, the counters emitted
			h.missing[m] = struct{}{}
		}
		h.high = n
	default:
		if _, ok := h.missing[n]; ok {
			delete(h.missing, n)
			h.res.Reordered++
		} else {
			h.res.Duplicated++
		}
	}
}

// caughtUp reports whether every counter emitted has been echoed.
func (h *historyCheck) caughtUp() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.high == h.sent && len(h.missing) == 0
}

// finish ends the check and returns what it found: the counters still
// missing below the highest echo are lost, and with tail (the bot stopped
// emitting and waited for the last echoes) so are those above it. Without
// tail (the connection ended, or the run was cancelled) the ones above it
// are not counted: nothing promised they would come.
func (h *historyCheck) finish(tail bool) historyResult {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.stopped {
		h.stopped = true
		h.res.Lost += uint64(len(h.missing))
		if tail {
			h.res.Lost += h.sent - h.high
		}
		clear(h.missing)
	}
	return h.res
}
