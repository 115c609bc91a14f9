package cluster

import (
	"github.com/nats-io/nats.go"

	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/rooms"
)

// Headers of a broadcast's NATS message.
const (
	hdrRoom = "Rw-Room"
	hdrNode = "Rw-Node"
)

// adapter is the rooms.Adapter of a node: membership is local (each node
// knows its own connections), and a broadcast goes to the local members and,
// over NATS, to every other node, which delivers it to its own members of
// the room. A socket.io-style room may have members on many nodes; a game
// room has them all on its owner.
type adapter struct {
	*rooms.MemoryAdapter
	n       *Node
	subject string
}

// Adapter returns the node's rooms.Adapter, for rooms.HubOptions.Adapter:
// hub.To(room).Emit and Except reach the room's members on every node.
// Call it once, before the hub serves.
func (n *Node) Adapter() (rooms.Adapter, error) {
	a := &adapter{MemoryAdapter: rooms.NewMemoryAdapter(), n: n, subject: "rw." + n.cfg.Name + ".bcast"}
	if _, err := n.nc.Subscribe(a.subject, a.deliver); err != nil {
		return nil, unavailable("subscribe to broadcasts", err)
	}
	return a, nil
}

// Broadcast delivers frames to the local members of room but except, and
// publishes them for the other nodes' members. The publish only buffers:
// it never waits on the network. With NATS down the other nodes' members
// miss it, as socket.io's adapters' do.
func (a *adapter) Broadcast(room string, except *netcode.Conn, frames []byte) {
	a.MemoryAdapter.Broadcast(room, except, frames)
	m := &nats.Msg{Subject: a.subject, Header: nats.Header{hdrRoom: {room}, hdrNode: {a.n.id}}, Data: frames}
	if err := a.n.nc.PublishMsg(m); err != nil {
		a.n.log.Debug("cluster: broadcast not published", "room", room, "err", err)
	}
}

// deliver hands another node's broadcast to the local members.
func (a *adapter) deliver(m *nats.Msg) {
	if m.Header.Get(hdrNode) == a.n.id {
		return
	}
	a.MemoryAdapter.Broadcast(m.Header.Get(hdrRoom), nil, m.Data)
}
