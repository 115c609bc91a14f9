// Package rooms gives Roomwire socket.io's rooms and adds game rooms.
//
// A Hub tracks which connections are in which named rooms: every connection
// is put in a private room named by its id as it connects and taken out of
// all rooms as it leaves. To(room).Except(conn).Emit broadcasts a reliable
// event, encoded once for all members. Game rooms are rooms of a defined kind
// with a Game, a tick loop and a member limit; clients join them with Join.
//
// All Hub and GameRoom methods are safe for concurrent use. Game rooms of
// one tick rate tick together, in slots counted from the hub's start, run by
// up to GOMAXPROCS ticker goroutines per rate, each stepping its share of
// the rooms in turn and sending all their snapshots in one burst. A ticker
// starts with its first room and ends when its last is disposed, moved away
// or the hub closed.
package rooms

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

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
	// ErrRoomCap refuses a room over one of the hub's caps: rooms in all,
	// rooms of the kind, rooms a connection may create a minute, or rooms
	// a connection may be in.
	ErrRoomCap = errors.New("rooms: over a room cap")
)

// HubOptions configures a Hub.
type HubOptions struct {
	// Adapter stores membership and delivers broadcasts. Nil means an
	// in-memory adapter for a single server.
	Adapter Adapter
	// Logger receives room lifecycle logs. Nil discards.
	Logger *slog.Logger

	// MaxGameRooms caps the game rooms alive at once, of all kinds (each
	// has a tick loop). Zero means 10 000; Options.MaxRooms caps a kind.
	MaxGameRooms int
	// CreatesPerMinute caps the game rooms one connection may create a
	// minute by joining a name that does not exist (in bursts of as many).
	// Zero means 10.
	CreatesPerMinute int
	// MaxRoomsPerConn caps the rooms one connection is in at once, its
	// private room and its game room included. Zero means 64.
	MaxRoomsPerConn int
	// JoinRate is the budget of "$join" and "$leave" requests per
	// connection (Server.LimitEvent). Zero means 5 a second in bursts of
	// 10.
	JoinRate netcode.Rate
	// Directory, if set, places named game rooms across the nodes of a
	// cluster (package cluster): a name is claimed before its room is
	// created here, and a join of a room another node owns is answered
	// with a redirect there. Nil: every room is local.
	Directory Directory
}

// Directory places game rooms across the nodes of a cluster.
type Directory interface {
	// Claim makes this node the owner of room, of kind, and returns nil;
	// or, when another node owns it, returns where c should join it. It
	// may wait on the network, briefly.
	Claim(c *netcode.Conn, kind, room string) (*Redirect, error)
	// Release gives up this node's ownership of a room it disposed of. It
	// must not block: the hub's lock is held.
	Release(room string)
}

func (o *HubOptions) populate() {
	if o.MaxGameRooms <= 0 {
		o.MaxGameRooms = 10000
	}
	if o.CreatesPerMinute <= 0 {
		o.CreatesPerMinute = 10
	}
	if o.MaxRoomsPerConn <= 0 {
		o.MaxRoomsPerConn = 64
	}
	if o.JoinRate == (netcode.Rate{}) {
		o.JoinRate = netcode.Rate{PerSecond: 5, Burst: 10}
	}
}

// Hub manages a server's rooms. Create one per Server with NewHub.
type Hub struct {
	srv     *netcode.Server
	adapter Adapter
	log     *slog.Logger
	opts    HubOptions

	mu      sync.Mutex
	kinds   map[string]kind
	games   map[string]*GameRoom
	inGame  map[*netcode.Conn]*GameRoom
	joined  map[*netcode.Conn][]string // the rooms each is in (at most MaxRoomsPerConn, few)
	nextNum map[string]int
	creates map[*netcode.Conn]*rate.Limiter // rooms each connection may create
	perKind map[string]int                  // game rooms alive by kind
	closed  bool

	inGameMu sync.RWMutex // guards lookups of inGame from the input path
	wg       sync.WaitGroup

	// epoch is the instant every room's tick slots are counted from, so that
	// rooms of one tick rate tick together (see ticker).
	epoch   time.Time
	tickers map[time.Duration][]*ticker // by tick period (under mu)
	shards  int                         // tickers per period at most: GOMAXPROCS
}

