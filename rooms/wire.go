package rooms

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/netcode/token"
)

// The "$join" request body is
//
//	kindLen u8 | kind | name (the rest; empty: join or create any room)
//
// and its reply is
//
//	nameLen u8 | name | tickRate u8 | maxMembers u16 | members u16
//
// A refusal is a REPLY_ERROR whose text is the reason. In a cluster, a room
// another node owns is answered with a redirect, told apart by its empty
// name:
//
//	0 u8 | count u8 | count × (urlLen u8 | url) | seat token (the rest)
//
// "$leave" has an empty body and an empty reply.

// Redirect says where a room of a cluster lives: the URLs of its node's
// transports, best first, and a connect token (its wire form, as
// token.ConnectToken.MarshalBinary makes it) for a new connection there.
// Node, the owner's id, is known on the server only: the wire form has
// the URLs.
type Redirect struct {
	Node  string
	Addrs []string
	Token []byte
}

// RedirectError is Join's answer for a room another node of the cluster
// owns: the client joins it there (JoinFollow does).
type RedirectError struct {
	Room string
	Redirect
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("rooms: room %q is on another node (%s)", e.Room, strings.Join(e.Addrs, ","))
}

func appendRedirect(b []byte, r *Redirect) []byte {
	b = append(b, 0)
	n := min(len(r.Addrs), 255)
	b = append(b, byte(n))
	for _, a := range r.Addrs[:n] {
		a = a[:min(len(a), 255)]
		b = append(b, byte(len(a)))
		b = append(b, a...)
	}
	return append(b, r.Token...)
}

func parseRedirect(rep []byte) (Redirect, error) {
	var r Redirect
	if len(rep) < 2 {
		return r, errors.New("rooms: malformed redirect")
	}
	n, rest := int(rep[1]), rep[2:]
	for range n {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return r, errors.New("rooms: malformed redirect")
		}
		r.Addrs = append(r.Addrs, string(rest[1:1+int(rest[0])]))
		rest = rest[1+int(rest[0]):]
	}
	r.Token = append([]byte(nil), rest...)
	return r, nil
}

// JoinResult is what the server answered a Join with.
type JoinResult struct {
	Room       string
	TickRate   int
	MaxMembers int
	Members    int
}

var errBadJoin = errors.New("rooms: malformed $join request")

func (h *Hub) handleJoin(c *netcode.Conn, req []byte) ([]byte, error) {
	if len(req) < 1 || len(req) < 1+int(req[0]) {
		return nil, errBadJoin
	}
	kindName := string(req[1 : 1+int(req[0])])
	name := string(req[1+int(req[0]):])
	g, err := h.JoinGame(c, kindName, name)
	if re := (*RedirectError)(nil); errors.As(err, &re) {
		return appendRedirect(nil, &re.Redirect), nil
	}
	if err != nil {
		return nil, err
	}
	info := g.Info()
	b := make([]byte, 0, 1+len(g.name)+5)
	b = append(b, byte(len(g.name)))
	b = append(b, g.name...)
	b = append(b, byte(info.TickRate))
	b = binary.BigEndian.AppendUint16(b, uint16(info.MaxMembers))
	return binary.BigEndian.AppendUint16(b, uint16(info.Members)), nil
}

func (h *Hub) handleLeave(c *netcode.Conn, _ []byte) ([]byte, error) {
	if !h.leaveGame(c) {
		return nil, ErrNotInGame
	}
	return nil, nil
}

// Join asks the server to put the client in a game room of kind: the room
// called name, or with an empty name any room of that kind with a free
// place. A refusal (room full, unknown kind, the game's own reason) comes
// back as a *netcode.RemoteError.
func Join(ctx context.Context, c *netcode.Client, kind, name string) (JoinResult, error) {
	if len(kind) == 0 || len(kind) > 255 || len(name) > 255 {
		return JoinResult{}, fmt.Errorf("rooms: kind and room names must be 1..255 and 0..255 bytes")
	}
	req := make([]byte, 0, 1+len(kind)+len(name))
	req = append(req, byte(len(kind)))
	req = append(req, kind...)
	req = append(req, name...)
	rep, err := c.Request(ctx, EventJoin, req)
	if err != nil {
		return JoinResult{}, err
	}
	if len(rep) > 0 && rep[0] == 0 {
		r, err := parseRedirect(rep)
		if err != nil {
			return JoinResult{}, err
		}
		return JoinResult{}, &RedirectError{Room: name, Redirect: r}
	}
	if len(rep) < 1 || len(rep) != 1+int(rep[0])+5 {
		return JoinResult{}, fmt.Errorf("rooms: malformed $join reply of %d bytes", len(rep))
	}
	n := int(rep[0])
	return JoinResult{
		Room:       string(rep[1 : 1+n]),
		TickRate:   int(rep[1+n]),
		MaxMembers: int(binary.BigEndian.Uint16(rep[2+n:])),
		Members:    int(binary.BigEndian.Uint16(rep[4+n:])),
	}, nil
}

// JoinFollow joins like Join, and follows a redirect to the node of a
// cluster that owns the room: it connects a new client there with cfg and
// the redirect's seat token (setup, if set, registers its handlers
// first), joins the room there and closes c. It returns the client that
// is in the room: c, or the new one.
func JoinFollow(ctx context.Context, c *netcode.Client, cfg netcode.ClientConfig, setup func(*netcode.Client), kind, name string) (*netcode.Client, JoinResult, error) {
	for hop := 0; ; hop++ {
		jr, err := Join(ctx, c, kind, name)
		re := (*RedirectError)(nil)
		if !errors.As(err, &re) {
			return c, jr, err
		}
		if hop == 2 {
			return c, jr, fmt.Errorf("rooms: redirected again and again: %w", err)
		}
		tok := new(token.ConnectToken)
		if err := tok.UnmarshalBinary(re.Token); err != nil {
			return c, JoinResult{}, fmt.Errorf("rooms: the redirect's seat token: %w", err)
		}
		cfg.Token = tok
		next := netcode.NewClient(cfg)
		if setup != nil {
			setup(next)
		}
		if err := next.Connect(ctx, strings.Join(re.Addrs, ",")); err != nil {
			return c, JoinResult{}, fmt.Errorf("rooms: following the redirect to %s: %w", strings.Join(re.Addrs, ","), err)
		}
		_ = c.Close()
		c = next
	}
}

// Leave asks the server to take the client out of its game room.
func Leave(ctx context.Context, c *netcode.Client) error {
	_, err := c.Request(ctx, EventLeave, nil)
	return err
}
