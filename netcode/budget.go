package netcode

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Rate is a token bucket: PerSecond on average, in bursts of up to Burst.
// A negative PerSecond means no limit.
type Rate struct {
	PerSecond float64
	Burst     int
}

func (r Rate) or(def Rate) Rate {
	if r.PerSecond == 0 && r.Burst == 0 {
		return def
	}
	if r.Burst <= 0 {
		r.Burst = max(1, int(r.PerSecond))
	}
	return r
}

// Budgets bound what one client may send, so that a client that floods pays
// for it alone: what is over budget is dropped (a request gets an error
// reply) and counted in Metrics.Drops, and a client that keeps sending at
// twice a budget for two seconds is closed with CloseOverBudget. The
// defaults are far above what an honest game client sends.
type Budgets struct {
	// Events covers reliable events and requests, per frame. Zero means
	// 500 a second in bursts of 1000.
	Events Rate
	// EventBytes covers their bodies' bytes. Zero means 1 MiB a second in
	// bursts of 4 MiB.
	EventBytes Rate
	// Datagrams covers every datagram: inputs, acknowledgements, unreliable
	// events and copies of reliable frames. Zero means 1000 a second in
	// bursts of 2000.
	Datagrams Rate
	// PerEvent adds a budget of its own for single event names, reliable or
	// unreliable, within Events: for example "chat" at 10 a second. The
	// rooms layer adds "$join" (Server.LimitEvent).
	PerEvent map[string]Rate
}

var (
	defaultEvents     = Rate{PerSecond: 500, Burst: 1000}
	defaultEventBytes = Rate{PerSecond: 1 << 20, Burst: 4 << 20}
	defaultDatagrams  = Rate{PerSecond: 1000, Burst: 2000}
)

func (b *Budgets) populate() {
	b.Events = b.Events.or(defaultEvents)
	b.EventBytes = b.EventBytes.or(defaultEventBytes)
	b.Datagrams = b.Datagrams.or(defaultDatagrams)
}

// overFor is how long a client may keep sending at twice a budget before
// it is closed.
const overFor = 2 * time.Second

// bucket is one budget of one connection: the limiter, and the drops of the
// last overFor in four slots, which close the connection once they add up
// to what the budget allows in overFor.
type bucket struct {
	name string // the reason counted for its drops
	// lim is held in the bucket, not made by NewLimiter: one allocation
	// fewer for each budget of each connection.
	lim   rate.Limiter
	close float64 // drops within overFor that close the connection

	mu     sync.Mutex
	slots  [4]float64
	slotAt time.Time // start of the newest slot
	newest int

	// used is set by every take and cleared by the budget's trim, which
	// notes in quietSince (Unix nanoseconds; trim's own) when it first
	// found it clear.
	used       atomic.Bool
	quietSince int64
}

func newBucket(name string, r Rate) *bucket {
	if r.PerSecond < 0 {
		return nil
	}
	b := &bucket{name: name, close: max(r.PerSecond*overFor.Seconds(), 1)}
	// Set as of the zero time, the limiter is full at its first use, as
	// NewLimiter's is: the time since then fills it to the burst.
	b.lim.SetBurstAt(time.Time{}, r.Burst)
	b.lim.SetLimitAt(time.Time{}, rate.Limit(r.PerSecond))
	return b
}

