package cluster

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/rooms"
)

// Room handoff. A draining node moves each of its rooms to another node:
// the room freezes between two ticks, its game state and its members'
// sessions (netcode.Conn.StartHandoff) go to the target in one NATS
// request, the target adopts the sessions and the room and takes the
// room's directory entry with Update at the revision the owner wrote, and
// on its yes the old node sends the clients on ($moved), and they resume
// there. On a no, or no answer, the old node fences the target off by
// rewriting the entry itself: if that fails the target has taken it, and
// the move is committed after all; otherwise the room thaws and plays on.

const (
	// maxHandoff bounds a handoff message (the embedded NATS's max
	// payload): a room's state and its members' unacknowledged frames.
	maxHandoff = 8 << 20
	// handoffTimeout is how long a node waits for the target's answer.
	handoffTimeout = 5 * time.Second
	handoffMagic   = "RWR1"
)

// Moved is the outcome of one room's handoff (MoveRooms).
type Moved struct {
	Room string `json:"room"`
	// To is the node it moved to, empty when it stayed.
	To string `json:"to,omitempty"`
	// Members counts the sessions that moved with it; Left, those that
	// could not (no resume granted), which were closed.
	Members int `json:"members"`
	Left    int `json:"left,omitempty"`
	// Pause is how long the room was frozen: from its last tick here to
	// the clients being sent on.
	Pause time.Duration `json:"pause_ns"`
	// Err says why it stayed.
	Err string `json:"error,omitempty"`
}

// Serve lets the node hand its game rooms off (MoveRooms) and take other
// nodes': it answers their handoffs into srv and hub. Call it once, when
// the hub's kinds are defined.
func (n *Node) Serve(srv *netcode.Server, hub *rooms.Hub) error {
	n.mu.Lock()
	n.srv, n.hub = srv, hub
	n.mu.Unlock()
	if _, err := n.nc.Subscribe(n.handoffSubject(n.id), n.takeHandoff); err != nil {
		return unavailable("subscribe to handoffs", err)
	}
	return nil
}

func (n *Node) handoffSubject(node string) string {
	return "rw." + n.cfg.Name + ".handoff." + nodeKey(node)
}

// MoveRooms hands each game room this node owns to another live node that
// is not draining, the least loaded first: Drain first, so that no new
// room comes meanwhile. A room that cannot move (its game is not
// rooms.Movable, or no node takes it) stays and is served here.
func (n *Node) MoveRooms(ctx context.Context) []Moved {
	n.mu.Lock()
	hub := n.hub
	n.mu.Unlock()
	if hub == nil {
		return nil
	}
	var out []Moved
	for _, ri := range hub.Rooms() {
		n.mu.Lock()
		_, mine := n.owned[ri.Name]
		n.mu.Unlock()
		if !mine || ctx.Err() != nil {
			continue
		}
		m := n.moveRoom(ctx, ri.Name)
		if m.Err != "" {
			n.log.Warn("room stays: handoff failed", "room", m.Room, "to", m.To, "err", m.Err)
			m.To = ""
		} else {
			n.log.Info("room handed off", "room", m.Room, "to", m.To, "members", m.Members, "pause", m.Pause)
		}
		out = append(out, m)
	}
	return out
}

// target is the live node that is not draining with the fewest
// connections, other than this one.
func (n *Node) target() (NodeInfo, bool) {
	var best *NodeInfo
	for _, ni := range n.Nodes() {
		if ni.ID != n.id && !ni.Draining && (best == nil || ni.Load < best.Load) {
			best = &ni
		}
	}
	if best == nil {
		return NodeInfo{}, false
	}
	return *best, true
}

func (n *Node) moveRoom(ctx context.Context, room string) Moved {
	m := Moved{Room: room}
	to, ok := n.target()
	if !ok {
		m.Err = "no live node that is not draining"
		return m
	}
	m.To = to.ID
	n.mu.Lock()
	rev := n.owned[room]
	n.mu.Unlock()
	start := time.Now()
	fr, err := n.hub.Freeze(room)
	if err != nil {
		m.Err = err.Error()
		return m
	}
	urls := strings.Join(to.Addrs, ",")
	var hs []*netcode.Handoff
	var left []*netcode.Conn
	for _, c := range fr.Members {
		h, err := c.StartHandoff(urls)
		if err != nil {
			left = append(left, c)
			continue
		}
		hs = append(hs, h)
	}
	abort := func(why string) Moved {
		for _, h := range hs {
			h.Abort()
		}
		fr.Thaw()
		m.Err = why
		return m
	}
	msg := appendHandoff(nil, fr, rev, hs)
	if len(msg) > int(n.nc.MaxPayload()) {
		return abort(fmt.Sprintf("handoff of %d bytes > NATS's max payload %d", len(msg), n.nc.MaxPayload()))
	}
	rctx, cancel := context.WithTimeout(ctx, handoffTimeout)
	reply, err := n.nc.RequestWithContext(rctx, n.handoffSubject(to.ID), msg)
	cancel()
	if err == nil && len(reply.Data) > 0 {
		err = errors.New(string(reply.Data))
	}
	if err != nil && !n.fenceOff(room, rev) {
		err = nil // the target took the entry: it has the room
	}
	if err != nil {
		return abort(err.Error())
	}
	n.mu.Lock()
	delete(n.owned, room) // the target's entry now
	n.mu.Unlock()
	fr.Release()
	for _, h := range hs {
		h.Commit()
	}
	for _, c := range left {
		c.Close("the room moved to another node: join it again")
	}
	m.Members, m.Left, m.Pause = len(hs), len(left), time.Since(start)
	return m
}

