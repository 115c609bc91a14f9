// Package arena is Roomwire's demo game: players move on a 2D field by their
// inputs, and each tick's snapshot is every player's id and position. The
// game server runs it as the room kind "arena"; the bot client plays it.
//
// Input (2 bytes): dx int8 | dy int8, the direction to move in, each -127..127.
//
// Snapshot: count u16 | count × (id [16]byte | x float32 | y float32), big
// endian, players in join order; then, when the arena has static props,
// props u16 | props × (id [16]byte | x float32 | y float32).
package arena

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/roomwire/roomwire/netcode"
)

// Kind is the room kind the game server registers the arena under.
const Kind = "arena"

// Field size and player speed, in world units.
const (
	FieldSize = 1000
	Speed     = 200 // units per second at full input
)

// PlayerSize is the bytes one player takes in a snapshot.
const PlayerSize = 16 + 4 + 4

type player struct {
	id     netcode.ID
	x, y   float32
	dx, dy int8
	away   bool
}

// Game is one arena. It is driven by its room and is not safe for concurrent
// use on its own.
type Game struct {
	players []*player
	byConn  map[*netcode.Conn]*player
	spawns  uint32
	props   []byte // encoded once: they never move
}

// New returns an empty arena.
func New() *Game { return &Game{byConn: make(map[*netcode.Conn]*player)} }

// NewWithProps returns an empty arena with n static props (walls, crates),
// which every snapshot lists: the state a delta codec should make nearly
// free.
func NewWithProps(n int) *Game {
	g := New()
	if n <= 0 {
		return g
	}
	g.props = binary.BigEndian.AppendUint16(nil, uint16(n))
	for i := 0; i < n; i++ {
		var id [16]byte
		binary.BigEndian.PutUint32(id[12:], uint32(i+1))
		g.props = append(g.props, id[:]...)
		g.props = binary.BigEndian.AppendUint32(g.props, math.Float32bits(float32(i*37%FieldSize)))
		g.props = binary.BigEndian.AppendUint32(g.props, math.Float32bits(float32(i*91%FieldSize)))
	}
	return g
}

// Join places a new player at a spawn point.
func (g *Game) Join(c *netcode.Conn) error {
	if _, ok := g.byConn[c]; ok {
		return errors.New("arena: already playing")
	}
	g.spawns++
	// Spread spawns over the field deterministically.
	s := float32(g.spawns)
	p := &player{id: c.ID(), x: float32(math.Mod(float64(s*137.5), FieldSize)), y: float32(math.Mod(float64(s*71.3), FieldSize))}
	g.players = append(g.players, p)
	g.byConn[c] = p
	return nil
}

// Leave removes the player.
func (g *Game) Leave(c *netcode.Conn) {
	p := g.byConn[c]
	if p == nil {
		return
	}
	delete(g.byConn, c)
	for i, q := range g.players {
		if q == p {
			g.players = append(g.players[:i], g.players[i+1:]...)
			break
		}
	}
}

// Away freezes the player where it is while its network is down, rather
// than let it run on its last input (rooms.AwayAware).
func (g *Game) Away(c *netcode.Conn) {
	if p := g.byConn[c]; p != nil {
		p.dx, p.dy, p.away = 0, 0, true
	}
}

// Back lets the player move again on its next input.
func (g *Game) Back(c *netcode.Conn) {
	if p := g.byConn[c]; p != nil {
		p.away = false
	}
}

// Input sets the player's direction; malformed inputs are ignored, and so
// are inputs of a player away (late ones, from before its network dropped).
func (g *Game) Input(c *netcode.Conn, data []byte) {
	p := g.byConn[c]
	if p == nil || len(data) != 2 || p.away {
		return
	}
	p.dx, p.dy = max(int8(data[0]), -127), max(int8(data[1]), -127)
}

// Tick moves every player and appends the snapshot.
func (g *Game) Tick(_ uint32, dt time.Duration, snap []byte) []byte {
	step := float32(Speed * dt.Seconds() / 127)
	snap = binary.BigEndian.AppendUint16(snap, uint16(len(g.players)))
	for _, p := range g.players {
		p.x = clamp(p.x + float32(p.dx)*step)
		p.y = clamp(p.y + float32(p.dy)*step)
		snap = append(snap, p.id[:]...)
		snap = binary.BigEndian.AppendUint32(snap, math.Float32bits(p.x))
		snap = binary.BigEndian.AppendUint32(snap, math.Float32bits(p.y))
	}
	return append(snap, g.props...)
}

