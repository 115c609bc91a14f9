package rooms

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/time/rate"

	"github.com/roomwire/roomwire/netcode"
)

// Game is one room's game logic. The room calls its methods one at a time,
// never concurrently, so a Game needs no locks of its own.
type Game interface {
	// Join admits a player, or refuses with an error whose text the client
	// receives as the reason.
	Join(p *netcode.Conn) error
	// Leave removes a player that left or disconnected.
	Leave(p *netcode.Conn)
	// Input applies one input datagram from a player. It is called from the
	// tick loop, before Tick, for each input received since the last tick,
	// in arrival order. data is valid only until Input returns.
	Input(p *netcode.Conn, data []byte)
	// Tick steps the game by dt and appends the snapshot every member is
	// sent to snap, returning it.
	Tick(tick uint32, dt time.Duration, snap []byte) []byte
}

// AwayAware is a Game that wants to know when a member's network drops
// and its session waits to be resumed (netcode.Conn.Away), for example to
// freeze its avatar rather than let it run on its last input, and when it
// is back. No member_left or member_joined is emitted for either: the
// member stays in the room. One whose session expires leaves (Leave).
// The room calls these like the Game's other methods, one at a time.
type AwayAware interface {
	Away(p *netcode.Conn)
	Back(p *netcode.Conn)
}

// Options configure a kind of game room.
type Options struct {
	// TickRate is ticks per second, 1 to 128. Zero means 30.
	TickRate int
	// MaxMembers caps a room's players, at most 65535. Zero means 16.
	MaxMembers int
	// EmptyGrace is how long an empty room lives before it is disposed.
	// Zero means 10 seconds.
	EmptyGrace time.Duration
	// MaxInputsPerTick caps the inputs queued between two ticks; more are
	// dropped and counted. Zero means 8 per member slot.
	MaxInputsPerTick int
	// MaxInputsPerMember caps one member's inputs between two ticks, so a
	// flooding client cannot crowd out the others'. Zero means 8.
	MaxInputsPerMember int
	// MaxRooms caps the rooms of this kind alive at once. Zero means only
	// the hub's cap (HubOptions.MaxGameRooms).
	MaxRooms int
}

func (o *Options) populate() error {
	if o.TickRate == 0 {
		o.TickRate = 30
	}
	if o.TickRate < 1 || o.TickRate > 128 {
		return fmt.Errorf("rooms: tick rate %d not in 1..128", o.TickRate)
	}
	if o.MaxMembers <= 0 {
		o.MaxMembers = 16
	}
	if o.MaxMembers > 65535 {
		return fmt.Errorf("rooms: MaxMembers %d > 65535", o.MaxMembers)
	}
	if o.EmptyGrace <= 0 {
		o.EmptyGrace = 10 * time.Second
	}
	if o.MaxInputsPerTick <= 0 {
		o.MaxInputsPerTick = 8 * o.MaxMembers
	}
	if o.MaxInputsPerMember <= 0 {
		o.MaxInputsPerMember = 8
	}
	return nil
}

// MaxKindName is the longest room kind name.
const MaxKindName = 64

// ErrBadName refuses a room name that is too long or that could be taken
// for a connection's private room.
var ErrBadName = errors.New("rooms: bad room name")

// checkRoomName refuses names that would let a game room stand in for a
// private room: 32 hex digits, the form of a connection id.
func checkRoomName(name string) error {
	if len(name) > 255 {
		return fmt.Errorf("%w: %d bytes > 255", ErrBadName, len(name))
	}
	if _, err := netcode.ParseID(name); err == nil {
		return fmt.Errorf("%w: %q has the form of a connection id", ErrBadName, name)
	}
	return nil
}

// Define registers a kind of game room: newGame makes each room's Game.
// Kind names are 1..MaxKindName bytes.
func (h *Hub) Define(kindName string, newGame func() Game, opts Options) error {
	if len(kindName) == 0 || len(kindName) > MaxKindName {
		return fmt.Errorf("rooms: kind name of %d bytes not in 1..%d", len(kindName), MaxKindName)
	}
	if err := opts.populate(); err != nil {
		return err
	}
	h.mu.Lock()
	st := h.kinds[kindName].stats // a kind defined again keeps its counts
	if st == nil {
		st = new(kindStats)
	}
	h.kinds[kindName] = kind{newGame: newGame, opts: opts, stats: st}
	h.mu.Unlock()
	return nil
}

