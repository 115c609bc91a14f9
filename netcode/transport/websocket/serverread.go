package websocket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/coder/websocket"

	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/reliable"
)

// readChunk is the size of a server session's read buffer: a read takes
// what the socket holds, up to this, and the frames in it are handled in
// place. A longer frame grows the buffer for as long as it is read.
const readChunk = 4 << 10

// frameReader holds a server session's bytes read and not yet parsed,
// buf[r:w], for whoever holds rdMu.
type frameReader struct {
	conn  net.Conn
	heard *activity // touched by every read that brings bytes
	buf   []byte
	r, w  int
	// nowait: the poller reads the socket, and fill only makes room,
	// saying errMore when the bytes are not there yet.
	nowait bool
	// frag: a fragmented message is being read into the session's msg.
	frag bool
	// beforeWait, when set, runs before fill waits for the socket: a
	// polled session's pong (reading direct, it answers as its poller
	// does).
	beforeWait func()
}

// errMore stops the parsing of a polled session's buffer (fill) until its
// socket brings more bytes.
var errMore = errors.New("websocket: more bytes needed")

// errPaused stops the parsing of a polled session's buffer while Read is
// behind.
var errPaused = errors.New("websocket: reading paused")

// fill reads until at least n bytes wait unparsed; n is at most a header
// or a payload that was checked against the limits. Without waiting
// (nowait), it makes room for n bytes and returns errMore.
func (f *frameReader) fill(n int) error {
	if f.w-f.r >= n {
		return nil
	}
	if f.r > 0 { // move what is left to the front
		f.w = copy(f.buf, f.buf[f.r:f.w])
		f.r = 0
	}
	if n > len(f.buf) {
		f.buf = append(f.buf[:f.w], make([]byte, n-f.w)...)
		f.buf = f.buf[:cap(f.buf)]
	}
	if f.nowait {
		return errMore
	}
	if f.beforeWait != nil {
		f.beforeWait()
	}
	for f.w < n {
		m, err := f.conn.Read(f.buf[f.w:])
		if m > 0 {
			f.heard.touch()
		}
		f.w += m
		if err != nil && f.w < n {
			return err
		}
	}
	return nil
}

// drop reads *n bytes past and forgets them, counting *n down as it goes
// (a polled session's drop goes on when more bytes come).
func (f *frameReader) drop(n *uint64) error {
	for *n > 0 {
		if f.r == f.w {
			f.r, f.w = 0, 0
			if err := f.fill(1); err != nil {
				return err
			}
		}
		k := min(*n, uint64(f.w-f.r))
		f.r += int(k)
		*n -= k
	}
	return nil
}

// shrink lets a buffer that a long frame grew go, once it is drained.
func (f *frameReader) shrink() {
	if f.r == f.w && len(f.buf) > 2*readChunk {
		f.buf, f.r, f.w = make([]byte, readChunk), 0, 0
	}
}

// errPeerClosed ends the server's read loop on the peer's close frame,
// which it has handled.
var errPeerClosed = errors.New("websocket: the peer closed")

// protocolError is a breach of RFC 6455 by the peer.
func protocolError(what string) error {
	return fmt.Errorf("%w: websocket: %s", reliable.ErrBadFrame, what)
}

// errReliable ends readFrames with a reliable message for Read.
var errReliable = errors.New("websocket: a reliable message")

// serverRead is Read on a server's session, which has no reader goroutine:
// the caller, netcode's read loop, reads the socket itself, handling
// datagrams and control frames inline, until a reliable message comes.
// One goroutine and one wake-up fewer per message than a reader that
// hands messages over.
func (s *Session) serverRead(p []byte) (int, error) {
	if s.poll != nil {
		return s.polledRead(p)
	}
	return s.readSelf(p)
}

