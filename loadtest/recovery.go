package loadtest

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/roomwire/roomwire/netcode/transport/impair"
)

// recovery measures how soon a bot recovers from each of its blackouts
// (Config.Blackout): from the moment its network lights again to the first
// snapshot it receives after that, and to its client's OnBack (a resume).
// A blackout counts once it ended while the bot was in its room; one
// followed by no snapshot before the next one ended, or before the bot
// stopped, has no snapshot figure, and one the transport lived through
// (no resume) has no resume figure. A nil *recovery measures nothing.
// snapshot and back may be called concurrently (the client's goroutines).
type recovery struct {
	due atomic.Int64 // Unix nanoseconds of ends[snapNext], MaxInt64 for none

	mu       sync.Mutex
	armed    bool
	ends     []time.Time // the ends of the bot's dark windows after it joined, in order
	snapNext int         // the first end no snapshot followed yet
	backNext int         // the first end no OnBack followed yet
	snap     *hdrhistogram.Histogram
	back     *hdrhistogram.Histogram // microseconds, both
}

func newRecovery() *recovery {
	r := &recovery{snap: newDelayHistogram(), back: newDelayHistogram()}
	r.due.Store(math.MaxInt64)
	return r
}

// arm starts the measure once the bot joined: its blackouts count from
// origin (when its network started), those ending after joined and before
// horizon are measured.
func (r *recovery) arm(b impair.Blackout, origin, joined time.Time, horizon time.Duration) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range blackoutEnds(b, horizon) {
		if end := origin.Add(e); end.After(joined) {
			r.ends = append(r.ends, end)
		}
	}
	r.armed = true
	r.setDue()
}

// setDue publishes the next end a snapshot waits for; r.mu is held.
func (r *recovery) setDue() {
	if r.snapNext < len(r.ends) {
		r.due.Store(r.ends[r.snapNext].UnixNano())
	} else {
		r.due.Store(math.MaxInt64)
	}
}

// match finds the latest end at or before now from *next on, moves *next
// past every end up to now, and returns how long ago that end was; false
// if none ended yet. r.mu is held.
func (r *recovery) match(next *int, now time.Time) (time.Duration, bool) {
	i := *next
	for i < len(r.ends) && !r.ends[i].After(now) {
		i++
	}
	if i == *next {
		return 0, false
	}
	*next = i
	return now.Sub(r.ends[i-1]), true
}

// snapshot records a snapshot received at now.
func (r *recovery) snapshot(now time.Time) {
	if r == nil || now.UnixNano() < r.due.Load() {
		return // the fast path: no blackout ended since the last snapshot
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if d, ok := r.match(&r.snapNext, now); ok {
		_ = r.snap.RecordValue(max(int64(d/time.Microsecond), 1))
		r.setDue()
	}
}

// backAt records the client's OnBack at now.
func (r *recovery) backAt(now time.Time) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.armed {
		return
	}
	if d, ok := r.match(&r.backNext, now); ok {
		_ = r.back.RecordValue(max(int64(d/time.Microsecond), 1))
	}
}

// finish ends the measure at stop, when the bot stopped playing, and
// returns the number of blackouts that ended before it.
func (r *recovery) finish(stop time.Time) int64 {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.armed = false
	r.due.Store(math.MaxInt64)
	var n int64
	for _, e := range r.ends {
		if !e.After(stop) {
			n++
		}
	}
	r.ends = nil
	return n
}

// blackoutEnds lists the ends of b's dark windows that open before
// horizon, counted from the network's origin. A b whose windows run into
// each other (Every no longer than Length) never lights again: none.
func blackoutEnds(b impair.Blackout, horizon time.Duration) []time.Duration {
	if b.Length <= 0 || (b.Every > 0 && b.Every <= b.Length) {
		return nil
	}
	var ends []time.Duration
	for open := b.Start; open < horizon && (b.Until <= 0 || open < b.Until); open += b.Every {
		ends = append(ends, open+b.Length)
		if b.Every <= 0 {
			break
		}
	}
	return ends
}
