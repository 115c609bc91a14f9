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
	rooms map[string]*members
}

// members are a room's connections. A room of one, such as every
// connection's private room, holds it without a map.
type members struct {
	one  *netcode.Conn
	many map[*netcode.Conn]struct{} // when more than one joined
}

func (m *members) add(c *netcode.Conn) {
	switch {
	case m.many != nil:
		m.many[c] = struct{}{}
	case m.one == nil || m.one == c:
		m.one = c
	default:
		m.many = map[*netcode.Conn]struct{}{m.one: {}, c: {}}
		m.one = nil
	}
}

func (m *members) remove(c *netcode.Conn) {
	if m.many != nil {
		delete(m.many, c)
	} else if m.one == c {
		m.one = nil
	}
}

func (m *members) len() int {
	if m.many != nil {
		return len(m.many)
	}
	if m.one != nil {
		return 1
	}
	return 0
}

var _ Adapter = (*MemoryAdapter)(nil)

// NewMemoryAdapter returns an empty in-memory adapter.
func NewMemoryAdapter() *MemoryAdapter {
	return &MemoryAdapter{rooms: make(map[string]*members)}
}

// Add puts c in room.
func (a *MemoryAdapter) Add(room string, c *netcode.Conn) {
	a.mu.Lock()
	m := a.rooms[room]
	if m == nil {
		m = new(members)
		a.rooms[room] = m
	}
	m.add(c)
	a.mu.Unlock()
}

// Remove takes c out of room.
func (a *MemoryAdapter) Remove(room string, c *netcode.Conn) {
	a.mu.Lock()
	if m := a.rooms[room]; m != nil {
		m.remove(c)
		if m.len() == 0 {
			delete(a.rooms, room)
		}
	}
	a.mu.Unlock()
}

// Len is how many members room has.
func (a *MemoryAdapter) Len(room string) int {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if m := a.rooms[room]; m != nil {
		return m.len()
	}
	return 0
}

// Broadcast queues frames for each member of room but except.
func (a *MemoryAdapter) Broadcast(room string, except *netcode.Conn, frames []byte) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	m := a.rooms[room]
	if m == nil {
		return
	}
	if m.many == nil {
		if m.one != nil && m.one != except {
			_ = m.one.SendFrames(frames)
		}
		return
	}
	for c := range m.many {
		if c != except {
			_ = c.SendFrames(frames) // a failing member is closed; the rest go on
		}
	}
}
