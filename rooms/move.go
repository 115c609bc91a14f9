package rooms

import (
	"errors"
	"fmt"
	"slices"

	"github.com/roomwire/roomwire/netcode"
)

// Movable is a Game that can move, with its room, to another server: a
// cluster hands a draining node's rooms to other nodes (cluster.Node).
// A room whose Game is not Movable stays where it is.
type Movable interface {
	// MarshalState appends the game's whole state to b.
	MarshalState(b []byte) ([]byte, error)
	// RestoreState makes a new Game of the kind the one whose state it
	// is. members are the room's members on the new server, the same
	// sessions (the same ids), already in: Join is not called for them.
	// A player of the state without a member left meanwhile.
	RestoreState(state []byte, members []*netcode.Conn) error
}

// ErrNotMovable refuses to freeze a room whose Game is not Movable.
var ErrNotMovable = errors.New("rooms: the room's game cannot move")

// FrozenRoom is a game room stopped between two ticks for a move: it runs
// no tick and takes no new member until Thaw lets it go on, or Release
// removes it for good once its new server has it.
type FrozenRoom struct {
	g *GameRoom
	// Kind and Name are the room's.
	Kind, Name string
	// Tick is the last tick the room ran; it goes on at Tick+1.
	Tick uint32
	// State is the game's, from MarshalState.
	State []byte
	// Members are the room's members at the freeze.
	Members []*netcode.Conn
}

// Freeze stops the game room called name between two ticks and returns
// its state, for a move to another server.
func (h *Hub) Freeze(name string) (*FrozenRoom, error) {
	g := h.Room(name)
	if g == nil {
		return nil, fmt.Errorf("rooms: no game room %q", name)
	}
	mv, ok := g.game.(Movable)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotMovable, name)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.frozen {
		return nil, fmt.Errorf("rooms: room %q is closed or frozen already", name)
	}
	state, err := mv.MarshalState(nil)
	if err != nil {
		return nil, fmt.Errorf("rooms: room %q: %w", name, err)
	}
	g.frozen = true
	return &FrozenRoom{g: g, Kind: g.kind, Name: g.name, Tick: g.lastTick, State: state,
		Members: slices.Clone(g.members)}, nil
}

// Thaw lets the room tick again: the move did not happen.
func (f *FrozenRoom) Thaw() {
	f.g.mu.Lock()
	f.g.frozen = false
	f.g.mu.Unlock()
}

// Release removes the room from this hub for good: it moved. Its members
// are taken out of it without Leave and without member_left (they play on
// elsewhere), and the directory's entry, the new owner's now, is left.
func (f *FrozenRoom) Release() {
	g, h := f.g, f.g.hub
	h.mu.Lock()
	g.mu.Lock()
	g.closed = true
	members := g.members
	g.members = nil
	g.mu.Unlock()
	if h.games[g.name] == g {
		delete(h.games, g.name)
		h.perKind[g.kind]--
	}
	h.mu.Unlock()
	for _, c := range members {
		h.inGameMu.Lock()
		h.mu.Lock()
		if h.inGame[c] == g {
			delete(h.inGame, c)
		}
		h.mu.Unlock()
		h.inGameMu.Unlock()
		h.Leave(c, g.name)
	}
	g.stopOnce.Do(func() { close(g.stop) })
	h.log.Info("room moved away", "room", g.name)
}

// Adopt starts a game room that moved here from another server: a new
// Game of kind restored from state (Movable), going on at tick+1, with
// members, the room's sessions adopted here (netcode.Server.Adopt).
func (h *Hub) Adopt(kind, name string, tick uint32, state []byte, members []*netcode.Conn) (*GameRoom, error) {
	if err := checkRoomName(name); err != nil {
		return nil, err
	}
	h.mu.Lock()
	k, ok := h.kinds[kind]
	switch {
	case h.closed:
		h.mu.Unlock()
		return nil, ErrHubClosed
	case !ok:
		h.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrUnknownKind, kind)
	case h.games[name] != nil:
		h.mu.Unlock()
		return nil, fmt.Errorf("rooms: a room %q exists here already", name)
	case len(members) > k.opts.MaxMembers:
		h.mu.Unlock()
		return nil, fmt.Errorf("%w: %d members > %d", ErrRoomFull, len(members), k.opts.MaxMembers)
	}
	g := newGameRoom(h, name, kind, k)
	mv, ok := g.game.(Movable)
	if !ok {
		h.mu.Unlock()
		return nil, fmt.Errorf("%w: kind %q", ErrNotMovable, kind)
	}
	if err := mv.RestoreState(state, members); err != nil {
		h.mu.Unlock()
		return nil, fmt.Errorf("rooms: restoring room %q: %w", name, err)
	}
	g.lastTick = tick
	g.members = slices.Clone(members)
	h.games[name] = g
	h.perKind[kind]++
	h.mu.Unlock()
	for _, c := range members {
		h.inGameMu.Lock()
		h.mu.Lock()
		h.inGame[c] = g
		h.mu.Unlock()
		h.inGameMu.Unlock()
		_ = h.join(c, name, false)
		g.syncAway(c)
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return g, nil // Close stops it with the rest
	}
	h.startTicking(g)
	h.mu.Unlock()
	h.log.Info("room moved here", "room", name, "kind", kind, "tick", tick, "members", len(members))
	return g, nil
}

// syncAway tells the game whether member c is away now, read under the
// room's lock so that an away or back hook cannot come between.
func (g *GameRoom) syncAway(c *netcode.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.setAwayLocked(c, c.Away())
}
