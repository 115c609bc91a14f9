package unreliable

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A RELIABLE body carries copies of consecutive reliable frames:
//
//	first u32 | count u8 | count whole frames (type u8 | length u24 | body)
//
// Frame i of the body is the reliable stream's frame number first+i: the
// frames on a connection's reliable stream are numbered by their place on
// it, in each direction, the handshake frame (HELLO or WELCOME) being 0.
// This package only checks the framing; the frames' bodies are the reliable
// package's to decode.

// ReliableHeaderLen is the size of a RELIABLE body's header.
const ReliableHeaderLen = 4 + 1

// frameHeaderLen is the reliable frame header: type u8 | length u24.
const frameHeaderLen = 4

// ErrBadCopies reports a RELIABLE body whose framing does not add up.
var ErrBadCopies = errors.New("unreliable: bad RELIABLE body")

// AppendReliableHeader appends a RELIABLE body's header; the count frames
// must follow it, whole.
func AppendReliableHeader(b []byte, first uint32, count uint8) []byte {
	return append(binary.BigEndian.AppendUint32(b, first), count)
}

// ReliableFrames checks a RELIABLE body and then calls fn for each frame
// it carries, with the frame's stream number and its bytes (header
// included), which alias body. A frame whose length field passes maxBody,
// runs past the end, a count of 0 or bytes after the last frame make the
// whole body bad: fn is then never called.
func ReliableFrames(body []byte, maxBody int, fn func(num uint32, frame []byte)) error {
	if len(body) < ReliableHeaderLen {
		return fmt.Errorf("%w: RELIABLE body of %d bytes", ErrShort, len(body))
	}
	first, count := binary.BigEndian.Uint32(body), int(body[4])
	if count == 0 {
		return fmt.Errorf("%w: no frames", ErrBadCopies)
	}
	rest := body[ReliableHeaderLen:]
	for i := 0; i < count; i++ {
		n, err := frameLen(rest, maxBody)
		if err != nil {
			return fmt.Errorf("%w: frame %d of %d: %w", ErrBadCopies, i+1, count, err)
		}
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d bytes after the last frame", ErrBadCopies, len(rest))
	}
	rest = body[ReliableHeaderLen:]
	for i := 0; i < count; i++ {
		n, _ := frameLen(rest, maxBody)
		fn(first+uint32(i), rest[:n:n])
		rest = rest[n:]
	}
	return nil
}

// frameLen is the length, header included, of the frame b starts with.
func frameLen(b []byte, maxBody int) (int, error) {
	if len(b) < frameHeaderLen {
		return 0, errors.New("header cut short")
	}
	n := int(b[1])<<16 | int(b[2])<<8 | int(b[3])
	if n > maxBody {
		return 0, fmt.Errorf("body of %d bytes > %d", n, maxBody)
	}
	if len(b) < frameHeaderLen+n {
		return 0, fmt.Errorf("body of %d bytes runs past the end", n)
	}
	return frameHeaderLen + n, nil
}
