package netcode

import (
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// closeName is a close code's name for metrics: "slow consumer" is
// "slow_consumer".
func closeName(c CloseCode) string { return strings.ReplaceAll(c.String(), " ", "_") }

// Counters count what a server dropped, refused or closed, by reason, for
// metrics. The reasons are the server's own short names (such as
// "event_budget" or "room_cap"), never text a peer chose, so the set stays
// small. Safe for concurrent use; the zero value is ready.
type Counters struct {
	m sync.Map // reason → *atomic.Uint64
}

// Add counts n more of reason.
func (c *Counters) Add(reason string, n uint64) {
	v, ok := c.m.Load(reason)
	if !ok {
		v, _ = c.m.LoadOrStore(reason, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(n)
}

// Get is the count of reason.
func (c *Counters) Get(reason string) uint64 {
	if v, ok := c.m.Load(reason); ok {
		return v.(*atomic.Uint64).Load()
	}
	return 0
}

// Snapshot returns every reason's count.
func (c *Counters) Snapshot() map[string]uint64 {
	out := make(map[string]uint64)
	c.m.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return out
}

// Reasons lists the reasons counted so far, sorted.
func (c *Counters) Reasons() []string {
	var out []string
	c.m.Range(func(k, _ any) bool {
		out = append(out, k.(string))
		return true
	})
	sort.Strings(out)
	return out
}
