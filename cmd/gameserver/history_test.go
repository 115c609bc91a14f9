package main

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/rooms/arena"
)

// The server echoes each history event back to its sender, in order, on
// its own budget: a burst of them beyond chat's whole budget all come back.
func TestHistoryEcho(t *testing.T) {
	srv, _, _ := testServer(t)
	cl, err := dialDev(t, "quic://"+srv.Addrs()[0].String(), token.DevKey)
	require.NoError(t, err)
	defer cl.Close()
	echoes := make(chan uint64, 64)
	cl.On(arena.HistoryEvent, func(p []byte) {
		if len(p) == 8 {
			echoes <- binary.BigEndian.Uint64(p)
		}
	})
	const n = 60 // three times chat's burst
	for i := uint64(1); i <= n; i++ {
		require.NoError(t, cl.Emit(arena.HistoryEvent, binary.BigEndian.AppendUint64(nil, i)))
	}
	for i := uint64(1); i <= n; i++ {
		select {
		case got := <-echoes:
			require.Equal(t, i, got)
		case <-time.After(5 * time.Second):
			t.Fatalf("echo %d never came", i)
		}
	}
}
