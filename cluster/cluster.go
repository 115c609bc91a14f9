// Package cluster spreads a game over many Roomwire nodes on NATS. A room
// lives on one node, and clients play with that node directly; NATS carries
// only the directory (which node owns which room, which nodes are alive),
// broadcasts from one node to the members another holds, and control. Tick
// traffic never goes through it.
//
// The directory is two JetStream key-value buckets: "rooms" maps a room to
// its owner, created only with Create (so concurrent join-or-creates of one
// name make one room) and changed only by its owner; "nodes" holds each
// node's addresses and load under a per-key TTL that the node refreshes. A
// node that dies stops refreshing; its entry expires and the other nodes
// remove its rooms. The directory stays off every per-tick and per-event
// path: a KV leader's election stalls writes for seconds.
//
// A Node is owned by the program that starts it: Close stops its goroutines
// and its embedded NATS server, if any.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/rooms"
)

// Defaults of Config.
const (
	// DefaultNodeTTL is how long a node's directory entry lives without a
	// refresh: longer than a KV leader's election (4 to 8 s measured), so
	// that a healthy node never expires during one.
	DefaultNodeTTL = 15 * time.Second
	// refreshEvery is how often a node refreshes its entry and reads the
	// live nodes; every reconcileEvery refreshes it also removes the rooms
	// of nodes gone, which reads the whole rooms directory.
	refreshEvery   = time.Second
	reconcileEvery = 3
	// opTimeout bounds one directory operation.
	opTimeout = 5 * time.Second
	// seatLife is how long a redirect's connect token is valid.
	seatLife = 30 * time.Second
)

// The buckets.
const (
	roomsBucket = "rooms"
	nodesBucket = "nodes"
)

// Errors of the cluster's operations, each wrapped with detail.
var (
	// ErrUnavailable is a directory operation that failed because NATS or
	// its JetStream did not answer: the cluster is (for now) unreachable.
	// Local play goes on; cluster operations recover with it.
	ErrUnavailable = errors.New("cluster: directory unavailable")
	// ErrNodeGone is a room whose owner node is no longer alive.
	ErrNodeGone = errors.New("cluster: the room's node is gone")
)

// Config configures a Node.
type Config struct {
	// Name is the cluster's name: its NATS cluster name and the prefix of
	// its subjects. Required.
	Name string
	// NodeID names this node; it must be unique in the cluster. Empty
	// means the host name and a random suffix.
	NodeID string
	// Addrs are the URLs clients dial for this node, as netcode.Dial takes
	// them (quic://host:port, kcp://…, ws://…/ws), best first. Required:
	// redirects send clients there.
	Addrs []string

	// NATS is the URL of an external NATS cluster (with JetStream), such as
	// nats://host:4222. Empty means an embedded server with the fields
	// below.
	NATS string
	// Listen is the embedded server's client address (host:port), for
	// nodes that use it as their NATS. Empty, or port 0, means a free
	// port (on 127.0.0.1 when empty).
	Listen string
	// ClusterListen is the embedded server's route address (host:port),
	// where its peers connect. Empty means no cluster: a single node.
	ClusterListen string
	// Routes are the peers' route URLs (nats://host:port).
	Routes []string
	// StoreDir is where the embedded server keeps JetStream's data. Empty
	// means a temporary directory, removed at Close.
	StoreDir string
	// Replicas is the directory buckets' replication. Zero means 3 in a
	// cluster of three or more embedded servers (one plus its routes), else
	// 1; with an external NATS, 1 unless set.
	Replicas int

	// NodeTTL is how long this node's directory entry lives without a
	// refresh. Zero means DefaultNodeTTL.
	NodeTTL time.Duration
	// Tokens is the connect token key and protocol id every node of the
	// cluster shares: a node mints the seat token of a redirect with it.
	// Required for redirects.
	Tokens *netcode.Tokens
	// Logger logs the cluster's events. Nil discards them.
	Logger *slog.Logger
}

