package websocket

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/reliable"
)

// A client whose reliable bytes the server does not Read is held by TCP:
// the poller stops reading its socket once readBuffered bytes wait, while
// another session on the same poller goes on; once Read catches up, every
// byte arrives, in order.
func TestPollerPausesWhileReadIsBehind(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // one poller for both
	l, url := serve(t, Config{}, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	flooder, behind := connect(t, l, url)
	other, steady := connect(t, l, url)
	require.NotNil(t, behind.poll)
	require.Same(t, behind.poll, steady.poll)

	const frames, body = 400, 1000 // 400 KB: many times readBuffered
	want := make([]byte, 0, frames*(body+4))
	for i := range frames {
		f := frame(body)
		binary.BigEndian.PutUint32(f[4:], uint32(i))
		want = append(want, f...)
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := flooder.Write(want)
		wrote <- err
	}()
	require.Eventually(t, behind.isPaused, 5*time.Second, 10*time.Millisecond, "the poller pauses the session")
	time.Sleep(100 * time.Millisecond) // the poller would read on meanwhile
	behind.rmu.Lock()
	held := len(behind.rbuf) - behind.roff
	behind.rmu.Unlock()
	require.Less(t, held, readBuffered+messageChunk+64, "what waits for Read is bounded")

	// The other session on the poller is read meanwhile.
	for i := range 20 {
		require.NoError(t, other.SendDatagram([]byte{byte(i)}))
		d, err := steady.ReceiveDatagram(ctx)
		require.NoError(t, err)
		require.Equal(t, []byte{byte(i)}, d)
	}

	got := make([]byte, len(want))
	_, err := io.ReadFull(behind, got)
	require.NoError(t, err)
	require.Equal(t, want, got, "every byte, in order")
	require.NoError(t, <-wrote)
}

// isPaused reports whether the poller stopped reading s while its Read is
// behind.
func (s *Session) isPaused() bool {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return s.paused
}

// The poller's goroutine ends with its last session, and starts again
// with the next.
func TestPollerEndsWithItsLastSession(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	l, url := serve(t, Config{}, false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	running := func(p *poller) bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.running
	}
	for range 2 {
		c, err := Dial(ctx, url, Config{})
		require.NoError(t, err)
		ts, err := l.Accept(ctx)
		require.NoError(t, err)
		s := ts.(*Session)
		require.True(t, running(s.poll))
		require.NoError(t, c.SendDatagram([]byte("hello")))
		d, err := s.ReceiveDatagram(ctx)
		require.NoError(t, err)
		require.Equal(t, "hello", string(d))
		_ = c.Close(0, "bye")
		c.Wait()
		<-s.Done()
		require.Eventually(t, func() bool { return !running(s.poll) }, 5*time.Second, 5*time.Millisecond)
		s.Wait()
	}
	require.NoError(t, l.Close())
	l.mu.Lock()
	p := l.pollers[0]
	l.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	require.True(t, p.released, "a closed listener's idle poller lets its descriptors go")
}

// A peer that closes while the server's socket is full of data it has not
// read yet still gets the close echo once it reads: the poller does not
// wait for the socket, so a goroutine of the session's writes it.
func TestPollerEchoesACloseBehindData(t *testing.T) {
	l, url := serve(t, Config{}, false)
	key := [4]byte{9, 8, 7, 6}
	c, br, s := rawSession(t, l, url, nil)
	require.NotNil(t, s.poll)
	var sent atomic.Int64
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		d := make([]byte, MaxDatagram)
		for s.SendDatagram(d) == nil {
			sent.Add(1)
		}
	}()
	for last := int64(-1); ; { // until the sender is stuck: the peer reads nothing
		time.Sleep(50 * time.Millisecond)
		if n := sent.Load(); n == last {
			break
		} else {
			last = n
		}
	}
	status := binary.BigEndian.AppendUint16(nil, 4000+uint16(1))
	_, err := c.Write(clientFrame(true, opClose, key, append(status, "leaving"...)))
	require.NoError(t, err)
	<-s.Done()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	for {
		op, p := serverFrame(t, br)
		if op == opBinary {
			continue // the data sent before
		}
		require.Equal(t, byte(opClose), op)
		require.Equal(t, status, p, "the close echoes the status")
		break
	}
	<-stopped
	s.Wait()
}

// A breach of the format found by the poller ends a reader that
// NotifyReadable parked: it learns of the error at once, not at the idle
// timeout.
func TestPollerWakesAParkedReaderOnABreach(t *testing.T) {
	l, url := serve(t, Config{}, false)
	c, _, s := rawSession(t, l, url, nil)
	woke := make(chan struct{})
	require.True(t, s.NotifyReadable(func() { close(woke) }), "parked")
	_, err := c.Write([]byte{finBit | opBinary, 3, channelReliable, 'h', 'i'}) // unmasked
	require.NoError(t, err)
	select {
	case <-woke:
	case <-time.After(3 * time.Second):
		t.Fatal("the parked reader was not started again")
	}
	_, err = s.Read(make([]byte, 10))
	require.ErrorIs(t, err, reliable.ErrBadFrame)
	_ = s.Close(uint16(reliable.CloseProtocolError), "bad frame")
	s.Wait()
}

