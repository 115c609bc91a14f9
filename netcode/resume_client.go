package netcode

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/netcode/transport/kcp"
	"github.com/roomwire/roomwire/reliable"
)

type dialTokenKey struct{}

// DialToken is the connect token a ClientConfig.Dial must present on a
// transport with a token handshake of its own (KCP): the client's token,
// or, when it resumes, the resume ticket the server gave it.
func DialToken(ctx context.Context) *token.ConnectToken {
	t, _ := ctx.Value(dialTokenKey{}).(*token.ConnectToken)
	return t
}

// dialToken is the token a dial presents now.
func (c *Client) dialToken() *token.ConnectToken {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.ticket != nil && c.isAway.Load() {
		return c.ticket
	}
	return c.cfg.Token
}

// askResume asks the server for resume, keeping every frame from the
// request on until the server acknowledges it (the grant enables that).
func (c *Client) askResume() {
	b, ok := c.out.begin()
	if !ok {
		return
	}
	c.res.start(c.out.frames)
	b, err := reliable.AppendEvent(b, resumeName, nil)
	if err != nil {
		c.out.abort()
		return
	}
	_ = c.enqueued(c.out.end(b))
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.watchLoop()
	}()
}

// granted takes the server's $resume event: its window and a new ticket.
func (c *Client) granted(p []byte) {
	if len(p) < 4 || c.res == nil {
		return
	}
	tok := new(token.ConnectToken)
	if err := tok.UnmarshalBinary(p[4:]); err != nil {
		c.log.Info("bad resume ticket", "err", err)
		return
	}
	c.mu.Lock()
	c.ticket, c.window = tok, time.Duration(binary.BigEndian.Uint32(p))*time.Millisecond
	c.mu.Unlock()
	c.res.enabled.Store(true)
}

// watchLoop finds a dead transport: it probes with a PING when nothing
// came for a while and keeps alive when nothing went (liveness), and after
// deadAfter without anything received it closes the transport, which sends
// the reader to awaitResume. Each second it also lets idle buffers go
// (trim), as the server's housekeeping does.
func (c *Client) watchLoop() {
	t := time.NewTicker(probeAfter / 2)
	defer t.Stop()
	var lastIn, lastOut uint64
	var inAt, outAt, pingAt, trimAt time.Time
	inAt, outAt = time.Now(), time.Now()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		if now.Sub(trimAt) >= time.Second {
			trimAt = now
			c.trim(now)
		}
		if c.isAway.Load() || !c.res.on() {
			inAt, outAt = now, now
			continue
		}
		heard, probe, keep := liveness(c.session(), c.res.waiting())
		in := c.stats.bytesReceived.Load() + c.stats.datagramsReceived.Load() + heard
		out := c.stats.bytesSent.Load() + c.stats.datagramsSent.Load()
		if in != lastIn {
			lastIn, inAt = in, now
		}
		if out != lastOut {
			lastOut, outAt = out, now
		}
		switch {
		case now.Sub(inAt) >= deadAfter:
			c.dropTransport(CloseTimeout, "no answer")
			inAt = now
		case (now.Sub(inAt) >= probe || now.Sub(outAt) >= keep) && now.Sub(pingAt) >= probe:
			pingAt = now
			if b, ok := c.out.begin(); ok {
				_ = c.enqueued(c.out.end(reliable.AppendPing(b, uint64(now.UnixNano()))))
			}
		}
	}
}

// awaitResume runs on the reader goroutine once the transport failed: it
// dials again, with backoff, until a RESUME is answered, refused, or the
// window passes.
func (c *Client) awaitResume(cause error) (*reliable.Reader, uint32, bool) {
	c.isAway.Store(true)
	c.goAway()
	c.mu.RLock()
	h, window := c.onAway, c.window
	c.mu.RUnlock()
	if h != nil {
		c.call(func() { h(cause) })
	}
	deadline := time.Now().Add(window)
	wait := backoffMin
	hops := 0
	for {
		if c.closeErr.Load() != nil {
			return nil, 0, false
		}
		if time.Now().After(deadline) {
			c.close(&CloseError{Code: CloseExpired, Reason: fmt.Sprintf("session expired: not resumed within %v", window)})
			return nil, 0, false
		}
		r, first, err := c.tryResume(min(time.Until(deadline), 2*time.Second))
		if err == nil {
			c.isAway.Store(false)
			c.mu.RLock()
			h := c.onBack
			c.mu.RUnlock()
			if h != nil {
				c.call(h)
			}
			return r, first, true
		}
		var ce *CloseError
		if errors.As(err, &ce) && ce.Remote && ce.Code == CloseMoved && hops < maxMoves {
			// Handed off, and the $moved that said where was lost with
			// the transport: the old server says it.
			hops++
			c.setMoveTo(ce.Reason)
			continue
		}
		if errors.As(err, &ce) && ce.Remote { // the server's answer is final
			if strings.HasPrefix(ce.Reason, reasonUnknownSession) {
				ce = &CloseError{Code: CloseExpired, Reason: "session expired: the server no longer has it", Remote: true}
			}
			c.close(ce)
			return nil, 0, false
		}
		c.log.Debug("resume attempt failed", "err", err)
		jitter := time.Duration(rand.Int64N(int64(wait) / 2))
		select {
		case <-c.ctx.Done():
			return nil, 0, false
		case <-time.After(wait/2 + jitter):
		}
		wait = min(2*wait, backoffMax)
	}
}

// maxMoves bounds the handoff redirects one resume follows.
const maxMoves = 4

// setMoveTo records where a handoff sent the session: redials go there.
func (c *Client) setMoveTo(urls string) {
	c.mu.Lock()
	c.moveTo = urls
	c.mu.Unlock()
}