// fenceOff rewrites this node's entry of room, which it wrote at rev, so
// that a target that has not taken it yet cannot (its Update names rev);
// it reports false when the entry is no longer at rev: the target took it.
// With the directory unreachable it reports true: the room stays, and the
// target's Update, should it come, finds no quorum either.
func (n *Node) fenceOff(room string, rev uint64) bool {
	ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
	defer cancel()
	e, err := n.kvR.Get(ctx, roomKey(room))
	if err != nil {
		return true
	}
	if e.Revision() != rev {
		return false
	}
	newRev, err := n.kvR.Update(ctx, roomKey(room), e.Value(), rev)
	switch {
	case err == nil:
		n.mu.Lock()
		n.owned[room] = newRev
		n.mu.Unlock()
		return true
	case errors.Is(err, jetstream.ErrKeyExists): // the target's Update came first
		return false
	}
	return true
}

// appendHandoff encodes a room's handoff: magic | kind u8+bytes | name
// u8+bytes | tick u32 | rev u64 | state u32+bytes | count u16 | count ×
// session u32+bytes.
func appendHandoff(b []byte, fr *rooms.FrozenRoom, rev uint64, hs []*netcode.Handoff) []byte {
	b = append(b, handoffMagic...)
	b = append(append(b, byte(len(fr.Kind))), fr.Kind...)
	b = append(append(b, byte(len(fr.Name))), fr.Name...)
	b = binary.BigEndian.AppendUint32(b, fr.Tick)
	b = binary.BigEndian.AppendUint64(b, rev)
	b = append(binary.BigEndian.AppendUint32(b, uint32(len(fr.State))), fr.State...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(hs)))
	for _, h := range hs {
		st := h.State()
		b = append(binary.BigEndian.AppendUint32(b, uint32(len(st))), st...)
	}
	return b
}

// handoff is a parsed handoff message.
type handoff struct {
	kind, name string
	tick       uint32
	rev        uint64
	state      []byte
	sessions   [][]byte
}

var errBadHandoff = errors.New("cluster: malformed handoff")

func parseHandoff(b []byte) (*handoff, error) {
	var h handoff
	take := func(k int) []byte {
		if k > len(b) {
			b = nil
			return nil
		}
		p := b[:k]
		b = b[k:]
		return p
	}
	if string(take(len(handoffMagic))) != handoffMagic {
		return nil, errBadHandoff
	}
	if p := take(1); p != nil {
		h.kind = string(take(int(p[0])))
	}
	if p := take(1); p != nil {
		h.name = string(take(int(p[0])))
	}
	fixed := take(12)
	if fixed == nil {
		return nil, errBadHandoff
	}
	h.tick, h.rev = binary.BigEndian.Uint32(fixed), binary.BigEndian.Uint64(fixed[4:])
	if p := take(4); p != nil {
		h.state = take(int(binary.BigEndian.Uint32(p)))
	}
	p := take(2)
	if p == nil || h.state == nil && b == nil {
		return nil, errBadHandoff
	}
	for range int(binary.BigEndian.Uint16(p)) {
		q := take(4)
		if q == nil {
			return nil, errBadHandoff
		}
		s := take(int(binary.BigEndian.Uint32(q)))
		if s == nil {
			return nil, errBadHandoff
		}
		h.sessions = append(h.sessions, s)
	}
	if len(b) != 0 || h.kind == "" {
		return nil, errBadHandoff
	}
	return &h, nil
}

// takeHandoff answers another node's handoff: it adopts the sessions and
// the room, then takes the room's entry; an empty reply is yes, else the
// reason. Whatever it adopted before a failure is undone.
func (n *Node) takeHandoff(msg *nats.Msg) {
	answer := func(err error) {
		var b []byte
		if err != nil {
			n.log.Warn("handoff refused", "err", err)
			b = []byte(err.Error())
		}
		_ = msg.Respond(b)
	}
	h, err := parseHandoff(msg.Data)
	if err != nil {
		answer(err)
		return
	}
	n.mu.Lock()
	srv, hub, draining := n.srv, n.hub, n.draining
	n.mu.Unlock()
	if draining {
		answer(fmt.Errorf("cluster: node %s is draining", n.id))
		return
	}
	var conns []*netcode.Conn
	undo := func(err error) {
		for _, c := range conns {
			c.Close("handoff failed")
		}
		answer(err)
	}
	for _, st := range h.sessions {
		c, err := srv.Adopt(st)
		if err != nil {
			undo(fmt.Errorf("cluster: adopting a session of room %q: %w", h.name, err))
			return
		}
		conns = append(conns, c)
	}
	if _, err := hub.Adopt(h.kind, h.name, h.tick, h.state, conns); err != nil {
		undo(err)
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
	defer cancel()
	b, _ := json.Marshal(roomEntry{Owner: n.id, Kind: h.kind})
	rev, err := n.kvR.Update(ctx, roomKey(h.name), b, h.rev)
	if err != nil {
		if fr, ferr := hub.Freeze(h.name); ferr == nil {
			fr.Release()
		}
		undo(unavailable("take room "+h.name, err))
		return
	}
	n.mu.Lock()
	n.owned[h.name] = rev
	n.mu.Unlock()
	answer(nil)
}