// readSelf is Read that reads the socket itself: a session no poller
// reads, or a polled one whose stream is busy (direct).
func (s *Session) readSelf(p []byte) (int, error) {
	for {
		s.rmu.Lock()
		if s.roff < len(s.rbuf) && !s.rdrop {
			n := s.take(p)
			s.rmu.Unlock()
			return n, nil
		}
		if err := s.rerr; err != nil {
			s.rmu.Unlock()
			return 0, err
		}
		s.rmu.Unlock()
		s.rdMu.Lock()
		s.rmu.Lock()
		ended := s.rerr != nil // while waiting for the socket
		// A polled session's: a round of the poller's that ran on as Read
		// went direct may have handed on a message while Read waited for
		// rdMu, and the socket may hold nothing more.
		handed := s.roff < len(s.rbuf) && !s.rdrop
		s.rmu.Unlock()
		if !ended && !handed {
			s.fr.nowait = false // a polled session's, while direct
			s.stalled.Store(false)
			err := s.readFrames()
			s.pong() // a polled session's last ping, if one waits
			s.stalled.Store(true)
			s.readFailed(err)
		}
		s.rdMu.Unlock()
	}
}

// readFailed handles the end of readFrames other than a reliable message
// (rdMu holder): the peer's close (handled), a breach of the format, or
// the connection's end. After a local close it is the deadline that Close
// set: the closing handshake reads on.
func (s *Session) readFailed(err error) {
	switch {
	case errors.Is(err, errReliable):
	case s.endErr.Load() != nil && !errors.Is(err, errPeerClosed):
	case errors.Is(err, errPeerClosed):
		s.readEnd()
	case errors.Is(err, reliable.ErrBadFrame) || errors.Is(err, reliable.ErrFrameTooLarge):
		// netcode closes the session for it; its closing handshake reads
		// on to the peer's close, so that the peer is not reset with our
		// close frame unread.
		s.broken(err)
	default:
		s.readEnded(err)
		s.readEnd()
	}
}

// drain reads a server's frames after the session ended and our close
// frame went out, passing over data, until the peer's close frame (or the
// connection's end, or closeLinger): bytes left unread would make the
// kernel reset the connection, and the peer could lose our close frame.
func (s *Session) drain() {
	s.rdMu.Lock()
	defer s.rdMu.Unlock()
	_ = s.conn.SetReadDeadline(time.Now().Add(closeLinger))
	s.discard = true
	select {
	case <-s.readDone: // the peer's close came to a Read
	default:
		_ = s.readFrames()
		s.readEnd()
	}
}

// readFrames reads the client's frames, handing on each whole data
// message (messageIn) and answering control frames, until a reliable
// message was handed to Read (errReliable), the connection ends, or the
// peer closes or breaks the format (the error says which).
func (s *Session) readFrames() error {
	f := &s.fr
	if err := f.drop(&s.skip); err != nil {
		return err
	}
	// The longest message taken: a reliable one at the frame limit or a
	// datagram, with the channel byte; the channel's own limit is checked
	// once the message is whole.
	limit := uint64(1 + max(s.maxMessage, MaxDatagram))
	var header [14]byte
	for {
		if err := f.fill(2); err != nil {
			return err
		}
		b0, b1 := f.buf[f.r], f.buf[f.r+1]
		hl := 2
		switch b1 & 0x7F {
		case 126:
			hl += 2
		case 127:
			hl += 8
		}
		if b1&0x80 != 0 {
			hl += 4
		}
		if err := f.fill(hl); err != nil {
			return err
		}
		// The header stays unread until its payload is in too: a read
		// stopped meanwhile (by Close's deadline) leaves the reader at a
		// frame's start, where the closing handshake reads on.
		h := header[:copy(header[:], f.buf[f.r:f.r+hl])]
		n := uint64(b1 & 0x7F)
		switch n {
		case 126:
			n = uint64(binary.BigEndian.Uint16(h[2:]))
		case 127:
			n = binary.BigEndian.Uint64(h[2:])
		}
		op, fin := b0&0x0F, b0&finBit != 0
		control := op&0x8 != 0
		have := uint64(0) // of the message, in earlier frames
		frag := f.frag
		if frag {
			have = uint64(len(s.msg))
		}
		var bad error
		switch {
		case b0&0x70 != 0:
			bad = protocolError("a frame with reserved bits set")
		case b1&0x80 == 0:
			bad = protocolError("an unmasked frame from a client")
		case control && (op > opPong || !fin || n > 125):
			bad = protocolError(fmt.Sprintf("a bad control frame (opcode 0x%x)", op))
		case !control && op > opBinary:
			bad = protocolError(fmt.Sprintf("a reserved opcode 0x%x", op))
		case s.discard && !control:
		case op == opContinuation && !frag:
			bad = protocolError("a continuation frame outside a message")
		case (op == opText || op == opBinary) && frag:
			bad = protocolError("a new message inside a fragmented one")
		case op == opText:
			bad = fmt.Errorf("%w: websocket: a text message", reliable.ErrBadFrame)
		case !control && have+n > limit:
			if have == 0 && n > 0 {
				// A datagram's channel byte tells which limit it broke
				// (tooLong): wait for it, the header left unread.
				if err := f.fill(hl + 1); err != nil {
					return err
				}
			}
			f.r += hl
			s.skip = n
			return s.tooLong(have, n, h[hl-4:hl])
		}
		if bad != nil || (s.discard && !control) {
			// The frame is passed over whole, so that the closing
			// handshake after a breach reads on from the next one.
			f.r += hl
			s.skip = n
			if bad != nil {
				return bad
			}
			if err := f.drop(&s.skip); err != nil {
				return err
			}
			continue
		}
		if err := f.fill(hl + int(n)); err != nil {
			return err
		}
		p := f.buf[f.r+hl : f.r+hl+int(n)]
		f.r += hl + int(n)
		unmask(p, h[hl-4:hl])
		switch {
		case control:
			if err := s.controlIn(op, p); err != nil {
				return err
			}
		case fin && !frag:
			err := s.messageIn(p)
			f.shrink()
			if err != nil {
				return err
			}
		default:
			if !frag {
				s.msg = s.msg[:0]
			}
			s.msg = append(s.msg, p...)
			f.frag = !fin
			if fin {
				err := s.messageIn(s.msg)
				if cap(s.msg) > 2*messageChunk {
					s.msg = nil // a long message's buffer is not kept
				}
				f.shrink()
				if err != nil {
					return err
				}
			}
		}
	}
}