// A paused socket is out of the poller's epoll instance: when its peer
// resets it, the loop does not wake for it again and again (an error or a
// hang-up is reported whatever events a socket in it asks for).
func TestPollerDoesNotSpinOnAPausedSocket(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	l, url := serve(t, Config{}, false)
	c, _, s := rawSession(t, l, url, nil)
	key := [4]byte{1, 2, 3, 4}
	msg := clientFrame(true, opBinary, key, append([]byte{channelReliable}, frame(1000)...))
	go func() {
		for range 200 { // 200 KB: past readBuffered
			if _, err := c.Write(msg); err != nil {
				return
			}
		}
	}()
	require.Eventually(t, s.isPaused, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, c.(*net.TCPConn).SetLinger(0))
	require.NoError(t, c.Close()) // a reset
	time.Sleep(50 * time.Millisecond)
	before := s.poll.rounds.Load()
	time.Sleep(300 * time.Millisecond)
	rounds := s.poll.rounds.Load() - before
	require.Less(t, rounds, uint64(100), "the loop's waits in 300 ms after the reset: it spins")
	_ = s.Close(0, "test over")
	s.Wait()
}

// A session closed while the poller has it queued (refused: the accept
// queue is full) holds its socket for its closing handshake, up to a
// second for a peer that never answers: the loop passes it over instead
// of waiting, and the other sessions are read meanwhile.
func TestPollerDoesNotWaitForAClosingSession(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // one poller for all
	l, url := serve(t, Config{Backlog: 1}, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	other, steady := connect(t, l, url)
	rawClient(t, url, nil) // fills the accept queue
	worst := time.Duration(0)
	for range 3 {
		done := make(chan struct{})
		go func() { // refused, and never answers the server's close
			defer close(done)
			rawClient(t, url, nil)
		}()
		for j := range 30 {
			start := time.Now()
			require.NoError(t, other.SendDatagram([]byte{byte(j)}))
			_, err := steady.ReceiveDatagram(ctx)
			require.NoError(t, err)
			worst = max(worst, time.Since(start))
			time.Sleep(5 * time.Millisecond)
		}
		<-done
	}
	require.Less(t, worst, closeLinger/2, "a datagram waited for the loop behind a closing session")
}

// A ping flood costs the poller one pong a round, answering the last ping
// of the round (RFC 6455 5.5.3).
func TestPollerAnswersTheLastPingOfARound(t *testing.T) {
	key := [4]byte{3, 1, 4, 1}
	var pings []byte
	const n = 100
	for i := range n {
		pings = append(pings, clientFrame(true, opPing, key, []byte{byte(i)})...)
	}
	l, url := serve(t, Config{}, false)
	c, br, s := rawSession(t, l, url, pings)
	pongs := 0
	for {
		op, p := serverFrame(t, br)
		require.Equal(t, byte(opPong), op)
		pongs++
		if p[0] == n-1 {
			break
		}
	}
	require.Less(t, pongs, n/2, "one pong a round, not one a ping")
	_ = c.Close()
	_ = s.Close(0, "")
	s.Wait()
}

// The loop ends once its last session is gone, however the sessions'
// arrivals and ends fall around its wake-ups: here a session arrives
// while another is read, and both end at once, over and over.
func TestPollerEndsWhateverTheOrder(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // one poller for all
	l, url := serve(t, Config{}, false)
	for i := range 100 {
		c, _, a := rawSession(t, l, url, nil)
		d, _, b := rawSession(t, l, url, nil)
		_ = a.Close(0, "")
		_ = b.Close(0, "")
		_ = c.Close()
		_ = d.Close()
		a.Wait()
		b.Wait()
		p := a.poll
		require.Eventually(t, func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return !p.running
		}, 2*time.Second, time.Millisecond, "round %d: the loop outlived its sessions", i)
	}
}

// isDirect reports whether s's Read reads its socket itself.
func (s *Session) isDirect() bool {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return s.direct
}