type kind struct {
	newGame func() Game
	opts    Options
	stats   *kindStats
}

// NewHub attaches a hub to srv: it registers connect, disconnect and input
// hooks and the "$join"/"$leave" request handlers.
func NewHub(srv *netcode.Server, opts HubOptions) *Hub {
	opts.populate()
	h := &Hub{
		srv:     srv,
		adapter: opts.Adapter,
		log:     opts.Logger,
		opts:    opts,
		creates: make(map[*netcode.Conn]*rate.Limiter),
		perKind: make(map[string]int),
		kinds:   make(map[string]kind),
		games:   make(map[string]*GameRoom),
		inGame:  make(map[*netcode.Conn]*GameRoom),
		joined:  make(map[*netcode.Conn][]string),
		nextNum: make(map[string]int),
		epoch:   time.Now(),
		tickers: make(map[time.Duration][]*ticker),
		shards:  runtime.GOMAXPROCS(0),
	}
	if h.adapter == nil {
		h.adapter = NewMemoryAdapter()
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	srv.OnConnect(func(c *netcode.Conn) { h.join(c, c.ID().String(), false) })
	srv.OnDisconnect(func(c *netcode.Conn, _ *netcode.CloseError) { h.drop(c) })
	srv.OnAway(func(c *netcode.Conn) { h.setAway(c, true) })
	srv.OnBack(func(c *netcode.Conn) { h.setAway(c, false) })
	srv.OnInput(h.input)
	srv.Handle(EventJoin, h.handleJoin)
	srv.Handle(EventLeave, h.handleLeave)
	srv.LimitEvent(EventJoin, opts.JoinRate)
	srv.LimitEvent(EventLeave, opts.JoinRate)
	return h
}

// Join puts c in room. Joining a room c is in already does nothing. It
// fails with ErrRoomCap when c is in HubOptions.MaxRoomsPerConn rooms.
func (h *Hub) Join(c *netcode.Conn, room string) error { return h.join(c, room, true) }

func (h *Hub) join(c *netcode.Conn, room string, capped bool) error {
	h.mu.Lock()
	in := h.joined[c]
	already := slices.Contains(in, room)
	if !already && capped && len(in) >= h.opts.MaxRoomsPerConn {
		h.mu.Unlock()
		h.srv.Drop("rooms_per_conn")
		return fmt.Errorf("%w: in %d rooms already", ErrRoomCap, len(in))
	}
	if !already {
		h.joined[c] = append(in, room)
	}
	h.mu.Unlock()
	if !already {
		h.adapter.Add(room, c)
		if c.Err() != nil { // ended meanwhile: see JoinGame
			h.drop(c)
		}
	}
	return nil
}

// Leave takes c out of room.
func (h *Hub) Leave(c *netcode.Conn, room string) {
	h.mu.Lock()
	in := h.joined[c]
	i := slices.Index(in, room)
	was := i >= 0
	if was {
		in = slices.Delete(in, i, i+1)
		if len(in) == 0 {
			delete(h.joined, c)
		} else {
			h.joined[c] = in
		}
	}
	h.mu.Unlock()
	if was {
		h.adapter.Remove(room, c)
	}
}

// RoomsOf lists the rooms c is in, sorted.
func (h *Hub) RoomsOf(c *netcode.Conn) []string {
	h.mu.Lock()
	out := slices.Clone(h.joined[c])
	h.mu.Unlock()
	slices.Sort(out)
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
	in := h.joined[c]
	delete(h.joined, c)
	delete(h.creates, c)
	h.mu.Unlock()
	for _, room := range in {
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