// tooLong is the error for a message over the limit: a datagram's, when
// its channel byte can be read (the message begins in this frame), or a
// reliable one's.
func (s *Session) tooLong(have, n uint64, key []byte) error {
	if have == 0 && n > 0 && s.fr.fill(1) == nil && s.fr.buf[s.fr.r]^key[0] == channelDatagram {
		return fmt.Errorf("%w: websocket: a datagram over %d bytes", reliable.ErrBadFrame, MaxDatagram)
	}
	return fmt.Errorf("%w: websocket: a message over %d bytes", reliable.ErrFrameTooLarge, s.maxMessage+1)
}

// unmask undoes the client's masking of p with key (RFC 6455 5.3).
func unmask(p, key []byte) {
	k := binary.LittleEndian.Uint32(key)
	k64 := uint64(k) | uint64(k)<<32
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, binary.LittleEndian.Uint64(p)^k64)
		p = p[8:]
	}
	for i := range p {
		p[i] ^= key[i&3]
	}
}

// messageIn handles one whole data message: the channel byte, then a
// reliable payload or one datagram.
func (s *Session) messageIn(m []byte) error {
	if len(m) == 0 {
		return fmt.Errorf("%w: websocket: an empty message", reliable.ErrBadFrame)
	}
	switch m[0] {
	case channelReliable:
		if len(m)-1 > s.maxMessage {
			return fmt.Errorf("%w: websocket: a message over %d bytes", reliable.ErrFrameTooLarge, s.maxMessage+1)
		}
		if s.fr.nowait {
			return s.pollReceived(m[1:])
		}
		s.received(m[1:])
		return errReliable
	case channelDatagram:
		if len(m)-1 > MaxDatagram {
			return fmt.Errorf("%w: websocket: a datagram over %d bytes", reliable.ErrBadFrame, MaxDatagram)
		}
		s.datagramIn(m[1:])
	default:
		return fmt.Errorf("%w: websocket: unknown channel 0x%02x", reliable.ErrBadFrame, m[0])
	}
	return nil
}

// datagramIn hands a datagram to the handler, or queues a copy for
// ReceiveDatagram (the reader).
func (s *Session) datagramIn(d []byte) {
	if f := s.handler.Load(); f != nil {
		(*f)(d)
		return
	}
	select {
	case s.dgrams <- append([]byte(nil), d...):
	default:
		s.datagramsDropped.Add(1) // no one reads them: drop, as UDP would
	}
}