// take spends n tokens at now. It reports whether they were there, and
// whether the connection is now to be closed.
func (b *bucket) take(now time.Time, n int) (ok, closeIt bool) {
	if b == nil {
		return true, false
	}
	if !b.used.Load() {
		b.used.Store(true)
	}
	if b.lim.AllowN(now, n) {
		return true, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	const slot = overFor / 4
	if d := now.Sub(b.slotAt); d >= slot {
		for k := min(int(d/slot), 4); k > 0; k-- {
			b.newest = (b.newest + 1) % 4
			b.slots[b.newest] = 0
		}
		b.slotAt = now
	}
	b.slots[b.newest] += float64(n)
	sum := b.slots[0] + b.slots[1] + b.slots[2] + b.slots[3]
	return false, sum >= b.close
}

// budget is one connection's buckets. Each is made at its first use: most
// connections never send most of the events that have one (a chat, a
// room's join), and an idle connection sends almost nothing. A bucket that
// has refilled and dropped nothing for overFor is let go (trim): made again
// at its next use, it starts full, as it would have been.
type budget struct {
	cfg                      *Budgets
	events, bytes, datagrams atomic.Pointer[bucket]
	limits                   *eventLimits
	perEvent                 []atomic.Pointer[bucket] // by limits.index; nil until used
}

// bucketOf returns the bucket in p, made from r now if it is not there, or
// nil when r is no limit.
func bucketOf(p *atomic.Pointer[bucket], name string, r Rate) *bucket {
	if k := p.Load(); k != nil {
		return k
	}
	if r.PerSecond < 0 {
		return nil
	}
	p.CompareAndSwap(nil, newBucket(name, r))
	return p.Load() // ours, or the one another goroutine made first
}

// eventsBucket, bytesBucket and datagramsBucket are the connection's
// budgets of reliable events, their bytes, and datagrams.
func (b *budget) eventsBucket() *bucket {
	return bucketOf(&b.events, "budget_events", b.cfg.Events)
}

func (b *budget) bytesBucket() *bucket {
	return bucketOf(&b.bytes, "budget_event_bytes", b.cfg.EventBytes)
}

func (b *budget) datagramsBucket() *bucket {
	return bucketOf(&b.datagrams, "budget_datagrams", b.cfg.Datagrams)
}

// trim lets go of every bucket unused for trimAfter that is full at now
// and dropped nothing for overFor. A take racing with it may spend from
// the bucket let go: a token or two that a peer idle long enough to refill
// would have had anyway. Only the server's housekeeping calls it.
func (b *budget) trim(now time.Time) {
	trimBucket(&b.events, now)
	trimBucket(&b.bytes, now)
	trimBucket(&b.datagrams, now)
	for i := range b.perEvent {
		trimBucket(&b.perEvent[i], now)
	}
}

func trimBucket(p *atomic.Pointer[bucket], now time.Time) {
	k := p.Load()
	if k == nil {
		return
	}
	if k.used.Swap(false) {
		k.quietSince = 0 // used since the last trim
		return
	}
	if k.quietSince == 0 {
		k.quietSince = now.UnixNano()
		return
	}
	if time.Duration(now.UnixNano()-k.quietSince) < trimAfter || k.lim.TokensAt(now) < float64(k.lim.Burst()) {
		return
	}
	k.mu.Lock()
	quiet := k.slotAt.IsZero() || now.Sub(k.slotAt) >= overFor
	k.mu.Unlock()
	if quiet {
		p.CompareAndSwap(k, nil)
	}
}

// eventLimits are the per-event budgets connections open with: made once
// for all the connections opened while they stay the same, and read
// without a lock.
type eventLimits struct {
	index map[string]int
	rates []Rate   // or'ed with the default
	names []string // the reasons their drops are counted as
}

func newEventLimits(perEvent map[string]Rate) *eventLimits {
	l := &eventLimits{index: make(map[string]int, len(perEvent))}
	for name, r := range perEvent {
		if r = r.or(Rate{}); r.PerSecond >= 0 { // a negative rate is no limit
			l.index[name] = len(l.rates)
			l.rates = append(l.rates, r)
			l.names = append(l.names, "budget_event:"+name)
		}
	}
	return l
}

func newBudget(b *Budgets, limits *eventLimits) *budget {
	bu := &budget{cfg: b, limits: limits}
	if limits != nil && len(limits.rates) > 0 {
		bu.perEvent = make([]atomic.Pointer[bucket], len(limits.rates))
	}
	return bu
}

// event returns the bucket of the event name, made now if it is its first
// use, or nil when the event has none of its own. Any goroutine may call
// it: reliable events come from the stream's reader or a copy's,
// unreliable ones from the datagram receiver.
func (b *budget) event(name []byte) *bucket {
	if b.limits == nil {
		return nil
	}
	i, ok := b.limits.index[string(name)] // no allocation: the compiler looks up without a copy
	if !ok {
		return nil
	}
	return bucketOf(&b.perEvent[i], b.limits.names[i], b.limits.rates[i])
}

// overBudget is the error a request over budget is answered with.
type overBudget struct{ what string }

func (e overBudget) Error() string { return fmt.Sprintf("over budget: %s", e.what) }

// admitEvent spends the budgets of one reliable event or request (or, with
// size 0 and reliable false, an unreliable event's name budget) and reports
// whether it may run. Drops are counted; a connection that keeps sending
// over budget is closed.
func (c *Conn) admitEvent(name []byte, size int, reliable bool) bool {
	now := time.Now()
	b := c.budget
	if reliable {
		if !c.spend(b.eventsBucket(), now, 1) || !c.spend(b.bytesBucket(), now, size) {
			return false
		}
	}
	if k := b.event(name); k != nil {
		return c.spend(k, now, 1)
	}
	return true
}

func (c *Conn) spend(b *bucket, now time.Time, n int) bool {
	ok, closeIt := b.take(now, n)
	if ok {
		return true
	}
	c.srv.Drop(b.name)
	if closeIt {
		c.close(&CloseError{Code: CloseOverBudget, Reason: fmt.Sprintf("kept sending over budget (%s) for %v", b.name, overFor)})
	}
	return false
}
