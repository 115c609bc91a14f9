package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/rooms"
)

// roomEntry is a room's directory entry.
type roomEntry struct {
	Owner string `json:"owner"`
	Kind  string `json:"kind"`
}

// RoomInfo is one room of the cluster's directory.
type RoomInfo struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Owner string `json:"owner"`
}

func newTag() [16]byte {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return b
}

// Keys: room names are the application's, any bytes; KV keys take a
// narrow alphabet, so the name is hex-encoded.
func roomKey(room string) string { return "r" + hex.EncodeToString([]byte(room)) }

func roomName(key string) (string, bool) {
	if !strings.HasPrefix(key, "r") {
		return "", false
	}
	b, err := hex.DecodeString(key[1:])
	return string(b), err == nil
}

func nodeKey(id string) string { return "n" + hex.EncodeToString([]byte(id)) }

// register creates this node's entry, with its TTL.
func (n *Node) register(ctx context.Context) error {
	b, err := json.Marshal(n.info())
	if err != nil {
		return err
	}
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	var rev uint64
	for {
		rev, err = n.kvN.Create(octx, nodeKey(n.id), b, jetstream.KeyTTL(n.cfg.NodeTTL))
		// In a cluster just formed, the bucket's stream may still be
		// electing its leader: its writes go unanswered for a while
		// (longer than the client's own two retries on a loaded machine).
		if !errors.Is(err, jetstream.ErrNoStreamResponse) || octx.Err() != nil {
			break
		}
		n.log.Debug("directory not writable yet", "err", err)
		select {
		case <-octx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("cluster: node id %q is taken by a live node (a node's entry lives %v after its last refresh)", n.id, n.cfg.NodeTTL)
	}
	if err != nil {
		return unavailable("register the node", err)
	}
	n.mu.Lock()
	n.nodeRev = rev
	n.mu.Unlock()
	n.readNodes(ctx)
	return nil
}

func (n *Node) info() NodeInfo {
	load := n.load() // not under mu: it reads the server, whose hooks call the hub, which calls Release
	n.mu.Lock()
	defer n.mu.Unlock()
	return NodeInfo{ID: n.id, Addrs: n.cfg.Addrs, Load: load, Draining: n.draining}
}

// loop refreshes this node's entry and reads the live nodes every
// refreshEvery, and reconciles the rooms directory every reconcileEvery
// refreshes (it reads every room's entry), until Close.
func (n *Node) loop() {
	defer n.wg.Done()
	t := time.NewTicker(refreshEvery)
	defer t.Stop()
	for round := 1; ; round++ {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		if err := n.refresh(); err != nil && n.ctx.Err() == nil {
			n.log.Warn("cluster: refreshing the node's entry", "err", err)
		}
		n.readNodes(n.ctx)
		if round%reconcileEvery == 0 {
			n.reconcile()
		}
	}
}

// refresh rewrites this node's entry with a new TTL, only over its own
// last revision; an entry that expired meanwhile (a long NATS outage) is
// created again.
func (n *Node) refresh() error {
	n.refreshMu.Lock()
	defer n.refreshMu.Unlock()
	b, err := json.Marshal(n.info())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
	defer cancel()
	n.mu.Lock()
	rev := n.nodeRev
	n.mu.Unlock()
	ack, err := n.js.Publish(ctx, "$KV."+nodesBucket+"."+nodeKey(n.id), b,
		jetstream.WithMsgTTL(n.cfg.NodeTTL), jetstream.WithExpectLastSequencePerSubject(rev))
	if err != nil {
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) {
			return unavailable("refresh the node's entry", err)
		}
		// Not our last revision: the entry expired, or was removed.
		nrev, cerr := n.kvN.Create(ctx, nodeKey(n.id), b, jetstream.KeyTTL(n.cfg.NodeTTL))
		if cerr != nil {
			return unavailable("register the node again", cerr)
		}
		n.mu.Lock()
		n.nodeRev = nrev
		n.mu.Unlock()
		return nil
	}
	n.mu.Lock()
	n.nodeRev = ack.Sequence
	n.mu.Unlock()
	return nil
}

// readNodes reads the live nodes into the cache; on failure it keeps the
// last good list.
func (n *Node) readNodes(ctx context.Context) {
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	lister, err := n.kvN.ListKeys(octx)
	if err != nil {
		return
	}
	nodes := make(map[string]NodeInfo)
	for key := range lister.Keys() {
		e, err := n.kvN.Get(octx, key)
		if err != nil {
			continue
		}
		var ni NodeInfo
		if json.Unmarshal(e.Value(), &ni) == nil && ni.ID != "" {
			nodes[ni.ID] = ni
		}
	}
	_ = lister.Stop()
	if octx.Err() != nil {
		return // cut short: keep the last full list
	}
	n.mu.Lock()
	n.nodes = nodes
	n.mu.Unlock()
}