// controlIn answers a control frame: a ping with its pong, the peer's
// close with ours (unless ours went first) and the session's end.
func (s *Session) controlIn(op byte, p []byte) error {
	switch op {
	case opPing:
		if s.poll != nil { // its poller's way, direct too: see pong
			s.ping, s.pingDue = append(s.ping[:0], p...), true
			return nil
		}
		return s.writeControl(opPong, p)
	case opClose:
		code, reason := websocket.StatusNoStatusRcvd, ""
		switch {
		case len(p) == 1:
			return protocolError("a close frame of one byte")
		case len(p) >= 2:
			code, reason = websocket.StatusCode(binary.BigEndian.Uint16(p)), string(p[2:])
		}
		ce := &transport.CloseError{Code: uint16(closeCode(code)), Reason: reason, Remote: true}
		s.pong()    // before our close
		s.wg.Add(1) // before the end, which a Wait may follow at once
		if !s.end(ce, false) {
			s.wg.Done()
			return errPeerClosed
		}
		var echo []byte // the status, if the peer sent one
		if len(p) >= 2 {
			echo = []byte{p[0], p[1]}
		}
		switch {
		case !s.fr.nowait:
			_ = s.writeControl(opClose, echo)
		case !s.tryControl(opClose, echo):
			// The poller must not wait for the socket: a goroutine of the
			// session's writes the echo, which the peer waits for to see
			// a clean close, for at most closeLinger.
			go func() {
				defer s.wg.Done()
				kill := time.AfterFunc(closeLinger, func() { _ = s.conn.Close() })
				defer kill.Stop()
				_ = s.writeControl(opClose, echo)
				_ = s.conn.Close()
			}()
			return errPeerClosed
		}
		_ = s.conn.Close()
		s.wg.Done()
		return errPeerClosed
	}
	return nil // a pong: the frame was heard, which is all it is for
}

// writeControl writes a control frame of a server session, whole, in one
// write; the connection keeps whole writes apart.
func (s *Session) writeControl(op byte, p []byte) error {
	b := make([]byte, serverHeader+len(p))
	copy(b[serverHeader:], p)
	start := putServerHeader(b, serverHeader, op, len(p))
	_, err := s.conn.Write(b[start:])
	return err
}

// closeFrame is a close frame's payload: the status for code, then the
// reason, cut to fit.
func closeFrame(code uint16, reason string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(closeStatus(code)))
	return append(b, closeReason(reason)...)
}

// serverPing pings the peer, taking the write turn when no one holds it
// (a writer that holds it is bounded by its own timeout); a ping the
// socket does not take within the idle timeout closes the session.
func (s *Session) serverPing() {
	taken, _ := s.turn.tryTake()
	if !taken {
		return
	}
	defer s.turn.give()
	guard := time.AfterFunc(s.idle, func() { _ = s.Close(uint16(reliable.CloseTimeout), "idle timeout: a ping not taken") })
	defer guard.Stop()
	_ = s.writeControl(opPing, nil)
}

// polledRead is Read on a session its listener's poller reads: it takes
// the reliable bytes the poller handed on, and has the poller read on
// once it is no longer behind.
//
// A Read with nothing to take means, most of the time, a busy stream:
// netcode's read loop parks on NotifyReadable instead while its stream is
// idle (other such Reads: the handshake's first, and one for the rest of
// a frame split across messages). Read then reads the socket itself
// (direct), as without a poller, until the loop parks (pollAgain): a
// request and its reply cost no hand-over from the poller's goroutine to
// the read loop's (on loopback, about a tenth of a bare WebSocket echo's
// round trip; BENCHMARKS.md). While direct, the socket is read only while
// Read is called, as a session without a poller is: a peer that leaves
// meanwhile is seen at the next Read.
func (s *Session) polledRead(p []byte) (int, error) {
	s.rmu.Lock()
	if !s.direct && s.roff == len(s.rbuf) && s.rerr == nil && !s.paused {
		s.direct = true
		s.poll.pause(s)
	}
	if s.direct {
		s.rmu.Unlock()
		n, err := s.readSelf(p)
		if err != nil {
			s.poll.remove(s) // reading ended, as pollRead's does
		}
		return n, err
	}
	defer s.rmu.Unlock()
	n, err := s.takeWhenReady(p)
	if err != nil {
		return n, err
	}
	if s.paused && len(s.rbuf)-s.roff < readBuffered/2 {
		s.paused = false
		s.stalled.Store(false)
		s.poll.resume(s)
	}
	return n, nil
}

