package netcode

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// ID is a connection's random 128-bit identifier. It is unguessable, so the
// private room named by it (ID.String) can only be addressed by code that was
// told the id.
type ID [16]byte

func newID() ID {
	var id ID
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails
	return id
}

// String is the id as 32 lowercase hex digits: the name of the connection's
// private room.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID parses the 32-hex-digit form String returns.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 32 {
		return id, fmt.Errorf("netcode: bad id %q: want 32 hex digits", s)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("netcode: bad id %q: %w", s, err)
	}
	return id, nil
}