// Node is this process's membership of a cluster.
type Node struct {
	cfg  Config
	id   string
	log  *slog.Logger
	ns   *natsserver.Server // nil with an external NATS
	tmp  string             // a temporary StoreDir to remove
	nc   *nats.Conn
	js   jetstream.JetStream
	kvR  jetstream.KeyValue
	kvN  jetstream.KeyValue
	load func() int

	refreshMu sync.Mutex // one refresh of the entry at a time (the loop's, Drain's)

	// srv and hub are the node's game server, once Serve was called: the
	// rooms it hands off and takes.
	srv *netcode.Server
	hub *rooms.Hub

	mu       sync.Mutex
	nodes    map[string]NodeInfo // the live nodes, as last read
	owned    map[string]uint64   // rooms this node owns: their entries' revisions
	nodeRev  uint64
	draining bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// NodeInfo is one node's directory entry.
type NodeInfo struct {
	ID       string   `json:"id"`
	Addrs    []string `json:"addrs"`
	Load     int      `json:"load"`
	Draining bool     `json:"draining"`
}

// Start joins the cluster: it starts the embedded NATS server (unless
// cfg.NATS names one), connects, makes the directory buckets and registers
// this node. load, if set, reports the node's load (its connections) for
// its entry.
func Start(ctx context.Context, cfg Config, load func() int) (*Node, error) {
	if cfg.Name == "" {
		return nil, errors.New("cluster: Config.Name is required")
	}
	if len(cfg.Addrs) == 0 {
		return nil, errors.New("cluster: Config.Addrs is required: the URLs clients dial for this node")
	}
	if cfg.NodeTTL <= 0 {
		cfg.NodeTTL = DefaultNodeTTL
	}
	if cfg.NodeID == "" {
		h, _ := os.Hostname()
		cfg.NodeID = fmt.Sprintf("%s-%s", h, netcode.ID(newTag()).String()[:8])
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, id: cfg.NodeID, log: cfg.Logger.With("node", cfg.NodeID), load: load,
		nodes: make(map[string]NodeInfo), owned: make(map[string]uint64)}
	if n.load == nil {
		n.load = func() int { return 0 }
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := n.connect(ctx); err != nil {
		n.shutdown()
		return nil, err
	}
	if err := n.register(ctx); err != nil {
		n.shutdown()
		return nil, err
	}
	// A node answers on its own subject while its NATS connection lives:
	// a request there with no responders means it is gone, seconds before
	// its directory entry expires.
	if _, err := n.nc.Subscribe(n.aliveSubject(n.id), func(m *nats.Msg) { _ = m.Respond(nil) }); err != nil {
		n.shutdown()
		return nil, unavailable("subscribe", err)
	}
	n.wg.Add(1)
	go n.loop()
	return n, nil
}

// ID is this node's id.
func (n *Node) ID() string { return n.id }

// NATSURL is the client URL of this node's NATS: its embedded server's, or
// the external one.
func (n *Node) NATSURL() string {
	if n.ns != nil {
		return n.ns.ClientURL()
	}
	return n.cfg.NATS
}

// connect starts the embedded server if there is to be one, connects to
// NATS and opens the buckets.
func (n *Node) connect(ctx context.Context) error {
	url := n.cfg.NATS
	replicas := n.cfg.Replicas
	if url == "" {
		if err := n.embed(); err != nil {
			return err
		}
		url = n.ns.ClientURL()
		if replicas == 0 {
			replicas = 1
			if 1+len(n.cfg.Routes) >= 3 && n.cfg.ClusterListen != "" {
				replicas = 3
			}
		}
	}
	if replicas == 0 {
		replicas = 1
	}
	opts := []nats.Option{nats.Name("roomwire " + n.id), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}
	if n.ns != nil {
		opts = append(opts, nats.InProcessServer(n.ns))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("%w: connect %s: %w", ErrUnavailable, url, err)
	}
	n.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	n.js = js
	// The buckets: made by whichever node comes first, with retries while
	// the JetStream cluster elects its meta leader.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err = n.buckets(ctx, replicas)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		n.log.Debug("directory buckets not ready yet", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("%w: the directory buckets: %w", ErrUnavailable, err)
	}
	return nil
}

func (n *Node) buckets(ctx context.Context, replicas int) error {
	// Short tries: until the JetStream cluster has elected its meta leader
	// a request goes unanswered, and waiting longer for it gains nothing.
	octx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	r, err := n.js.CreateOrUpdateKeyValue(octx, jetstream.KeyValueConfig{Bucket: roomsBucket, Replicas: replicas, History: 1})
	if err != nil {
		return err
	}
	// Per-key TTLs need limit markers, kept at least a minute.
	nb, err := n.js.CreateOrUpdateKeyValue(octx, jetstream.KeyValueConfig{Bucket: nodesBucket, Replicas: replicas, History: 1, LimitMarkerTTL: time.Minute})
	if err != nil {
		return err
	}
	n.kvR, n.kvN = r, nb
	return nil
}

// embed starts the embedded NATS server with JetStream.
func (n *Node) embed() error {
	host, port, err := splitHostPort(n.cfg.Listen, "127.0.0.1", -1)
	if err != nil {
		return fmt.Errorf("cluster: -nats-listen: %w", err)
	}
	dir := n.cfg.StoreDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "roomwire-nats-"); err != nil {
			return err
		}
		n.tmp = dir
	}
	opts := &natsserver.Options{
		ServerName: n.id,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoLog:      true,
		NoSigs:     true,
		// JetStream's limits: the directory is small.
		JetStreamMaxMemory: 64 << 20,
		JetStreamMaxStore:  256 << 20,
		// A room's handoff is one message: its game state and its members'
		// sessions, each with its frames not yet acknowledged.
		MaxPayload: maxHandoff,
	}
	if n.cfg.ClusterListen != "" {
		ch, cp, err := splitHostPort(n.cfg.ClusterListen, "127.0.0.1", 0)
		if err != nil {
			return fmt.Errorf("cluster: -nats-cluster: %w", err)
		}
		opts.Cluster = natsserver.ClusterOpts{Name: n.cfg.Name, Host: ch, Port: cp,
			// A hung peer is dropped in seconds, not the default's minute.
			PingInterval: time.Second, MaxPingsOut: 2}
		opts.Routes = natsserver.RoutesFromStr(strings.Join(n.cfg.Routes, ","))
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return fmt.Errorf("cluster: embedded NATS: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return fmt.Errorf("cluster: embedded NATS not ready on %s:%d", host, port)
	}
	n.ns = ns
	return nil
}