// RoomInfo describes a game room for listings such as the server's /rooms.
type RoomInfo struct {
	Name       string  `json:"name"`
	Kind       string  `json:"kind"`
	Members    int     `json:"members"`
	MaxMembers int     `json:"max_members"`
	TickRate   int     `json:"tick_rate"`
	AgeSeconds float64 `json:"age_s"`
	Ticks      uint64  `json:"ticks"`
	LateTicks  uint64  `json:"late_ticks"`
	// TickP50Micros and TickP99Micros are tick durations in microseconds.
	TickP50Micros int64 `json:"tick_p50_us"`
	TickP99Micros int64 `json:"tick_p99_us"`
	// InputsDropped counts inputs over MaxInputsPerTick or
	// MaxInputsPerMember.
	InputsDropped uint64 `json:"inputs_dropped"`
	// Away counts the members whose network dropped and whose session
	// waits to be resumed.
	Away int `json:"away"`
}

// Rooms lists the game rooms, sorted by name.
func (h *Hub) Rooms() []RoomInfo {
	h.mu.Lock()
	list := make([]*GameRoom, 0, len(h.games))
	for _, g := range h.games {
		list = append(list, g)
	}
	h.mu.Unlock()
	out := make([]RoomInfo, 0, len(list))
	for _, g := range list {
		out = append(out, g.Info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Room returns the game room named name, or nil.
func (h *Hub) Room(name string) *GameRoom {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.games[name]
}

// JoinGame puts c in a game room of kindName: the room called name, created
// if it does not exist, or with an empty name any room of that kind with a
// free place, or a new one. c leaves the game room it was in first.
func (h *Hub) JoinGame(c *netcode.Conn, kindName, name string) (*GameRoom, error) {
	if c.Err() != nil {
		return nil, c.Err()
	}
	g, err := h.joinGame(c, kindName, name)
	if cerr := c.Err(); cerr != nil {
		// c ended while it joined (a directory's claim waits on the
		// network, and JoinGame may run beside c's reader): its disconnect
		// hook may have run already and found nothing to remove, so what
		// the join left of c (a room's place, a rate limiter) goes here,
		// or the room keeps a member that is gone.
		h.drop(c)
		return nil, cerr
	}
	return g, err
}

func (h *Hub) joinGame(c *netcode.Conn, kindName, name string) (*GameRoom, error) {
	if err := checkRoomName(name); err != nil {
		return nil, err
	}
	if old := h.GameOf(c); old != nil && old.name == name && old.kind == kindName {
		return old, nil // already there
	}
	if dir := h.opts.Directory; dir != nil && name != "" && h.Room(name) == nil {
		switch r, err := dir.Claim(c, kindName, name); {
		case err != nil:
			return nil, err
		case r != nil:
			return nil, &RedirectError{Room: name, Redirect: *r}
		}
	}
	for attempt := 0; attempt < 8; attempt++ {
		g, created, err := h.pick(c, kindName, name)
		if err != nil {
			return nil, err
		}
		if created && name == "" && h.opts.Directory != nil {
			// A room of a join-any, named uniquely for the cluster: the
			// claim only makes it known.
			if r, err := h.opts.Directory.Claim(c, kindName, g.name); err != nil || r != nil {
				h.log.Warn("room not in the cluster's directory", "room", g.name, "err", err)
			}
		}
		if g == h.GameOf(c) {
			return g, nil // join-or-create picked the room c is in
		}
		switch err := g.join(c); {
		case err == nil:
			// Only now that the new room took c does it leave the old one,
			// so a refused join leaves c where it was.
			h.leaveGame(c)
			h.inGameMu.Lock()
			h.mu.Lock()
			h.inGame[c] = g
			h.mu.Unlock()
			h.inGameMu.Unlock()
			_ = h.join(c, g.name, false)
			if err := c.Err(); err != nil {
				return nil, err // JoinGame takes it out again
			}
			_ = h.To(g.name).Except(c).Emit(EventMemberJoined, []byte(c.ID().String()))
			return g, nil
		case errors.Is(err, errRoomClosed):
			continue // disposed between pick and join: pick again
		default:
			return nil, err
		}
	}
	return nil, fmt.Errorf("rooms: could not join a %q room: rooms keep closing", kindName)
}

// pick finds or creates the room to join for c, within the room caps; it
// reports whether it created it.
func (h *Hub) pick(c *netcode.Conn, kindName, name string) (*GameRoom, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false, ErrHubClosed
	}
	k, ok := h.kinds[kindName]
	if !ok {
		return nil, false, fmt.Errorf("%w: %q", ErrUnknownKind, kindName)
	}
	if name != "" {
		if g := h.games[name]; g != nil {
			if g.kind != kindName {
				return nil, false, fmt.Errorf("%w: %q is a %q room", ErrKindClash, name, g.kind)
			}
			return g, false, nil
		}
	} else {
		var best *GameRoom
		for _, g := range h.games {
			if g.kind == kindName && g.hasRoom() && (best == nil || g.name < best.name) {
				best = g
			}
		}
		if best != nil {
			return best, false, nil
		}
		u, _ := h.opts.Directory.(interface{ Unique(string) string })
		for {
			h.nextNum[kindName]++
			name = fmt.Sprintf("%s-%d", kindName, h.nextNum[kindName])
			if u != nil {
				name = u.Unique(name)
			}
			if h.games[name] == nil {
				break
			}
		}
	}
	if err := h.mayCreate(c, kindName, k.opts); err != nil {
		return nil, false, err
	}
	g := newGameRoom(h, name, kindName, k)
	h.games[name] = g
	h.perKind[kindName]++
	h.startTicking(g)
	h.log.Info("room created", "room", name, "kind", kindName, "tick_rate", k.opts.TickRate)
	return g, true, nil
}

// mayCreate checks the caps a new room of kindName, for c, must stay within
// (h.mu held).
func (h *Hub) mayCreate(c *netcode.Conn, kindName string, opts Options) error {
	switch {
	case len(h.games) >= h.opts.MaxGameRooms:
		h.srv.Drop("game_rooms_cap")
		return fmt.Errorf("%w: the server has its %d game rooms", ErrRoomCap, h.opts.MaxGameRooms)
	case opts.MaxRooms > 0 && h.perKind[kindName] >= opts.MaxRooms:
		h.srv.Drop("game_rooms_kind_cap")
		return fmt.Errorf("%w: the server has its %d %q rooms", ErrRoomCap, opts.MaxRooms, kindName)
	}
	lim := h.creates[c]
	if lim == nil {
		n := h.opts.CreatesPerMinute
		lim = rate.NewLimiter(rate.Limit(float64(n)/60), n)
		h.creates[c] = lim
	}
	if !lim.Allow() {
		h.srv.Drop("room_creates")
		return fmt.Errorf("%w: more than %d new rooms a minute", ErrRoomCap, h.opts.CreatesPerMinute)
	}
	return nil
}

// LeaveGame takes c out of its game room, if any.
func (h *Hub) LeaveGame(c *netcode.Conn) bool { return h.leaveGame(c) }

func (h *Hub) leaveGame(c *netcode.Conn) bool {
	h.inGameMu.Lock()
	h.mu.Lock()
	g := h.inGame[c]
	delete(h.inGame, c)
	h.mu.Unlock()
	h.inGameMu.Unlock()
	if g == nil {
		return false
	}
	g.leave(c)
	h.Leave(c, g.name)
	_ = h.To(g.name).Emit(EventMemberLeft, []byte(c.ID().String()))
	return true
}

// GameOf returns the game room c is in, or nil.
func (h *Hub) GameOf(c *netcode.Conn) *GameRoom {
	h.inGameMu.RLock()
	g := h.inGame[c]
	h.inGameMu.RUnlock()
	return g
}

// setAway tells c's game room, if any, that c is away or back.
func (h *Hub) setAway(c *netcode.Conn, away bool) {
	if g := h.GameOf(c); g != nil {
		g.setAway(c, away)
	}
}

func (h *Hub) input(c *netcode.Conn, data []byte) {
	if g := h.GameOf(c); g != nil {
		g.pushInput(c, data)
	}
}

// dispose removes an empty room whose grace period passed. It reports
// whether the room is gone.
func (h *Hub) dispose(g *GameRoom) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.members) > 0 {
		return false
	}
	g.closed = true
	if h.games[g.name] == g {
		delete(h.games, g.name)
		h.perKind[g.kind]--
		if dir := h.opts.Directory; dir != nil {
			dir.Release(g.name) // must not block: h.mu is held
		}
	}
	h.log.Info("room disposed", "room", g.name)
	return true
}