// pollReceived hands a polled session's reliable bytes to Read (rdMu
// held), and wakes a reader that NotifyReadable parked. While Read is
// behind by readBuffered bytes, the poller stops reading the socket
// (errPaused), so that TCP's flow control holds the peer.
func (s *Session) pollReceived(p []byte) error {
	s.rmu.Lock()
	if s.rerr != nil {
		s.rmu.Unlock()
		return nil // closing: nothing more is read
	}
	if s.roff > 0 && s.roff >= len(s.rbuf)/2 { // each byte moves at most once
		s.rbuf = s.rbuf[:copy(s.rbuf, s.rbuf[s.roff:])]
		s.roff = 0
	}
	s.rbuf = append(s.rbuf, p...)
	s.rcond.Broadcast()
	readable := s.takeReadable()
	var err error
	if len(s.rbuf)-s.roff >= readBuffered {
		s.paused = true
		s.stalled.Store(true) // the peer is not silent: we are not listening
		s.poll.pause(s)
		err = errPaused
	}
	s.rmu.Unlock()
	readable()
	return err
}

// NotifyReadable implements transport.ReadNotifier on a session its
// listener's poller reads: netcode's read loop then ends while the stream
// is idle, and the poller starts it again (f) when reliable bytes come or
// the session ends. Other sessions say false: their Read reads.
func (s *Session) NotifyReadable(f func()) bool {
	if s.poll == nil {
		return false
	}
	s.rmu.Lock()
	if s.roff < len(s.rbuf) || s.rerr != nil {
		s.rmu.Unlock()
		return false
	}
	s.onReadable = f
	direct := s.direct
	s.rmu.Unlock()
	if direct {
		s.pollAgain()
	}
	return true
}

// pollAgain gives a direct session's socket back to the poller, which
// first parses what the buffer holds. The read loop's Read does not run
// (NotifyReadable's caller is Read's); a Read of a loop that the
// session's end started at once (calling f) returns that end. A closing
// handshake that began meanwhile keeps the socket, and the session has
// left the poller.
func (s *Session) pollAgain() {
	if s.endErr.Load() != nil {
		return // not to wait for rdMu behind the closing handshake
	}
	s.rdMu.Lock()
	if s.endErr.Load() == nil {
		s.fr.nowait = true
	}
	s.rdMu.Unlock()
	s.rmu.Lock()
	defer s.rmu.Unlock()
	// Read took all there was (NotifyReadable): nothing is behind, though
	// a round of the poller's that ran on as Read went direct may have
	// paused the session.
	s.direct, s.paused = false, false
	s.stalled.Store(false) // the poller listens
	s.poll.resume(s)
}

// pong answers the last ping of a poller's round, if one waits; and of a
// polled session's direct read, before it waits for the socket and when
// it returns (rdMu holder).
func (s *Session) pong() {
	if s.pingDue {
		s.pingDue = false
		s.tryControl(opPong, s.ping)
	}
}

// nowWriter writes a message in one system call if the socket takes it at
// once, never waiting (eorConn, on Linux).
type nowWriter interface {
	writeNow(p []byte) (sent, torn bool)
}

// tryControl writes a control frame (at most 125 bytes of payload) from
// the poller, which must not wait, if the socket takes it at once; it
// reports whether it did.
func (s *Session) tryControl(op byte, p []byte) bool {
	nw, ok := s.conn.(nowWriter)
	if !ok {
		return false
	}
	var b [serverHeader + 125]byte
	n := copy(b[serverHeader:], p)
	start := putServerHeader(b[:], serverHeader, op, n)
	sent, torn := nw.writeNow(b[start : serverHeader+n])
	if torn { // the socket is closed, and out of the poller's epoll instance
		s.readEnded(errors.New("a control frame's write was cut short"))
	}
	return sent
}

// stopPolling takes a session out of its poller for good, and returns
// once the poller is done with it: from then on, reads of the socket
// (the closing handshake's) wait for their bytes.
func (s *Session) stopPolling() {
	s.rmu.Lock()
	p := s.poll
	s.rmu.Unlock()
	if p == nil {
		return
	}
	p.remove(s)
	s.rdMu.Lock()
	s.fr.nowait = false
	s.rdMu.Unlock()
}
