// Package rooms gives Roomwire socket.io's rooms and adds game rooms.
//
// A Hub tracks which connections are in which named rooms: every connection
// is put in a private room named by its id as it connects and taken out of
// all rooms as it leaves. To(room).Except(conn).Emit broadcasts a reliable
// event, encoded once for all members. Game rooms are rooms of a defined kind
// with a Game, a tick loop and a member limit; clients join them with Join.
//
// All Hub and GameRoom methods are safe for concurrent use. Each game room
// has one goroutine, its tick loop, which ends when the room is disposed or
// the hub closed.
package rooms

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/roomwire/roomwire/netcode"
)

// Event names the hub uses on the wire. Names starting with "$" are reserved
// for Roomwire.
const (
	EventJoin         = "$join"
	EventLeave        = "$leave"
	EventMemberJoined = "member_joined"
	EventMemberLeft   = "member_left"
)

// Errors of the rooms API.
var (
	ErrUnknownKind = errors.New("rooms: unknown room kind")
	ErrRoomFull    = errors.New("rooms: room is full")
	ErrKindClash   = errors.New("rooms: room exists with another kind")
	ErrHubClosed   = errors.New("rooms: hub closed")
	ErrNotInGame   = errors.New("rooms: not in a game room")
)

// HubOptions configures a Hub.
type HubOptions struct {
	// Adapter stores membership and delivers broadcasts. Nil means an
	// in-memory adapter for a single server.
	Adapter Adapter
	// Logger receives room lifecycle logs. Nil discards.
	Logger *slog.Logger
}

// Hub manages a server's rooms. Create one per Server with NewHub.
type Hub struct {
	srv     *netcode.Server
	adapter Adapter
	log     *slog.Logger

	mu      sync.Mutex
	kinds   map[string]kind
	games   map[string]*GameRoom
	inGame  map[*netcode.Conn]*GameRoom
	joined  map[*netcode.Conn]map[string]struct{}
	nextNum map[string]int
	closed  bool

	inGameMu sync.RWMutex // guards lookups of inGame from the input path
	wg       sync.WaitGroup
}

type kind struct {
	newGame func() Game
	opts    Options
	stats   *kindStats
}

// NewHub attaches a hub to srv: it registers connect, disconnect and input
// hooks and the "$join"/"$leave" request handlers.
func NewHub(srv *netcode.Server, opts HubOptions) *Hub {
	h := &Hub{
		srv:     srv,
		adapter: opts.Adapter,
		log:     opts.Logger,
		kinds:   make(map[string]kind),
		games:   make(map[string]*GameRoom),
		inGame:  make(map[*netcode.Conn]*GameRoom),
		joined:  make(map[*netcode.Conn]map[string]struct{}),
		nextNum: make(map[string]int),
	}
	if h.adapter == nil {
		h.adapter = NewMemoryAdapter()
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	srv.OnConnect(func(c *netcode.Conn) { h.Join(c, c.ID().String()) })
	srv.OnDisconnect(func(c *netcode.Conn, _ *netcode.CloseError) { h.drop(c) })
	srv.OnInput(h.input)
	srv.Handle(EventJoin, h.handleJoin)
	srv.Handle(EventLeave, h.handleLeave)
	return h
}

// Join puts c in room. Joining a room c is in already does nothing.
func (h *Hub) Join(c *netcode.Conn, room string) {
	h.mu.Lock()
	set := h.joined[c]
	if set == nil {
		set = make(map[string]struct{})
		h.joined[c] = set
	}
	_, already := set[room]
	set[room] = struct{}{}
	h.mu.Unlock()
	if !already {
		h.adapter.Add(room, c)
	}
}

// Leave takes c out of room.
func (h *Hub) Leave(c *netcode.Conn, room string) {
	h.mu.Lock()
	_, was := h.joined[c][room]
	delete(h.joined[c], room)
	h.mu.Unlock()
	if was {
		h.adapter.Remove(room, c)
	}
}

// RoomsOf lists the rooms c is in, sorted.
func (h *Hub) RoomsOf(c *netcode.Conn) []string {
	h.mu.Lock()
	out := make([]string, 0, len(h.joined[c]))
	for r := range h.joined[c] {
		out = append(out, r)
	}
	h.mu.Unlock()
	sort.Strings(out)
	return out
}

// Members is how many connections are in room.
func (h *Hub) Members(room string) int { return h.adapter.Len(room) }

// To starts a broadcast to the members of room.
func (h *Hub) To(room string) Broadcast { return Broadcast{hub: h, room: room} }

// drop removes a closed connection from its game and all its rooms.
func (h *Hub) drop(c *netcode.Conn) {
	h.leaveGame(c)
	h.mu.Lock()
	set := h.joined[c]
	delete(h.joined, c)
	h.mu.Unlock()
	for room := range set {
		h.adapter.Remove(room, c)
	}
}

// Broadcast is a reliable event on its way to a room's members. It is a
// value: build it with Hub.To and Except, then Emit.
type Broadcast struct {
	hub    *Hub
	room   string
	except *netcode.Conn
}

// Except leaves c out of the broadcast, typically the sender.
func (b Broadcast) Except(c *netcode.Conn) Broadcast {
	b.except = c
	return b
}

// Emit encodes the event once and queues it for every member. Members whose
// queue is full are closed as slow consumers; the others still get it. It
// returns an error only for an event that cannot be encoded.
func (b Broadcast) Emit(event string, payload []byte) error {
	buf := getBuf()
	defer putBuf(buf)
	var err error
	*buf, err = netcode.AppendEvent((*buf)[:0], event, payload)
	if err != nil {
		return fmt.Errorf("rooms: broadcast %q to %q: %w", event, b.room, err)
	}
	b.hub.adapter.Broadcast(b.room, b.except, *buf)
	return nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= 64<<10 {
		bufPool.Put(b)
	}
}