// Close stops every room's tick loop and waits for them. Connections are the
// server's to close.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	list := make([]*GameRoom, 0, len(h.games))
	for _, g := range h.games {
		list = append(list, g)
	}
	h.mu.Unlock()
	for _, g := range list {
		g.stopOnce.Do(func() { close(g.stop) })
	}
	h.wg.Wait()
}

var errRoomClosed = errors.New("rooms: room closed")

// roomStreams numbers game rooms' snapshot streams, process-wide.
var roomStreams atomic.Uint64

// GameRoom is one running game: its members, its Game and its tick loop.
type GameRoom struct {
	hub     *Hub
	name    string
	kind    string
	opts    Options
	created time.Time
	period  time.Duration
	stream  uint64 // unique per room: the snapshot stream's name

	mu        sync.Mutex // guards game, members, closed, frozen, lastTick and the stats
	game      Game
	members   []*netcode.Conn
	closed    bool
	frozen    bool   // stopped between two ticks for a move (move.go)
	lastTick  uint32 // the last tick run; before the loop starts, the one it goes on from
	ticks     uint64
	lateTicks uint64
	tickDur   *hdrhistogram.Histogram
	kstats    *kindStats // shared by the kind's rooms

	// Its ticker's own (tick.go).
	tickNo     uint32 // the tick number it last gave the room
	ticking    bool   // the room has had its first tick
	untick     bool   // it leaves the ticker
	emptySince time.Time

	inMu      sync.Mutex
	inputs    []queuedInput
	inBytes   []byte
	inDropped uint64
	inCount   map[*netcode.Conn]int // inputs queued per member this tick

	// The buffers the last tick drained, refilled by the next (tick loop
	// only, under inMu when swapped).
	spareInputs []queuedInput
	spareBytes  []byte

	stop     chan struct{}
	stopOnce sync.Once

	awayOnes map[*netcode.Conn]struct{} // members away (under mu)
	away     int
}

