package websocket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/reliable"
)

// Session is one WebSocket connection with both of Roomwire's channels on
// it.
type Session struct {
	ws    *websocket.Conn // a client's; nil on a server, which frames by hand
	conn  net.Conn        // the connection, closed to bound the closing handshake
	raddr net.Addr
	// maxMessage is the longest reliable payload accepted: a frame at the
	// limit, with its header.
	maxMessage int
	idle       time.Duration

	// The read side, filled by the reader (a client's goroutine, a server's
	// Read): reliable bytes not yet Read (rbuf from roff), and why reading
	// ended (rerr, returned once rbuf is drained; at once when rdrop, after
	// a local close).
	rmu   sync.Mutex
	rcond sync.Cond
	rbuf  []byte
	roff  int
	rerr  error
	rdrop bool
	msg   []byte      // the reader's message buffer
	ch    [1]byte     // and its channel byte
	fr    frameReader // a server's: the bytes read (frame.go)
	// discard: a server's reader reads frames only for the peer's close,
	// in the closing handshake; skip bytes of the frame that broke the
	// format are still to be read past.
	discard bool
	skip    uint64
	dgrams  chan []byte
	// handler, once set (HandleDatagrams), takes datagrams in place of
	// dgrams, on the reader goroutine.
	handler atomic.Pointer[func([]byte)]
	heard   *activity
	// stalled: the reader waits for Read, so the peer is not silent; we
	// are not listening. On a server, whose Read reads the socket itself,
	// it is true whenever no Read is in the socket.
	stalled atomic.Bool
	// rdMu is held by whoever reads a server's socket: Read, its
	// listener's poller, or the closing handshake once the session ended.
	rdMu     sync.Mutex
	readOnce sync.Once // closes readDone

	// A server's session whose socket its listener's poller reads
	// (poll_linux.go): poll is set (under rmu) before the session is
	// handed out and never changes; praw and pfd are its socket's; pollFn
	// is the poller's read into fr, bound once, and pn, perr its result.
	poll   *poller
	praw   syscall.RawConn
	pfd    int32
	pollFn func(uintptr) bool
	pn     int
	perr   error
	// paused (rmu): the poller stopped reading while Read is behind.
	paused bool
	// direct (rmu): Read reads the socket itself while the stream is busy,
	// and the poller does not watch it (polledRead, pollAgain).
	direct bool
	// ping (rdMu) is the payload of the last ping of the poller's round,
	// answered once at its end (pingDue): a peer's ping flood costs one
	// pong a round (RFC 6455 5.5.3 allows answering only the latest).
	ping    []byte
	pingDue bool
	// onReadable (rmu): NotifyReadable's f, waiting for bytes or the end.
	onReadable func()

	// The write side: one message at a time, under the turn. A server's
	// session writes its data frames itself (frame.go): out and dout then
	// keep serverHeader bytes in front of the message for the header.
	turn   turn
	server bool
	out    []byte // a reliable message being written
	dout   [serverHeader + 1 + MaxDatagram]byte
	// fast, on a server's plain TCP socket under TCP_NOTSENT_LOWAT 1,
	// tries a datagram's write and is refused while the kernel holds
	// anything unsent: TrySendDatagram needs no probe then.
	fast  tryWriter
	probe *unsentProbe // nil: TrySendDatagram always says "not now"

	// The end: the first of a local Close and the reader's end.
	endOnce sync.Once
	endErr  atomic.Pointer[transport.CloseError]
	done    chan struct{}
	wg      sync.WaitGroup // the reader and the closing goroutine
	// readDone is closed when reading ended: a client's reader goroutine
	// ended, or a server's socket gave its last bytes.
	readDone chan struct{}

	// Keep-alive pings, on a timer, while the session lasts.
	kmu     sync.Mutex
	keep    *time.Timer
	stopped bool
	pings   sync.WaitGroup

	datagramsDropped atomic.Uint64
}

// tryWriter writes a message unless the socket would not take it at once
// (eorConn, on Linux).
type tryWriter interface {
	tryWrite(p []byte) (bool, error)
}

var (
	_ transport.Session         = (*Session)(nil)
	_ transport.Challenged      = (*Session)(nil)
	_ transport.TrySender       = (*Session)(nil)
	_ transport.DatagramHandler = (*Session)(nil)
	_ transport.WriteReady      = (*Session)(nil)
	_ transport.ReadNotifier    = (*Session)(nil)
)

