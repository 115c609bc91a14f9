package rooms

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/roomwire/roomwire/netcode"
)

// The "$join" request body is
//
//	kindLen u8 | kind | name (the rest; empty: join or create any room)
//
// and its reply is
//
//	nameLen u8 | name | tickRate u8 | maxMembers u16 | members u16
//
// A refusal is a REPLY_ERROR whose text is the reason. "$leave" has an empty
// body and an empty reply.

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

// Leave asks the server to take the client out of its game room.
func Leave(ctx context.Context, c *netcode.Client) error {
	_, err := c.Request(ctx, EventLeave, nil)
	return err
}