// A Read that finds nothing waiting reads the socket itself (direct), and
// the poller leaves the socket alone; once the read loop parks on
// NotifyReadable, the poller has it again, with what the buffer holds.
func TestPolledReadGoesDirectWhileBusy(t *testing.T) {
	l, url := serve(t, Config{}, false)
	key := [4]byte{1, 2, 3, 4}
	c, _, s := rawSession(t, l, url, nil)
	require.NotNil(t, s.poll)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rel := frame(3)
	relMsg := clientFrame(true, opBinary, key, append([]byte{channelReliable}, rel...))
	dgram := func(p string) []byte {
		return clientFrame(true, opBinary, key, append([]byte{channelDatagram}, p...))
	}
	buf := make([]byte, 64)

	got := make(chan []byte, 1)
	go func() {
		n, _ := s.Read(buf)
		got <- buf[:n]
	}()
	require.Eventually(t, s.isDirect, 5*time.Second, time.Millisecond, "a Read with nothing to take goes direct")
	_, err := c.Write(relMsg)
	require.NoError(t, err)
	require.Equal(t, rel, <-got)

	// A reliable message and a datagram in one write: Read takes the
	// message, and the datagram may wait in the buffer unparsed.
	_, err = c.Write(append(append([]byte(nil), relMsg...), dgram("left")...))
	require.NoError(t, err)
	n, err := s.Read(buf)
	require.NoError(t, err)
	require.Equal(t, rel, buf[:n])
	require.True(t, s.isDirect())

	woke := make(chan struct{}, 1)
	require.True(t, s.NotifyReadable(func() { woke <- struct{}{} }))
	require.False(t, s.isDirect(), "parking gives the socket back to the poller")
	d, err := s.ReceiveDatagram(ctx)
	require.NoError(t, err)
	require.Equal(t, "left", string(d), "the poller parses what the buffer held")

	// No Read runs now: the poller reads the socket.
	_, err = c.Write(dgram("polled"))
	require.NoError(t, err)
	d, err = s.ReceiveDatagram(ctx)
	require.NoError(t, err)
	require.Equal(t, "polled", string(d))
	_, err = c.Write(relMsg)
	require.NoError(t, err)
	select {
	case <-woke:
	case <-ctx.Done():
		t.Fatal("the poller did not call NotifyReadable's f")
	}
	n, err = s.Read(buf)
	require.NoError(t, err)
	require.Equal(t, rel, buf[:n])
	require.False(t, s.isDirect(), "a Read with bytes waiting takes them")
}

// Two reliable messages in one write wake a parked reader, which takes the
// first and at once asks for more: its Read goes direct while the poller's
// round may still be parsing the second, which Read must then take, not
// wait in the socket for (under the race detector, it failed within a
// hundred rounds when Read went to the socket without looking at what had
// been handed on).
func TestPolledReadTakesWhatTheRoundHandedOn(t *testing.T) {
	l, url := serve(t, Config{}, false)
	key := [4]byte{5, 6, 7, 8}
	c, _, s := rawSession(t, l, url, nil)
	require.NotNil(t, s.poll)
	rel := frame(3)
	msg := clientFrame(true, opBinary, key, append([]byte{channelReliable}, rel...))
	two := append(append([]byte(nil), msg...), msg...)
	buf := make([]byte, len(rel))
	for round := range 1000 {
		woke := make(chan struct{}, 1)
		require.True(t, s.NotifyReadable(func() { woke <- struct{}{} }), "round %d", round)
		_, err := c.Write(two)
		require.NoError(t, err)
		<-woke
		for i := range 2 {
			read := make(chan error, 1)
			go func() {
				n, err := s.Read(buf)
				if err == nil && n != len(rel) {
					err = io.ErrShortBuffer
				}
				read <- err
			}()
			select {
			case err := <-read:
				require.NoError(t, err, "round %d, message %d", round, i)
			case <-time.After(5 * time.Second):
				t.Fatalf("round %d: message %d waits unread (direct %v)", round, i, s.isDirect())
			}
		}
	}
}

// A polled session's Read that went direct answers pings as its poller
// does: the last of several read at once, without waiting for the socket,
// and before it waits for more.
func TestPolledReadDirectAnswersTheLastPing(t *testing.T) {
	l, url := serve(t, Config{}, false)
	key := [4]byte{3, 1, 4, 1}
	c, br, s := rawSession(t, l, url, nil)
	require.NotNil(t, s.poll)
	rel := frame(3)
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 64)
		n, _ := s.Read(buf)
		got <- buf[:n]
	}()
	require.Eventually(t, s.isDirect, 5*time.Second, time.Millisecond)
	var pings []byte
	for _, p := range []string{"one", "two", "three"} {
		pings = append(pings, clientFrame(true, opPing, key, []byte(p))...)
	}
	_, err := c.Write(pings)
	require.NoError(t, err)
	op, p := serverFrame(t, br)
	require.Equal(t, byte(opPong), op)
	require.Equal(t, "three", string(p), "the last ping's pong, while Read waits")
	_, err = c.Write(clientFrame(true, opBinary, key, append([]byte{channelReliable}, rel...)))
	require.NoError(t, err)
	require.Equal(t, rel, <-got)
	require.True(t, s.isDirect())
	require.NoError(t, c.SetReadDeadline(time.Now().Add(200*time.Millisecond)))
	_, err = br.ReadByte()
	var ne net.Error
	require.ErrorAs(t, err, &ne, "no other pong")
	require.True(t, ne.Timeout())

	// A direct socket is read only while Read is called: the next Read
	// sees the peer leave, and the session leaves its poller.
	require.NoError(t, c.Close())
	_, err = s.Read(make([]byte, 64))
	require.Error(t, err)
}
