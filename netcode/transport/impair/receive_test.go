package impair_test

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode/transport/impair"
)

// newDuplex wraps a fresh loopback socket with NewDuplex, closed when the
// test ends, and returns a plain socket that sends to it.
func newDuplex(t *testing.T, send, receive impair.Config) (*impair.Conn, *net.UDPConn) {
	t.Helper()
	c := impair.NewDuplex(listen(t), send, receive)
	t.Cleanup(func() { _ = c.Close() })
	return c, listen(t)
}

// drain reads c until a read waits 100 ms for nothing, and returns the
// sequence numbers read.
func drain(t *testing.T, c *impair.Conn) []uint64 {
	t.Helper()
	var got []uint64
	buf := make([]byte, 2048)
	for range 100000 {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
		n, _, err := c.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return got
		}
		require.NoError(t, err)
		got = append(got, decode(buf[:n]).seq)
	}
	t.Fatal("drain: no end")
	return nil
}

// What a duplex Conn reads is lost at the receive Loss, in the read call
// (no queue), and counted; what it sends is untouched by it.
func TestDuplexReceiveLoss(t *testing.T) {
	c, peer := newDuplex(t, impair.Config{}, impair.Config{Loss: 0.3, Seed: 7})
	buf := make([]byte, 64)
	const bursts, per = 20, 100 // bursts the socket buffer holds
	total := 0
	for b := range bursts {
		for i := range per {
			_, err := peer.WriteTo(encode(buf, uint64(b*per+i), 0), c.LocalAddr())
			require.NoError(t, err)
		}
		total += len(drain(t, c))
	}
	require.InDelta(t, 0.7*bursts*per, float64(total), 0.05*bursts*per, "about 70 %% arrive")
	st := c.ReceiveStats()
	require.EqualValues(t, bursts*per, st.Sent, "every packet arrived at the socket")
	require.EqualValues(t, total, st.Delivered)
	require.Equal(t, st.Sent, st.Dropped+st.Delivered)

	// The send side has no impairment: all of these reach the peer.
	for i := range 50 {
		_, err := c.WriteTo(encode(buf, uint64(i), 0), peer.LocalAddr())
		require.NoError(t, err)
	}
	require.NoError(t, peer.SetReadDeadline(time.Now().Add(patience)))
	for range 50 {
		_, _, err := peer.ReadFrom(buf)
		require.NoError(t, err)
	}
	require.Zero(t, c.Stats().Dropped)
}

// A receive Delay holds every packet back that long, in order; Duplicate
// hands each to two reads.
func TestDuplexReceiveDelayAndDuplicate(t *testing.T) {
	c, peer := newDuplex(t, impair.Config{}, impair.Config{Delay: 60 * time.Millisecond})
	buf := make([]byte, 64)
	start := time.Now()
	for i := range 20 {
		_, err := peer.WriteTo(encode(buf, uint64(i), 0), c.LocalAddr())
		require.NoError(t, err)
	}
	require.NoError(t, c.SetReadDeadline(time.Now().Add(patience)))
	n, _, err := c.ReadFrom(buf)
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), 60*time.Millisecond, "held back for the delay")
	got := append([]uint64{decode(buf[:n]).seq}, drain(t, c)...)
	for i, s := range got {
		require.EqualValues(t, i, s, "in order")
	}
	require.Len(t, got, 20)

	d, peer2 := newDuplex(t, impair.Config{}, impair.Config{Duplicate: 1, Seed: 1})
	for i := range 10 {
		_, err := peer2.WriteTo(encode(buf, uint64(i), 0), d.LocalAddr())
		require.NoError(t, err)
	}
	require.Len(t, drain(t, d), 20, "every packet twice")
	require.EqualValues(t, 10, d.ReceiveStats().Duplicated)
}

// Reads waiting on the receive queue keep net.UDPConn's deadline rules: a
// passed deadline fails a read at once with a timeout, one set while a read
// waits ends the wait, a cleared one lets reads wait again; Close ends a
// waiting read with net.ErrClosed.
func TestDuplexReadDeadlineAndClose(t *testing.T) {
	c, peer := newDuplex(t, impair.Config{}, impair.Config{Delay: 10 * time.Millisecond})
	buf := make([]byte, 64)

	require.NoError(t, c.SetReadDeadline(time.Now().Add(-time.Second)))
	_, _, err := c.ReadFrom(buf)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout())

	require.NoError(t, c.SetReadDeadline(time.Time{}))
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.ReadFrom(buf)
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, c.SetReadDeadline(time.Now()))
	select {
	case err := <-errc:
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	case <-time.After(patience):
		t.Fatal("a deadline set during the wait did not end it")
	}

	require.NoError(t, c.SetReadDeadline(time.Time{}))
	_, err = peer.WriteTo(encode(buf, 5, 0), c.LocalAddr())
	require.NoError(t, err)
	rbuf := make([]byte, 64)
	n, from, err := c.ReadFromUDPAddrPort(rbuf)
	require.NoError(t, err)
	require.EqualValues(t, 5, decode(rbuf[:n]).seq)
	require.Equal(t, peer.LocalAddr().(*net.UDPAddr).AddrPort(), from)

	go func() {
		_, _, err := c.ReadFrom(buf)
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, c.Close())
	select {
	case err := <-errc:
		require.ErrorIs(t, err, net.ErrClosed)
	case <-time.After(patience):
		t.Fatal("Close did not end a waiting read")
	}
	_, _, err = c.ReadFrom(buf)
	require.ErrorIs(t, err, net.ErrClosed)
}

// A duplex Conn with an unimpaired receive side is a plain Conn: reads
// pass through, and ReceiveStats stays zero.
func TestDuplexZeroReceive(t *testing.T) {
	c, peer := newDuplex(t, impair.Config{}, impair.Config{Seed: 3})
	buf := make([]byte, 64)
	_, err := peer.WriteTo(encode(buf, 1, 0), c.LocalAddr())
	require.NoError(t, err)
	require.Equal(t, []uint64{1}, drain(t, c))
	require.Zero(t, c.ReceiveStats())
}