type queuedInput struct {
	c        *netcode.Conn
	off, end int
}

func newGameRoom(h *Hub, name, kindName string, k kind) *GameRoom {
	return &GameRoom{
		hub:     h,
		name:    name,
		kind:    kindName,
		opts:    k.opts,
		created: time.Now(),
		stream:  roomStreams.Add(1),
		period:  time.Second / time.Duration(k.opts.TickRate),
		game:    k.newGame(),
		tickDur: hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 2),
		kstats:  k.stats,
		inCount: make(map[*netcode.Conn]int),
		stop:    make(chan struct{}),
	}
}

// Name is the room's name, which is also the name of the broadcast room of
// its members.
func (g *GameRoom) Name() string { return g.name }

// Kind is the room's kind.
func (g *GameRoom) Kind() string { return g.kind }

// TickRate is the room's ticks per second.
func (g *GameRoom) TickRate() int { return g.opts.TickRate }

// Info describes the room.
func (g *GameRoom) Info() RoomInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inMu.Lock()
	dropped := g.inDropped
	g.inMu.Unlock()
	return RoomInfo{
		Name:          g.name,
		Kind:          g.kind,
		Members:       len(g.members),
		MaxMembers:    g.opts.MaxMembers,
		TickRate:      g.opts.TickRate,
		AgeSeconds:    time.Since(g.created).Seconds(),
		Ticks:         g.ticks,
		LateTicks:     g.lateTicks,
		TickP50Micros: g.tickDur.ValueAtQuantile(50),
		TickP99Micros: g.tickDur.ValueAtQuantile(99),
		InputsDropped: dropped,
		Away:          g.away,
	}
}

// Members returns the room's players now, in the order they joined: a
// copy, which the caller may keep and which later joins and leaves do not
// change. It is for listings such as the game server's dashboard; a Game
// learns of its players from Join and Leave.
func (g *GameRoom) Members() []*netcode.Conn {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.members)
}

func (g *GameRoom) hasRoom() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.closed && len(g.members) < g.opts.MaxMembers
}

func (g *GameRoom) join(c *netcode.Conn) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.frozen {
		return errRoomClosed
	}
	if len(g.members) >= g.opts.MaxMembers {
		return fmt.Errorf("%w: %q has %d of %d players", ErrRoomFull, g.name, len(g.members), g.opts.MaxMembers)
	}
	if err := g.game.Join(c); err != nil {
		return err
	}
	g.members = append(g.members, c)
	return nil
}

func (g *GameRoom) leave(c *netcode.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, m := range g.members {
		if m == c {
			g.members = append(g.members[:i], g.members[i+1:]...)
			if _, was := g.awayOnes[c]; was {
				delete(g.awayOnes, c)
				g.away--
			}
			g.game.Leave(c)
			return
		}
	}
}

// setAway records that member c is away or back, and tells the game.
func (g *GameRoom) setAway(c *netcode.Conn, away bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.setAwayLocked(c, away)
}

func (g *GameRoom) setAwayLocked(c *netcode.Conn, away bool) {
	if !slices.Contains(g.members, c) {
		return
	}
	if _, was := g.awayOnes[c]; was == away {
		return
	}
	aa, _ := g.game.(AwayAware)
	if away {
		if g.awayOnes == nil {
			g.awayOnes = make(map[*netcode.Conn]struct{})
		}
		g.awayOnes[c] = struct{}{}
		g.away++
		if aa != nil {
			aa.Away(c)
		}
		return
	}
	delete(g.awayOnes, c)
	g.away--
	if aa != nil {
		aa.Back(c)
	}
}

// pushInput queues one input for the next tick, copying it into the room's
// input buffer; over the per-tick cap it is dropped and counted.
func (g *GameRoom) pushInput(c *netcode.Conn, data []byte) {
	g.inMu.Lock()
	if len(g.inputs) >= g.opts.MaxInputsPerTick || g.inCount[c] >= g.opts.MaxInputsPerMember {
		g.inDropped++
		g.inMu.Unlock()
		return
	}
	off := len(g.inBytes)
	g.inBytes = append(g.inBytes, data...)
	g.inputs = append(g.inputs, queuedInput{c: c, off: off, end: len(g.inBytes)})
	g.inCount[c]++
	g.inMu.Unlock()
}
