package arena

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
)

// A player away (its network dropped, its session waiting to be resumed)
// stands still, whatever its last input was and whatever late input comes,
// and moves again once back.
func TestAwayFreezes(t *testing.T) {
	g := New()
	c := &netcode.Conn{}
	require.NoError(t, g.Join(c))
	pos := func() Player {
		ps, err := Decode(nil, g.Tick(1, 100*time.Millisecond, nil))
		require.NoError(t, err)
		require.Len(t, ps, 1)
		return ps[0]
	}
	g.Input(c, EncodeInput(nil, 127, 0))
	start := pos()
	moved := pos()
	require.Greater(t, moved.X, start.X, "moving on its input")

	g.Away(c)
	frozen := pos()
	g.Input(c, EncodeInput(nil, 127, 127)) // a late input, from before the drop
	require.Equal(t, frozen, pos(), "an away player stands still")

	g.Back(c)
	require.Equal(t, frozen, pos(), "back, but no new input yet")
	g.Input(c, EncodeInput(nil, 0, 127))
	require.Greater(t, pos().Y, frozen.Y, "moving again")
}

// An arena's state comes back whole in a new arena, its player played by
// the same connection; states that do not add up are refused.
func TestStateMovesWhole(t *testing.T) {
	c := &netcode.Conn{}
	g := New()
	require.NoError(t, g.Join(c))
	g.Input(c, EncodeInput(nil, 100, -50))
	snap := g.Tick(1, time.Second/30, nil)
	state, err := g.MarshalState(nil)
	require.NoError(t, err)

	h := New()
	require.NoError(t, h.RestoreState(state, []*netcode.Conn{c}))
	again, err := h.MarshalState(nil)
	require.NoError(t, err)
	require.Equal(t, state, again)
	require.Equal(t, g.Tick(2, time.Second/30, nil), h.Tick(2, time.Second/30, nil), "it plays on the same")
	require.NotEqual(t, snap, h.Tick(3, time.Second/30, nil), "the player still moves on its input")

	for _, bad := range [][]byte{nil, state[:5], state[:len(state)-1], append(append([]byte(nil), state...), 0)} {
		require.Error(t, New().RestoreState(bad, []*netcode.Conn{c}), "%d bytes", len(bad))
	}
}
