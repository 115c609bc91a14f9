package rooms

import (
	"sync"

	"github.com/roomwire/roomwire/netcode"
)

// Adapter stores room membership and delivers broadcasts to members. The
// in-memory adapter serves one server; a cluster adapter (NATS, later) would
// also forward broadcasts to the nodes holding a room's other members.
// Implementations must be safe for concurrent use and must not block on the
// network in Broadcast.
type Adapter interface {
	// Add puts c in room.
	Add(room string, c *netcode.Conn)
	// Remove takes c out of room; an empty room is forgotten.
	Remove(room string, c *netcode.Conn)
	// Len is how many members room has.
	Len(room string) int
	// Broadcast queues encoded reliable frames for every member of room
	// except except (which may be nil).
	Broadcast(room string, except *netcode.Conn, frames []byte)
}

// MemoryAdapter is the in-memory Adapter of a single server.
type MemoryAdapter struct {
	mu    sync.RWMutex
	rooms map[string]map[*netcode.Conn]struct{}
}

var _ Adapter = (*MemoryAdapter)(nil)

// NewMemoryAdapter returns an empty in-memory adapter.
func NewMemoryAdapter() *MemoryAdapter {
	return &MemoryAdapter{rooms: make(map[string]map[*netcode.Conn]struct{})}
}

// Add puts c in room.
func (a *MemoryAdapter) Add(room string, c *netcode.Conn) {
	a.mu.Lock()
	set := a.rooms[room]
	if set == nil {
		set = make(map[*netcode.Conn]struct{})
		a.rooms[room] = set
	}
	set[c] = struct{}{}
	a.mu.Unlock()
}

// Remove takes c out of room.
func (a *MemoryAdapter) Remove(room string, c *netcode.Conn) {
	a.mu.Lock()
	if set := a.rooms[room]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(a.rooms, room)
		}
	}
	a.mu.Unlock()
}

// Len is how many members room has.
func (a *MemoryAdapter) Len(room string) int {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return len(a.rooms[room])
}

// Broadcast queues frames for each member of room but except.
func (a *MemoryAdapter) Broadcast(room string, except *netcode.Conn, frames []byte) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	for c := range a.rooms[room] {
		if c != except {
			_ = c.SendFrames(frames) // a failing member is closed; the rest go on
		}
	}
}