// Nodes lists the live nodes, sorted by id, as last read (about every
// second).
func (n *Node) Nodes() []NodeInfo {
	n.mu.Lock()
	out := make([]NodeInfo, 0, len(n.nodes))
	for _, ni := range n.nodes {
		out = append(out, ni)
	}
	n.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (n *Node) alive(id string) (NodeInfo, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ni, ok := n.nodes[id]
	return ni, ok
}

// lookupNode returns a live node's entry: from the cache, else (a node
// that joined since the last read) from the directory.
func (n *Node) lookupNode(ctx context.Context, id string) (NodeInfo, bool) {
	if ni, ok := n.alive(id); ok {
		return ni, true
	}
	e, err := n.kvN.Get(ctx, nodeKey(id))
	if err != nil {
		return NodeInfo{}, false
	}
	var ni NodeInfo
	if json.Unmarshal(e.Value(), &ni) != nil || ni.ID != id {
		return NodeInfo{}, false
	}
	return ni, true
}

// reconcile removes the directory entries of rooms whose owner is no
// longer alive. Any node may: the delete is conditional on the revision
// it read, so it never removes a room another node took over since.
func (n *Node) reconcile() {
	ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
	defer cancel()
	lister, err := n.kvR.ListKeys(ctx)
	if err != nil {
		return
	}
	defer func() { _ = lister.Stop() }()
	for key := range lister.Keys() {
		e, err := n.kvR.Get(ctx, key)
		if err != nil {
			continue
		}
		var re roomEntry
		if json.Unmarshal(e.Value(), &re) != nil {
			continue
		}
		if re.Owner == n.id {
			continue
		}
		if _, ok := n.lookupNode(ctx, re.Owner); ok {
			continue
		}
		if err := n.kvR.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err == nil {
			name, _ := roomName(key)
			n.log.Info("cluster: removed a room of a node gone", "room", name, "owner", re.Owner)
		}
	}
}

// Rooms lists the cluster's rooms from the directory, sorted by name.
func (n *Node) Rooms(ctx context.Context) ([]RoomInfo, error) {
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	lister, err := n.kvR.ListKeys(octx)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, unavailable("list the rooms", err)
	}
	defer func() { _ = lister.Stop() }()
	var out []RoomInfo
	for key := range lister.Keys() {
		name, ok := roomName(key)
		if !ok {
			continue
		}
		e, err := n.kvR.Get(octx, key)
		if err != nil {
			continue
		}
		var re roomEntry
		if json.Unmarshal(e.Value(), &re) == nil {
			out = append(out, RoomInfo{Name: name, Kind: re.Kind, Owner: re.Owner})
		}
	}
	if octx.Err() != nil {
		return nil, unavailable("list the rooms", octx.Err())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Directory is the rooms.Directory of this node: the hub asks it before it
// creates a named game room, and joins a room another node owns there.
func (n *Node) Directory() rooms.Directory { return directory{n} }

type directory struct{ n *Node }

// Claim makes this node the owner of room, or redirects c to its owner.
func (d directory) Claim(c *netcode.Conn, kind, room string) (*rooms.Redirect, error) {
	n := d.n
	n.mu.Lock()
	_, mine := n.owned[room]
	draining := n.draining
	n.mu.Unlock()
	if mine {
		return nil, nil
	}
	if !n.nc.IsConnected() { // fail at once, not at the timeout
		return nil, unavailable("claim room "+room, nats.ErrConnectionClosed)
	}
	ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
	defer cancel()
	b, _ := json.Marshal(roomEntry{Owner: n.id, Kind: kind})
	// A claim races the owner's release, or the reconciler; and a read
	// right after a failed create may come from a replica that has not
	// applied the winner's yet (KV reads are direct gets): try again a
	// few times, a moment apart.
	for try := 0; try < 10; try++ {
		if try > 0 {
			select {
			case <-ctx.Done():
				return nil, unavailable("claim room "+room, ctx.Err())
			case <-time.After(time.Duration(try) * 10 * time.Millisecond):
			}
		}
		if !draining {
			rev, err := n.kvR.Create(ctx, roomKey(room), b)
			if err == nil {
				n.mu.Lock()
				n.owned[room] = rev
				n.mu.Unlock()
				return nil, nil
			}
			if !errors.Is(err, jetstream.ErrKeyExists) {
				return nil, unavailable("claim room "+room, err)
			}
		}
		e, err := n.kvR.Get(ctx, roomKey(room))
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			if draining {
				return n.placeElsewhere(c, room)
			}
			continue // released meanwhile: claim again
		}
		if err != nil {
			return nil, unavailable("look up room "+room, err)
		}
		var re roomEntry
		if err := json.Unmarshal(e.Value(), &re); err != nil {
			return nil, fmt.Errorf("cluster: room %q has a bad entry: %w", room, err)
		}
		if re.Owner == n.id {
			// Ours still: released a moment ago, its removal on its way.
			// Rewriting it fences that removal off (it names the old
			// revision).
			rev, err := n.kvR.Update(ctx, roomKey(room), b, e.Revision())
			if err != nil {
				continue
			}
			n.mu.Lock()
			n.owned[room] = rev
			n.mu.Unlock()
			return nil, nil
		}
		owner, ok := n.lookupNode(ctx, re.Owner)
		if !ok {
			return nil, fmt.Errorf("%w: %q on %s", ErrNodeGone, room, re.Owner)
		}
		if !n.answers(ctx, re.Owner) {
			// Its entry has not expired yet, but its NATS connection is
			// gone: sending c there would only fail at the dial. The room
			// is made again once the entry expires.
			return nil, fmt.Errorf("%w: %q on %s, which does not answer", ErrNodeGone, room, re.Owner)
		}
		return n.redirect(c, owner)
	}
	return nil, unavailable("claim room "+room, errors.New("the entry keeps changing"))
}

// placeElsewhere sends c to make room on another node: this one is
// draining. It takes the live node with the fewest connections that is not
// draining itself.
func (n *Node) placeElsewhere(c *netcode.Conn, room string) (*rooms.Redirect, error) {
	var best *NodeInfo
	for _, ni := range n.Nodes() {
		if ni.ID != n.id && !ni.Draining && (best == nil || ni.Load < best.Load) {
			best = &ni
		}
	}
	if best == nil {
		return nil, fmt.Errorf("cluster: node %s is draining and no other node takes room %q", n.id, room)
	}
	return n.redirect(c, *best)
}

// redirect is the redirect of c to node: its URLs and a seat token.
func (n *Node) redirect(c *netcode.Conn, node NodeInfo) (*rooms.Redirect, error) {
	seat, err := n.mintSeat(c)
	if err != nil {
		return nil, err
	}
	wire, err := seat.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return &rooms.Redirect{Node: node.ID, Addrs: node.Addrs, Token: wire}, nil
}

// Drain marks this node draining: no new room is placed on it from now on
// (a join of a new room name here is redirected to another node), and its
// directory entry says so at once. Its rooms go on until MoveRooms hands
// them to other nodes, or their players leave.
func (n *Node) Drain() error {
	n.mu.Lock()
	n.draining = true
	n.mu.Unlock()
	return n.refresh()
}

// Draining reports whether Drain was called.
func (n *Node) Draining() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.draining
}