// serverSide is what newSession needs of a session a Listener accepted,
// which reads and writes its frames itself (frame.go).
type serverSide struct {
	early  []byte  // bytes the HTTP server read past the handshake
	lowat1 bool    // the socket has TCP_NOTSENT_LOWAT 1
	poll   *poller // to read the socket, if it can; nil: Read reads it
}

// newSession starts a session on an open WebSocket; conn is the connection
// under it, heard the activity its ping and pong callbacks touch. A
// client's session has ws and no srv; a server's, srv and no ws: it frames
// by hand, and keeps none of the library's state.
func newSession(ws *websocket.Conn, conn net.Conn, heard *activity, cfg *Config, srv *serverSide) *Session {
	s := &Session{
		ws:         ws,
		conn:       conn,
		heard:      heard,
		raddr:      conn.RemoteAddr(),
		maxMessage: reliable.HeaderLen + cfg.MaxFrame,
		idle:       cfg.IdleTimeout,
		dgrams:     make(chan []byte, datagramQueue),
		done:       make(chan struct{}),
		readDone:   make(chan struct{}),
	}
	s.rcond.L = &s.rmu
	s.turn.cond.L = &s.turn.mu
	if srv != nil {
		s.server = true
		s.fr = frameReader{conn: conn, heard: heard, buf: make([]byte, max(readChunk, len(srv.early)))}
		s.fr.w = copy(s.fr.buf, srv.early)
	}
	if tw, ok := conn.(tryWriter); ok && srv != nil && srv.lowat1 {
		s.fast = tw
	} else {
		s.probe = newUnsentProbe(conn)
	}
	heard.touch()
	if ws != nil {
		// A message longer than the limits is refused as it is read, with
		// Roomwire's close code; the library's own limit is not needed.
		ws.SetReadLimit(-1)
	}
	s.kmu.Lock() // keepalive, on the timer's goroutine, resets s.keep
	s.keep = time.AfterFunc(s.idle/3, s.keepalive)
	s.kmu.Unlock()
	if s.server {
		s.stalled.Store(true) // no Read yet
		if srv.poll != nil {
			srv.poll.add(s) // or Read reads the socket
		}
		return s
	}
	s.wg.Add(1)
	go s.readLoop()
	return s
}

// readEnd marks reading over.
func (s *Session) readEnd() { s.readOnce.Do(func() { close(s.readDone) }) }

// readLoop is the reader goroutine: it reads messages until the connection
// ends or the peer breaks the format, handing reliable bytes to Read and
// datagrams to ReceiveDatagram.
func (s *Session) readLoop() {
	defer s.wg.Done()
	defer s.readEnd()
	for {
		typ, r, err := s.ws.Reader(context.Background())
		if err != nil {
			s.readEnded(err)
			return
		}
		s.heard.touch()
		if err := s.readMessage(typ, r); err != nil {
			if errors.Is(err, reliable.ErrBadFrame) || errors.Is(err, reliable.ErrFrameTooLarge) {
				s.broken(err)
			} else {
				s.readEnded(err)
			}
			return
		}
	}
}

// readMessage reads one message to its end.
func (s *Session) readMessage(typ websocket.MessageType, r io.Reader) error {
	if typ != websocket.MessageBinary {
		return fmt.Errorf("%w: websocket: a text message", reliable.ErrBadFrame)
	}
	if _, err := io.ReadFull(r, s.ch[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: websocket: an empty message", reliable.ErrBadFrame)
		}
		return err
	}
	switch s.ch[0] {
	case channelReliable:
		n, err := readAtMost(r, &s.msg, s.maxMessage)
		if err != nil {
			return err
		}
		s.received(s.msg[:n])
	case channelDatagram:
		n, err := readAtMost(r, &s.msg, MaxDatagram)
		if errors.Is(err, reliable.ErrFrameTooLarge) {
			return fmt.Errorf("%w: websocket: a datagram over %d bytes", reliable.ErrBadFrame, MaxDatagram)
		}
		if err != nil {
			return err
		}
		if f := s.handler.Load(); f != nil {
			(*f)(s.msg[:n])
			break
		}
		select {
		case s.dgrams <- append([]byte(nil), s.msg[:n]...):
		default:
			s.datagramsDropped.Add(1) // no one reads them: drop, as UDP would
		}
	default:
		return fmt.Errorf("%w: websocket: unknown channel 0x%02x", reliable.ErrBadFrame, s.ch[0])
	}
	if cap(s.msg) > 2*messageChunk {
		s.msg = nil // a long frame's buffer is not kept
	}
	return nil
}