func clamp(v float32) float32 { return min(max(v, 0), FieldSize) }

// onField is a restored coordinate on the field: NaN is put at 0.
func onField(v float32) float32 {
	if v != v {
		return 0
	}
	return clamp(v)
}

// Player is one entry of a decoded snapshot.
type Player struct {
	ID   netcode.ID
	X, Y float32
}

// Decode appends the players of a snapshot to dst.
func Decode(dst []Player, snap []byte) ([]Player, error) {
	if len(snap) < 2 {
		return dst, fmt.Errorf("arena: snapshot of %d bytes", len(snap))
	}
	n := int(binary.BigEndian.Uint16(snap))
	if len(snap) < 2+n*PlayerSize {
		return dst, fmt.Errorf("arena: snapshot of %d bytes for %d players", len(snap), n)
	}
	if rest := snap[2+n*PlayerSize:]; len(rest) > 0 {
		if len(rest) < 2 || len(rest) != 2+int(binary.BigEndian.Uint16(rest))*PlayerSize {
			return dst, fmt.Errorf("arena: props section of %d bytes", len(rest))
		}
	}
	for i := 0; i < n; i++ {
		b := snap[2+i*PlayerSize:]
		var p Player
		copy(p.ID[:], b)
		p.X = math.Float32frombits(binary.BigEndian.Uint32(b[16:]))
		p.Y = math.Float32frombits(binary.BigEndian.Uint32(b[20:]))
		dst = append(dst, p)
	}
	return dst, nil
}

// EncodeInput returns the 2-byte input for direction (dx, dy).
func EncodeInput(dst []byte, dx, dy int8) []byte { return append(dst, byte(dx), byte(dy)) }

// playerState is the bytes one player takes in MarshalState: id, position,
// direction and whether it is away.
const playerState = 16 + 4 + 4 + 1 + 1 + 1

// MarshalState appends the arena's state for a move to another node
// (rooms.Movable): spawns u32 | count u16 | count × (id [16]byte | x f32 |
// y f32 | dx i8 | dy i8 | away u8). The props are the kind's, made again
// there.
func (g *Game) MarshalState(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint32(b, g.spawns)
	b = binary.BigEndian.AppendUint16(b, uint16(len(g.players)))
	for _, p := range g.players {
		b = append(b, p.id[:]...)
		b = binary.BigEndian.AppendUint32(b, math.Float32bits(p.x))
		b = binary.BigEndian.AppendUint32(b, math.Float32bits(p.y))
		away := byte(0)
		if p.away {
			away = 1
		}
		b = append(b, byte(p.dx), byte(p.dy), away)
	}
	return b, nil
}

// RestoreState makes the arena the one MarshalState described, its players
// played by members, matched by id (rooms.Movable). A player whose member
// is not among them is dropped; a member without a player joins.
func (g *Game) RestoreState(state []byte, members []*netcode.Conn) error {
	if len(state) < 6 {
		return errors.New("arena: state too short")
	}
	n := int(binary.BigEndian.Uint16(state[4:]))
	if len(state) != 6+n*playerState {
		return fmt.Errorf("arena: state of %d bytes for %d players", len(state), n)
	}
	byID := make(map[netcode.ID]*netcode.Conn, len(members))
	for _, c := range members {
		byID[c.ID()] = c
	}
	g.spawns = binary.BigEndian.Uint32(state)
	g.players, g.byConn = g.players[:0], make(map[*netcode.Conn]*player, n)
	for rest := state[6:]; len(rest) > 0; rest = rest[playerState:] {
		p := &player{
			x: math.Float32frombits(binary.BigEndian.Uint32(rest[16:])), y: math.Float32frombits(binary.BigEndian.Uint32(rest[20:])),
			dx: int8(rest[24]), dy: int8(rest[25]), away: rest[26] != 0,
		}
		copy(p.id[:], rest[:16])
		c := byID[p.id]
		if c == nil || g.byConn[c] != nil {
			continue
		}
		p.x, p.y = onField(p.x), onField(p.y)
		g.players = append(g.players, p)
		g.byConn[c] = p
	}
	for _, c := range members {
		if g.byConn[c] == nil {
			if err := g.Join(c); err != nil {
				return err
			}
		}
	}
	return nil
}