// Release gives up this node's entry of a room it disposed of. The entry
// is removed in the background, only at the revision this node wrote: a
// claim of the same name meanwhile rewrites it and so keeps it.
func (d directory) Release(room string) {
	n := d.n
	n.mu.Lock()
	rev, ok := n.owned[room]
	delete(n.owned, room)
	if ok && n.ctx.Err() == nil {
		n.wg.Add(1) // under mu: Close cancels under it before it waits
	} else {
		ok = false
	}
	n.mu.Unlock()
	if !ok {
		return
	}
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
		defer cancel()
		if err := n.kvR.Delete(ctx, roomKey(room), jetstream.LastRevision(rev)); err != nil {
			n.log.Debug("cluster: releasing a room", "room", room, "err", err)
		}
	}()
}

// Unique returns a cluster-unique name for a room this node creates
// without one (join-any): the hub's local counter is unique only here.
func (d directory) Unique(name string) string { return name + "@" + d.n.id }

func (n *Node) aliveSubject(node string) string {
	return "rw." + n.cfg.Name + ".alive." + nodeKey(node)
}

// answers reports whether node's NATS connection lives: only a request
// with no responders says it does not (a slow answer may be NATS's own).
func (n *Node) answers(ctx context.Context, node string) bool {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	_, err := n.nc.RequestWithContext(ctx, n.aliveSubject(node), nil)
	return !errors.Is(err, nats.ErrNoResponders)
}