// splitHostPort parses host:port, with defaults for an empty address.
func splitHostPort(addr, defHost string, defPort int) (string, int, error) {
	if addr == "" {
		return defHost, defPort, nil
	}
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	if h == "" {
		h = "0.0.0.0"
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	if port == 0 {
		port = -1 // any free port: nats-server takes 0 for its default
	}
	return h, port, nil
}

// Close leaves the cluster: this node's entry and rooms are removed from
// the directory (so its rooms are not taken for alive until they expire),
// and its goroutines, connection and embedded server end. It is idempotent.
func (n *Node) Close() error {
	n.once.Do(func() {
		n.mu.Lock()
		n.cancel()
		n.mu.Unlock()
		n.wg.Wait()
		if n.kvN != nil {
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			n.mu.Lock()
			owned := n.owned
			n.owned = map[string]uint64{}
			n.mu.Unlock()
			for room, rev := range owned {
				_ = n.kvR.Delete(ctx, roomKey(room), jetstream.LastRevision(rev))
			}
			_ = n.kvN.Delete(ctx, nodeKey(n.id))
			cancel()
		}
		n.shutdown()
	})
	return nil
}

// Kill ends this node as a crash would: no directory entry is removed,
// and its rooms stay until the other nodes find it gone. For tests.
func (n *Node) Kill() {
	n.once.Do(func() {
		n.mu.Lock()
		n.cancel()
		n.mu.Unlock()
		n.wg.Wait()
		n.shutdown()
	})
}

func (n *Node) shutdown() {
	if n.nc != nil {
		n.nc.Close()
	}
	if n.ns != nil {
		n.ns.Shutdown()
		n.ns.WaitForShutdown()
	}
	if n.tmp != "" {
		_ = os.RemoveAll(n.tmp)
	}
}

// mintSeat mints the connect token a redirected client presents to the
// room's node: the same client id and user data as the token it connected
// with, short-lived.
func (n *Node) mintSeat(c *netcode.Conn) (*token.ConnectToken, error) {
	if n.cfg.Tokens == nil {
		return nil, errors.New("cluster: no Config.Tokens to mint a seat token with")
	}
	p := token.Params{ProtocolID: n.cfg.Tokens.ProtocolID, TTL: seatLife}
	if cl := c.Identity().Token; cl != nil {
		p.ClientID, p.UserData, p.Timeout = cl.ClientID, cl.UserData, cl.Timeout
	}
	return token.Issue(n.cfg.Tokens.Key, p, time.Now())
}

// unavailable wraps a NATS error as ErrUnavailable.
func unavailable(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
}