// readAtMost reads r to its end into *buf, refusing more than limit bytes
// with ErrFrameTooLarge before reading them all.
func readAtMost(r io.Reader, buf *[]byte, limit int) (int, error) {
	b := (*buf)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		m, err := r.Read(b[len(b):min(cap(b), limit+1)])
		b = b[:len(b)+m]
		*buf = b
		if len(b) > limit {
			return 0, fmt.Errorf("%w: websocket: a message over %d bytes", reliable.ErrFrameTooLarge, limit+1)
		}
		if errors.Is(err, io.EOF) {
			return len(b), nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// received hands reliable bytes to Read, waiting while Read is behind by
// readBuffered bytes: TCP's flow control then holds the peer.
func (s *Session) received(p []byte) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	for !s.server && len(s.rbuf)-s.roff >= readBuffered && s.rerr == nil {
		s.stalled.Store(true)
		s.rcond.Wait()
	}
	if !s.server {
		s.stalled.Store(false)
	}
	if s.rerr != nil {
		return // closing: nothing more is read
	}
	if s.roff > 0 {
		s.rbuf = s.rbuf[:copy(s.rbuf, s.rbuf[s.roff:])]
		s.roff = 0
	}
	s.rbuf = append(s.rbuf, p...)
	s.rcond.Broadcast()
}

// broken ends reading on the peer's breach of the format: Read returns err
// after the bytes before it, and netcode closes the session with the code
// err stands for (protocol error, frame too large).
func (s *Session) broken(err error) {
	s.rmu.Lock()
	if s.rerr == nil {
		s.rerr = err
	}
	s.rcond.Broadcast()
	readable := s.takeReadable() // a parked reader learns of it
	s.rmu.Unlock()
	readable()
}

// readEnded ends the session when the connection did: a close from the
// peer or its loss.
func (s *Session) readEnded(err error) {
	var wce websocket.CloseError
	var ce *transport.CloseError
	if errors.As(err, &wce) {
		ce = &transport.CloseError{Code: uint16(closeCode(wce.Code)), Reason: wce.Reason, Remote: true}
	} else {
		ce = &transport.CloseError{Code: uint16(reliable.CloseInternal), Reason: "websocket: connection lost: " + err.Error()}
	}
	if s.end(ce, false) {
		if s.ws != nil {
			_ = s.ws.CloseNow()
		}
		_ = s.conn.Close()
	}
}

// end records why the session ended, once, and stops its users: reads end
// (at once for a local close, after the bytes already received for the
// peer's), writes fail. It reports whether this call ended it.
func (s *Session) end(ce *transport.CloseError, local bool) bool {
	first := false
	s.endOnce.Do(func() {
		first = true
		s.endErr.Store(ce)
		s.rmu.Lock()
		if s.rerr == nil || local {
			s.rerr = ce
		}
		s.rdrop = local
		s.rcond.Broadcast()
		readable := s.takeReadable()
		p := s.poll
		s.rmu.Unlock()
		if p != nil {
			p.remove(s)
		}
		readable() // a parked reader learns of the end
		s.turn.close()
		s.kmu.Lock()
		s.stopped = true
		s.keep.Stop()
		s.kmu.Unlock()
		close(s.done)
	})
	return first
}

// closedErr is what a method returns once the session ended.
func (s *Session) closedErr() error {
	if ce := s.endErr.Load(); ce != nil {
		return ce
	}
	return net.ErrClosed
}

// writeErr maps a failed write. A write fails first when the peer's close
// frame has been read but not yet handed on (the WebSocket library refuses
// writes from then on) or when the connection broke under the reader too;
// the reader is given a moment to end the session with the real reason, so
// that the writer's failure does not cut the bytes before the close unread.
func (s *Session) writeErr(err error) error {
	if s.endErr.Load() == nil {
		t := time.NewTimer(writeErrWait)
		select {
		case <-s.done:
		case <-s.readDone:
		case <-t.C:
		}
		t.Stop()
	}
	if ce := s.endErr.Load(); ce != nil {
		return ce
	}
	return fmt.Errorf("websocket: write: %w", err)
}

// Read reads reliable bytes.
func (s *Session) Read(p []byte) (int, error) {
	if s.server {
		return s.serverRead(p)
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	n, err := s.takeWhenReady(p)
	if err == nil {
		s.rcond.Broadcast() // the reader may wait for room
	}
	return n, err
}

// takeWhenReady waits (rmu held) until reliable bytes were read or reading
// ended, and then takes what there is into p, or returns why it ended:
// Read's, on a session whose bytes a reader hands on (a client's reader
// goroutine, a server's poller).
func (s *Session) takeWhenReady(p []byte) (int, error) {
	for s.roff == len(s.rbuf) && s.rerr == nil {
		s.rcond.Wait()
	}
	if s.roff == len(s.rbuf) || s.rdrop {
		return 0, s.rerr
	}
	return s.take(p), nil
}

// takeReadable takes NotifyReadable's f (rmu held), for its caller to
// call once rmu is unlocked; with none waiting, a func that does nothing.
func (s *Session) takeReadable() func() {
	f := s.onReadable
	s.onReadable = nil
	if f == nil {
		return func() {}
	}
	return f
}

// take copies reliable bytes read into p (rmu held).
func (s *Session) take(p []byte) int {
	n := copy(p, s.rbuf[s.roff:])
	s.roff += n
	if s.roff == len(s.rbuf) {
		s.rbuf, s.roff = s.rbuf[:0], 0
		if cap(s.rbuf) > 2*messageChunk {
			s.rbuf = nil // a burst's buffer is not kept
		}
	}
	return n
}

// Write writes reliable bytes as messages of whole frames. It blocks while
// the socket takes no more, and goes before any datagram waiting.
func (s *Session) Write(p []byte) (int, error) {
	if !s.turn.take(true) {
		return 0, s.closedErr()
	}
	defer s.turn.give()
	n := 0
	for n < len(p) {
		k := cut(p[n:])
		if err := s.writeReliable(p[n : n+k]); err != nil {
			return n, s.writeErr(err)
		}
		n += k
	}
	if cap(s.out) > 2*messageChunk {
		s.out = nil // a long frame's buffer is not kept
	}
	return n, nil
}

// writeReliable writes p as one reliable message (turn holder).
func (s *Session) writeReliable(p []byte) error {
	if !s.server {
		s.out = append(append(s.out[:0], channelReliable), p...)
		return s.ws.Write(context.Background(), websocket.MessageBinary, s.out)
	}
	if cap(s.out) < serverHeader {
		s.out = make([]byte, serverHeader, serverHeader+1+len(p))
	}
	s.out = append(append(s.out[:serverHeader], channelReliable), p...)
	start := putServerHeader(s.out, serverHeader, opBinary, 1+len(p))
	_, err := s.conn.Write(s.out[start:])
	return err
}

// cut is how many bytes of p the next reliable message takes: whole frames
// up to messageChunk bytes, or one longer frame; all of p when it ends
// inside a frame (netcode writes whole frames only, but a caller may not).
func cut(p []byte) int {
	n := 0
	for len(p)-n >= reliable.HeaderLen {
		f := reliable.HeaderLen + (int(p[n+1])<<16 | int(p[n+2])<<8 | int(p[n+3]))
		if n > 0 && n+f > messageChunk {
			return n
		}
		n += f
		if n >= len(p) {
			break
		}
	}
	return len(p)
}

// SendDatagram writes p as one datagram message. It blocks while the
// socket takes no more (with TCP_NOTSENT_LOWAT, while the kernel holds
// enough unsent) and while a reliable write waits: the caller, netcode's
// datagram sender, then holds its newest snapshot instead of queueing old
// ones below it.
func (s *Session) SendDatagram(p []byte) error {
	if len(p) > MaxDatagram {
		return fmt.Errorf("websocket: datagram of %d bytes > %d", len(p), MaxDatagram)
	}
	if !s.turn.take(false) {
		return s.closedErr()
	}
	defer s.turn.give()
	return s.writeDatagram(p)
}

// writeDatagram writes p as one datagram message (turn holder).
func (s *Session) writeDatagram(p []byte) error {
	var err error
	if s.server {
		_, err = s.conn.Write(s.datagramFrame(p))
	} else {
		m := append(append(s.dout[:0], channelDatagram), p...)
		err = s.ws.Write(context.Background(), websocket.MessageBinary, m)
	}
	if err != nil {
		return s.writeErr(err)
	}
	return nil
}

// datagramFrame is p as a server's datagram frame, in dout (turn holder).
func (s *Session) datagramFrame(p []byte) []byte {
	s.dout[serverHeader] = channelDatagram
	n := copy(s.dout[serverHeader+1:], p)
	start := putServerHeader(s.dout[:], serverHeader, opBinary, 1+n)
	return s.dout[start : serverHeader+1+n]
}

// TrySendDatagram writes p as one datagram message when that cannot block:
// no other write holds or waits for the connection, and the kernel holds
// nothing unsent (then a message of this size goes out in one write under
// TCP_NOTSENT_LOWAT). Otherwise it reports false, and netcode's sender
// goroutine waits in SendDatagram instead.
func (s *Session) TrySendDatagram(p []byte) (bool, error) {
	if len(p) > MaxDatagram {
		return true, fmt.Errorf("websocket: datagram of %d bytes > %d", len(p), MaxDatagram)
	}
	if s.probe == nil && s.fast == nil {
		return false, nil
	}
	taken, open := s.turn.tryTake()
	if !open {
		return true, s.closedErr()
	}
	if !taken {
		return false, nil
	}
	defer s.turn.give()
	if s.fast != nil {
		sent, err := s.fast.tryWrite(s.datagramFrame(p))
		if err != nil {
			return true, s.writeErr(err)
		}
		return sent, nil
	}
	if n, ok := s.probe.unsent(); !ok || n > 0 {
		return false, nil
	}
	return true, s.writeDatagram(p)
}

// WriteReady reports whether a reliable write of n bytes now would not
// wait: the write turn is free, the kernel holds nothing unsent, and the
// message fits the WebSocket library's write buffer, so that it goes out
// in one system call, which the kernel takes whole then. A server's
// session, which probes nothing, says false.
func (s *Session) WriteReady(n int) bool {
	if s.probe == nil || n > readyWrite || !s.turn.free() {
		return false
	}
	unsent, ok := s.probe.unsent()
	return ok && unsent == 0
}

// HandleDatagrams hands every datagram message read from now on to f, on
// the reader goroutine, in place of ReceiveDatagram.
func (s *Session) HandleDatagrams(f func(p []byte)) { s.handler.Store(&f) }

// ReceiveDatagram returns the next datagram.
func (s *Session) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	select {
	case d := <-s.dgrams:
		return d, nil
	case <-s.done:
		return nil, s.closedErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// MaxDatagram is the datagram limit on WebSocket.
func (s *Session) MaxDatagram() int { return MaxDatagram }

// Close ends the session: the peer gets a close frame with status 4000 +
// code and the reason (cut to the 123 bytes a close frame holds). It does
// not block; the closing handshake runs on a goroutine of the session, at
// most about a second. It is idempotent.
func (s *Session) Close(code uint16, reason string) error {
	s.wg.Add(1) // before the end, which a Wait may follow at once
	if !s.end(&transport.CloseError{Code: code, Reason: reason}, true) {
		s.wg.Done()
		return nil
	}
	if s.server {
		_ = s.conn.SetReadDeadline(time.Now()) // a Read in the socket returns
	}
	go s.closeHandshake(code, reason)
	return nil
}

// closeHandshake writes the close frame and waits for the peer's (a
// client's reader goroutine reads it, a server's drain) for at most
// closeLinger; then the connection is released.
func (s *Session) closeHandshake(code uint16, reason string) {
	defer s.wg.Done()
	kill := time.AfterFunc(closeLinger, func() { _ = s.conn.Close() })
	defer kill.Stop()
	if s.server {
		s.stopPolling()
		if s.writeControl(opClose, closeFrame(code, reason)) == nil {
			s.drain() // to the peer's close, or kill
		}
	} else {
		_ = s.ws.Close(closeStatus(code), closeReason(reason))
	}
	_ = s.conn.Close()
}

// Wait waits until the session's goroutines ended, after Close or after the
// peer closed.
func (s *Session) Wait() {
	s.wg.Wait()
	s.pings.Wait()
}

// Done is closed when the session ended, for either side's reason.
func (s *Session) Done() <-chan struct{} { return s.done }

// RemoteAddr is the peer's TCP address.
func (s *Session) RemoteAddr() net.Addr { return s.raddr }

// Challenged marks the session for netcode: WebSocket gives no TLS keying
// material to bind a connect token to, so the server challenges.
func (s *Session) Challenged() {}

// DatagramsDropped counts datagrams received but dropped because no one
// took them in time.
func (s *Session) DatagramsDropped() uint64 { return s.datagramsDropped.Load() }

// keepalive runs on a timer every third of the idle timeout: it ends a
// session that heard nothing for the idle timeout, and pings a peer silent
// for a third of it, so that an idle but healthy one answers.
func (s *Session) keepalive() {
	if s.stalled.Load() {
		s.heard.touch() // what the peer sent waits for the application
	}
	silent := s.heard.since()
	if silent >= s.idle {
		_ = s.Close(uint16(reliable.CloseTimeout), "idle timeout")
		return
	}
	s.kmu.Lock()
	if s.stopped {
		s.kmu.Unlock()
		return
	}
	ping := silent >= s.idle/3
	if ping {
		s.pings.Add(1)
	}
	s.kmu.Unlock()
	if ping && s.server {
		s.serverPing()
		s.pings.Done()
	} else if ping {
		ctx, cancel := context.WithTimeout(context.Background(), s.idle/3)
		_ = s.ws.Ping(ctx) // the pong arrives through the reader
		cancel()
		s.pings.Done()
	}
	s.kmu.Lock()
	if !s.stopped {
		s.keep.Reset(s.idle / 3)
	}
	s.kmu.Unlock()
}

// turn gives out the connection's writes one at a time, reliable ones
// first: a datagram waits while a reliable write waits. After close no one
// gets it.
type turn struct {
	mu       sync.Mutex
	cond     sync.Cond
	busy     bool
	reliable int // reliable writers waiting
	closed   bool
}

// take waits for the turn; it reports false once the turn is closed.
func (t *turn) take(reliable bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if reliable {
		t.reliable++
	}
	for !t.closed && (t.busy || (!reliable && t.reliable > 0)) {
		t.cond.Wait()
	}
	if reliable {
		t.reliable--
	}
	if t.closed {
		return false
	}
	t.busy = true
	return true
}

// tryTake takes the turn if it is free and no reliable writer waits;
// open is false once the turn is closed.
func (t *turn) tryTake() (taken, open bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false, false
	}
	if t.busy || t.reliable > 0 {
		return false, true
	}
	t.busy = true
	return true, true
}

// free reports whether no one holds or waits for the turn, open.
func (t *turn) free() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.closed && !t.busy && t.reliable == 0
}

func (t *turn) give() {
	t.mu.Lock()
	t.busy = false
	t.mu.Unlock()
	t.cond.Broadcast()
}

func (t *turn) close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.cond.Broadcast()
}

// activity is whether a session heard from its peer lately: bytes read, a
// ping or a pong (the WebSocket library's callbacks touch it on a client).
// A touch only marks it, with no reading of the clock on every read; the
// keep-alive, which asks each third of the idle timeout, dates the mark
// to its own check. The peer's silence is then known to within that third,
// as often as it is asked anyway.
type activity struct {
	heard atomic.Bool
	last  atomic.Int64 // when a check last found the mark (ns)
}

func (a *activity) touch() {
	if !a.heard.Load() { // a busy reader leaves the line alone
		a.heard.Store(true)
	}
}

// since is how long the peer has been silent, as of the checks so far.
func (a *activity) since() time.Duration {
	now := time.Now().UnixNano()
	if a.heard.Swap(false) {
		a.last.Store(now)
	}
	return time.Duration(now - a.last.Load())
}

func (a *activity) onPing(context.Context, []byte) bool { a.touch(); return true }

func (a *activity) onPong(context.Context, []byte) { a.touch() }
