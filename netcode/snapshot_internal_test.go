package netcode

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/unreliable"
)

// A delta handed to one member stays as it was when the cache, full of
// other baselines, replaces its entry for another member: members copy
// their deltas outside the cache's lock.
func TestDeltaCacheEvictionKeepsHandedOutDeltas(t *testing.T) {
	codec := unreliable.XORCodec{}
	s := NewSnapshot(100)
	s.Data = append(s.Data, []byte("the state at tick one hundred, with a few changes")...)
	var bases []*Snapshot
	for i := range deltaCache + 1 {
		b := NewSnapshot(uint32(92 + i))
		b.Data = append(b.Data, []byte("the state at tick ninety-something, older")...)
		b.Data[0] = byte(i)
		bases = append(bases, b)
	}
	first := s.deltaAgainst(bases[0], codec)
	want := append([]byte(nil), first...)
	for _, b := range bases[1:] { // the last, tick 96, evicts slot 96 % 4 = 0: bases[0]'s
		s.deltaAgainst(b, codec)
	}
	require.Equal(t, want, first, "the delta handed out earlier is unchanged")
	got, err := codec.Decode(nil, bases[0].Data, first)
	require.NoError(t, err)
	require.Equal(t, s.Data, got)
}
