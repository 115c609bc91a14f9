package unreliable

import (
	"encoding/binary"
	"fmt"
)

// The bodies of the datagram kinds after the header. Snapshots are sent as
// an envelope, fragmented (fragment.go); the other kinds fit one datagram.

// EnvelopeLen is the size of a snapshot envelope's header.
const EnvelopeLen = 8 + 1

// Envelope is what a reassembled snapshot starts with.
type Envelope struct {
	// Time is the server's clock at the tick, in Unix nanoseconds: clients
	// interpolate on it.
	Time int64
	// Base is 0 for a whole snapshot, or n for a delta against the tick
	// n ticks before this one, of the same epoch (SnapshotHeader.Epoch).
	Base uint8
}

// AppendEnvelope appends an envelope header; the payload follows it.
func AppendEnvelope(b []byte, e Envelope) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time))
	return append(b, e.Base)
}

// ParseEnvelope decodes an envelope and returns the payload after it.
func ParseEnvelope(d []byte) (Envelope, []byte, error) {
	if len(d) < EnvelopeLen {
		return Envelope{}, nil, fmt.Errorf("%w: snapshot envelope of %d bytes", ErrShort, len(d))
	}
	e := Envelope{Time: int64(binary.BigEndian.Uint64(d)), Base: d[8]}
	return e, d[EnvelopeLen:], nil
}

// SnapshotAck names the newest snapshot a client holds whole: the baseline
// the server may encode deltas against. Epoch 0 means none.
type SnapshotAck struct {
	Epoch uint8
	Tick  uint32
}

// AckLen is the size of an ACK body and of the INPUT body's prefix.
const AckLen = 5

// AppendAck appends a snapshot acknowledgement: epoch u8 | tick u32.
func AppendAck(b []byte, a SnapshotAck) []byte {
	return binary.BigEndian.AppendUint32(append(b, a.Epoch), a.Tick)
}

// ParseAck decodes a snapshot acknowledgement and returns what follows it.
func ParseAck(d []byte) (SnapshotAck, []byte, error) {
	if len(d) < AckLen {
		return SnapshotAck{}, nil, fmt.Errorf("%w: ack of %d bytes", ErrShort, len(d))
	}
	return SnapshotAck{Epoch: d[0], Tick: binary.BigEndian.Uint32(d[1:])}, d[AckLen:], nil
}

// Limits of INPUT bodies.
const (
	// MaxInput is the largest single input.
	MaxInput = 128
	// Redundancy is the most inputs one INPUT datagram carries: the client
	// sends each input again in every datagram until the server
	// acknowledges one that carried it, so a lost datagram costs nothing.
	Redundancy = 8
)

// Input is one client input with its number, which counts the client's
// inputs from 1.
type Input struct {
	Seq  uint32
	Data []byte
}

// AppendInputs appends an INPUT body: the snapshot ack, then count u8 and
// count × (seq u32 | len u8 | data), oldest first.
func AppendInputs(b []byte, a SnapshotAck, inputs []Input) ([]byte, error) {
	if len(inputs) == 0 || len(inputs) > Redundancy {
		return b, fmt.Errorf("unreliable: %d inputs in one datagram, want 1..%d", len(inputs), Redundancy)
	}
	b = AppendAck(b, a)
	b = append(b, byte(len(inputs)))
	for _, in := range inputs {
		if len(in.Data) > MaxInput {
			return b, fmt.Errorf("%w: input of %d bytes > %d", ErrTooLarge, len(in.Data), MaxInput)
		}
		b = binary.BigEndian.AppendUint32(b, in.Seq)
		b = append(b, byte(len(in.Data)))
		b = append(b, in.Data...)
	}
	return b, nil
}

// ParseInputs decodes an INPUT body, calling each for every input, oldest
// first. Input data aliases body. The whole body is checked before each is
// called, so a malformed datagram delivers nothing.
func ParseInputs(body []byte, each func(Input)) (SnapshotAck, error) {
	a, rest, err := ParseAck(body)
	if err != nil {
		return a, err
	}
	if len(rest) < 1 || rest[0] == 0 || int(rest[0]) > Redundancy {
		return a, fmt.Errorf("%w: input count", ErrShort)
	}
	n := int(rest[0])
	check := rest[1:]
	for i := 0; i < n; i++ {
		if len(check) < 5 || len(check) < 5+int(check[4]) {
			return a, fmt.Errorf("%w: input %d of %d cut short", ErrShort, i, n)
		}
		if check[4] > MaxInput {
			return a, fmt.Errorf("%w: input of %d bytes > %d", ErrTooLarge, check[4], MaxInput)
		}
		check = check[5+int(check[4]):]
	}
	if len(check) != 0 {
		return a, fmt.Errorf("%w: %d bytes after the inputs", ErrBadFragment, len(check))
	}
	rest = rest[1:]
	for i := 0; i < n; i++ {
		l := int(rest[4])
		each(Input{Seq: binary.BigEndian.Uint32(rest), Data: rest[5 : 5+l]})
		rest = rest[5+l:]
	}
	return a, nil
}

// EventSequenced marks an unreliable event that is dropped when older than
// the newest of the same name already received.
const EventSequenced = 0x01

// Event is an unreliable event.
type Event struct {
	// Sequenced events carry Seq, counted per name by the sender.
	Sequenced bool
	Seq       uint16
	Name      []byte
	Payload   []byte
}

// EventOverhead is an EVENT body's size without name and payload.
const EventOverhead = 1 + 2 + 1

// AppendEvent appends an EVENT body: flags u8 | seq u16 | nameLen u8 | name
// | payload.
func AppendEvent(b []byte, sequenced bool, seq uint16, name string, payload []byte) ([]byte, error) {
	if len(name) == 0 || len(name) > 255 {
		return b, fmt.Errorf("unreliable: event name of %d bytes not in 1..255", len(name))
	}
	var flags byte
	if sequenced {
		flags = EventSequenced
	}
	b = append(b, flags, byte(seq>>8), byte(seq), byte(len(name)))
	b = append(b, name...)
	return append(b, payload...), nil
}

// ParseEvent decodes an EVENT body; the slices alias body.
func ParseEvent(body []byte) (Event, error) {
	if len(body) < EventOverhead {
		return Event{}, fmt.Errorf("%w: event of %d bytes", ErrShort, len(body))
	}
	n := int(body[3])
	if n == 0 || len(body) < EventOverhead+n {
		return Event{}, fmt.Errorf("%w: event name of %d bytes", ErrShort, n)
	}
	return Event{
		Sequenced: body[0]&EventSequenced != 0,
		Seq:       binary.BigEndian.Uint16(body[1:]),
		Name:      body[EventOverhead : EventOverhead+n],
		Payload:   body[EventOverhead+n:],
	}, nil
}