// resumeURL is what a redial dials: where a handoff sent the session, or
// what Connect was given.
func (c *Client) resumeURL() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.moveTo != "" {
		return c.moveTo
	}
	return c.url
}

// tryResume dials once and sends RESUME; on RESUMED it moves the client to
// the new transport and returns its reader and the number of the server's
// first frame on it.
func (c *Client) tryResume(limit time.Duration) (*reliable.Reader, uint32, error) {
	ctx, cancel := context.WithTimeout(c.ctx, limit)
	defer cancel()
	sess, scheme, err := c.dialRace(ctx)
	if err != nil {
		return nil, 0, err
	}
	fail := func(err error) (*reliable.Reader, uint32, error) {
		_ = sess.Close(uint16(CloseNormal), "resume failed")
		if w, ok := sess.(interface{ Wait() }); ok {
			w.Wait()
		}
		return nil, 0, err
	}
	r := reliable.NewReader(sessCounter{sess, &c.peer}, c.cfg.MaxFrame)
	stop := context.AfterFunc(ctx, func() { _ = sess.Close(uint16(CloseNormal), "resume timed out") })
	defer stop()
	var challenge []byte
	if _, ok := sess.(transport.Challenged); ok {
		f, err := r.Next()
		if err != nil {
			return fail(answerError(err))
		}
		if f.Type != reliable.FrameChallenge {
			return fail(c.firstFrameError(f, "CHALLENGE"))
		}
		challenge = append([]byte(nil), f.Payload...)
	}
	var auth []byte
	if _, isKCP := sess.(*kcp.Session); !isKCP {
		c.mu.RLock()
		tok := c.ticket
		c.mu.RUnlock()
		if auth, err = tokenAuth(tok, sess, challenge, nil); err != nil {
			return fail(err)
		}
	}
	received := c.seq.nextNum()
	b, err := reliable.AppendResume(nil, reliable.Version, c.id, received, auth)
	if err != nil {
		return fail(err)
	}
	if _, err := sess.Write(b); err != nil {
		return fail(err)
	}
	f, err := r.Next()
	if err != nil {
		return fail(answerError(err))
	}
	if f.Type != reliable.FrameResumed {
		return fail(c.firstFrameError(f, "RESUMED"))
	}
	if !stop() {
		return fail(ctx.Err())
	}
	if err := c.switchTo(sess, nil, f.Received); err != nil {
		return fail(&CloseError{Code: CloseProtocolError, Reason: "server asks for frames no longer held"})
	}
	c.setMaxDatagram(f.MaxDatagram)
	c.transport.Store(&scheme)
	// The frames already read with r stay in its buffer: it is the
	// connection's reader from now on.
	return r, received, nil
}

// dialed is the outcome of one of dialRace's dials.
type dialed struct {
	sess   transport.Session
	scheme string
	err    error
}

// dialRace dials the client's URLs for a resume, and while no dial has
// connected, starts another on fresh sockets every raceEvery, up to
// raceDials at once. A handshake that began in the dark retransmits on a
// doubling timer (QUIC's Initial at 0.2, 0.6 and 1.4 s), so a lone dial
// would connect up to 0.8 s after the network is back; a fresh one is at
// most raceEvery away. The first to connect wins; the others are cancelled,
// and closed should they connect too.
func (c *Client) dialRace(ctx context.Context) (transport.Session, string, error) {
	dctx, cancel := context.WithCancel(ctx)
	results := make(chan dialed, raceDials)
	running := 0
	start := func() {
		if c.spawn(func() {
			s, scheme, err := c.dialAny(dctx, c.resumeURL())
			results <- dialed{s, scheme, err}
		}) {
			running++
		}
	}
	start()
	tick := time.NewTicker(raceEvery)
	defer tick.Stop()
	var firstErr error
	for running > 0 {
		select {
		case d := <-results:
			running--
			if d.err != nil {
				if firstErr == nil {
					firstErr = d.err
				}
				continue
			}
			cancel()
			if running > 0 && !c.spawn(func() { closeLosers(results, running) }) {
				closeLosers(results, running)
			}
			return d.sess, d.scheme, nil
		case <-tick.C:
			if running < raceDials {
				start()
			}
		}
	}
	cancel()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return nil, "", firstErr
}

// closeLosers closes the sessions the n dials still running connect, once
// they end (their context is cancelled).
func closeLosers(results <-chan dialed, n int) {
	for range n {
		if d := <-results; d.err == nil {
			_ = d.sess.Close(uint16(CloseNormal), "another dial won")
			if w, ok := d.sess.(interface{ Wait() }); ok {
				w.Wait()
			}
		}
	}
}

// answerError is what a resume attempt learns from a failed read: a
// transport the server closed with a code (its refusal's CLOSE frame
// overtaken by the close itself) is the server's final answer, as the
// frame would have been.
func answerError(err error) error {
	if ce, ok := transport.AsCloseError(err); ok && ce.Remote {
		return &CloseError{Code: CloseCode(ce.Code), Reason: ce.Reason, Remote: true}
	}
	return err
}

// firstFrameError is what a resume attempt learns from an unexpected first
// frame: a CLOSE is the server's final answer.
func (c *Client) firstFrameError(f reliable.Frame, want string) error {
	if f.Type == reliable.FrameClose {
		return &CloseError{Code: f.Code, Reason: string(f.Payload), Remote: true}
	}
	return fmt.Errorf("first frame is %s, want %s", f.Type, want)
}

// sessCounter reads one transport session, counting the bytes as the
// connection's.
type sessCounter struct {
	s transport.Session
	p *peer
}

func (r sessCounter) Read(b []byte) (int, error) {
	n, err := r.s.Read(b)
	r.p.stats.bytesReceived.Add(uint64(n))
	return n, err
}
