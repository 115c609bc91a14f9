// Package websocket is Roomwire's TCP transport: both channels of a
// connection over one WebSocket (RFC 6455, github.com/coder/websocket), for
// browsers and for networks that let no UDP through. A Listener is an
// http.Handler that the game server mounts at /ws on its HTTP side port, and
// a transport.Listener that netcode accepts sessions from; Dial connects a
// native client to ws:// or wss:// URLs.
//
// Wire format (PROTOCOL.md 12): the subprotocol is "roomwire.v1", which the
// client must offer. Every message is binary: one channel byte, then the
// payload. Channel 0x00 carries bytes of the reliable stream, whole frames
// (a receiver still reassembles by the frame header); channel 0x01 carries
// exactly one Roomwire datagram of at most 1200 bytes. A message over the
// limits (reliable: the frame limit + 5 bytes; datagram: 1201 bytes), a text
// message or another channel byte is a protocol error. A session closes with
// the WebSocket status 4000 + the Roomwire close code and the close reason.
//
// Delivery on TCP: datagrams share the one stream with reliable bytes, so the
// session makes them behave as datagrams as far as TCP allows. Messages are
// written one at a time, reliable ones first; a datagram is written only by
// its sender's goroutine and only while the socket takes it, so a sender
// blocks while the path is slower than its traffic and the queue above it
// (netcode keeps at most one snapshot per connection, a newer replacing an
// unsent older) absorbs the difference. TCP_NOTSENT_LOWAT (Config.NotSentLowat,
// Linux and macOS) and, on Linux, MSG_EOR on every write keep the kernel
// from holding more than one message unsent, so no backlog of snapshots
// builds there either.
//
// Who frames what: the library runs the opening handshake on both sides and
// all of a client's framing. A session the Listener accepted reads and writes
// its frames itself (frame.go, serverread.go): the hot path of a server is a
// snapshot out and an input in per member and tick, and by hand each is one
// system call and a header, with no lock, buffer or flush of the library's.
// On a plain TCP socket under TCP_NOTSENT_LOWAT 1, a snapshot's write is
// simply refused while the kernel holds anything unsent, so the sender needs
// no probe of the socket first.
//
// Goroutines: a client's session owns one reader goroutine, which
// demultiplexes the channels (reliable bytes into a bounded buffer that Read
// drains, datagrams into a queue that drops when full, as a UDP socket would
// — or to the DatagramHandler), answers pings and ends with the connection. A
// server's session has none. On Linux, the plain TCP sockets of a
// Listener's sessions are read by its poll loops (poll_linux.go: one per
// processor, each running while it has sessions): one read per socket with
// bytes, datagrams handed to the handler and pings answered inline, reliable
// bytes into the bounded buffer that Read drains (the loop stops reading a
// socket while Read is behind, and a reader parked by NotifyReadable is
// started again when bytes come). While a session's stream is busy (Read
// is called with nothing to take, so netcode's read loop did not park),
// the socket leaves its poll loop and Read reads it itself, as below,
// until the read loop parks again. Under TLS, elsewhere, or with
// Config.ReaderPerSession, Read's caller (netcode's read loop) reads the
// socket itself, handling datagrams and control frames inline until a
// reliable message comes, so that a message wakes one goroutine, not two;
// its datagrams and pongs are read only while Read is called. A keep-alive
// timer pings a silent peer. Writes run
// on the caller's goroutine (netcode's writer, datagram sender and a room's
// ticker), one at a time. Close starts a closing
// goroutine that writes the close frame and waits a moment for the peer's
// (the WebSocket closing handshake; on a server it reads the socket to the
// peer's end itself, having made a Read in the socket return), then
// releases the connection; Wait waits
// for both. Read and Write may be called concurrently, and so may
// SendDatagram and ReceiveDatagram; Close is safe at any time, more than once.
package websocket

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/roomwire/roomwire/reliable"
	"github.com/roomwire/roomwire/unreliable"
)

// Subprotocol is the WebSocket subprotocol a client must offer and the
// server selects: the protocol and its version. It is not QUIC's ALPN,
// "roomwire/1": a subprotocol must be an HTTP token, which "/" may not be
// in, and a browser's WebSocket constructor throws on it.
const Subprotocol = "roomwire.v1"

// The channel bytes that begin every message.
const (
	channelReliable byte = 0x00
	channelDatagram byte = 0x01
)

// MaxDatagram is the largest Roomwire datagram on WebSocket, which a
// server's WELCOME announces; its message is one byte longer.
const MaxDatagram = unreliable.MaxDatagram

// Defaults of Config.
const (
	defaultIdleTimeout  = 15 * time.Second
	defaultNotSentLowat = 1
	defaultBacklog      = 1024
)

// Fixed sizes of the implementation.
const (
	// messageChunk is the most reliable bytes the Go sender puts in one
	// message: whole frames up to it, a longer frame alone.
	messageChunk = 16 << 10
	// readyWrite is the longest reliable write WriteReady lets a caller
	// make inline: with its channel byte and a client's 8-byte header it
	// fits the WebSocket library's 4 KiB write buffer, so it is one
	// system call, which the kernel takes whole when it holds nothing
	// unsent, whatever the peer's window.
	readyWrite = 4096 - 1 - 8
	// readBuffered is how many received reliable bytes wait for Read
	// before the reader stops reading, so that TCP's flow control holds a
	// peer whose frames are not consumed.
	readBuffered = 64 << 10
	// datagramQueue is how many received datagrams wait for
	// ReceiveDatagram; more are dropped, as a UDP socket would.
	datagramQueue = 128
	// closeLinger bounds the closing handshake: the close frame's write
	// and the wait for the peer's.
	closeLinger = time.Second
	// writeErrWait bounds how long a failed write waits for the reader to
	// learn why the connection ended.
	writeErrWait = 200 * time.Millisecond
)

// Config tunes the transport. The zero value works; a Listener should have
// Addr.
type Config struct {
	// Addr is the address of the HTTP server a Listener is mounted on, such
	// as "127.0.0.1:8080": Listener.Addr reports it. Dial ignores it.
	Addr string
	// Origins are the page origins whose scripts may connect, each as a
	// browser sends it ("https://game.example.com", "http://127.0.0.1:8080":
	// scheme, host and port), compared exactly but for case. A request
	// without an Origin header (a native client) is always accepted. Empty
	// means no page may connect. Listener only.
	Origins []string
	// Plain says when a Listener accepts plain ws://, without TLS on the
	// connection. The zero value, PlainLoopback, accepts it only on a
	// connection to a loopback address (a listener on 127.0.0.1, a client
	// on the same machine, or a TLS-terminating proxy there); the listener
	// logs at start that it does.
	Plain PlainPolicy
	// MaxFrame is the largest reliable frame body accepted, as netcode's
	// Config.MaxFrame; a reliable message longer than MaxFrame + 5 bytes
	// closes the session (frame too large). Zero means
	// reliable.DefaultMaxFrame (64 KiB).
	MaxFrame int
	// IdleTimeout closes a session that receives nothing, not even a pong,
	// for this long (close code 10, locally); a ping goes out after a third
	// of it without anything received. Zero means 15 seconds.
	IdleTimeout time.Duration
	// NotSentLowat is the TCP_NOTSENT_LOWAT set on each connection (Linux
	// and macOS): the socket takes a write only while fewer bytes than this
	// wait unsent in the kernel, so a datagram sender blocks instead of
	// building a backlog there (on Linux every write also ends its own
	// buffer, MSG_EOR, so no write slips in beside an unsent one). Zero
	// means 1: a write waits until the kernel has sent everything before
	// it, so at most one message waits there unsent. Bytes in flight are
	// not counted: throughput does not suffer. Negative leaves the
	// system's default, which lets megabytes wait.
	NotSentLowat int
	// Backlog is how many upgraded sessions may wait for Accept; one beyond
	// it is closed with code 6, "server busy: accept queue full". Zero
	// means 1024. Listener only.
	Backlog int
	// TLS configures wss:// for Dial; nil verifies the server against the
	// system roots by the URL's host name. A Listener gets TLS from the HTTP
	// server it is mounted on.
	TLS *tls.Config
	// LocalAddr is the TCP address Dial connects from, such as
	// "127.0.0.5:0". Empty lets the system choose. Load tests on one
	// machine spread their bots over loopback addresses with it, so that
	// per-address limits see them apart.
	LocalAddr string
	// NetDial, if set, makes the connection Dial runs over (TLS then goes
	// over it for wss://), in place of a net.Dialer from LocalAddr, which
	// it then ignores: load tests and tests use it to dial through an
	// impaired connection. A connection it returns that is not a
	// *net.TCPConn gets no MSG_EOR writes, nor TCP_NOTSENT_LOWAT unless it
	// is a syscall.Conn. Dial only.
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// ReaderPerSession has each session a Listener accepted read by its
	// Read's caller (netcode's read loop, a goroutine per connection), as
	// on systems other than Linux and under TLS. By default, on Linux, the
	// listener's poll loops (one per processor) read the plain TCP sockets
	// of all its sessions, which costs an input no goroutine wake-up of its
	// own. Listener only.
	ReaderPerSession bool
	// Logger receives a Listener's refusals (the browser sees only "the
	// opening handshake failed", so the cause is logged here) and its
	// warning about plain ws://. Nil discards.
	Logger *slog.Logger
}

func (c *Config) populate() {
	if c.MaxFrame <= 0 {
		c.MaxFrame = reliable.DefaultMaxFrame
	}
	c.MaxFrame = min(c.MaxFrame, reliable.MaxFrameLimit)
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = defaultIdleTimeout
	}
	if c.NotSentLowat == 0 {
		c.NotSentLowat = defaultNotSentLowat
	}
	if c.Backlog <= 0 {
		c.Backlog = defaultBacklog
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// PlainPolicy says when a Listener accepts ws:// without TLS.
type PlainPolicy uint8

const (
	// PlainLoopback accepts plain ws:// only on connections to a loopback
	// address.
	PlainLoopback PlainPolicy = iota
	// PlainAlways accepts plain ws:// from anywhere: for a listener behind
	// a TLS-terminating proxy on another machine, or a trusted network.
	PlainAlways
	// PlainNever accepts only connections with TLS (wss://).
	PlainNever
)

func (p PlainPolicy) String() string {
	switch p {
	case PlainLoopback:
		return "loopback"
	case PlainAlways:
		return "always"
	case PlainNever:
		return "never"
	}
	return "PlainPolicy(" + strconv.Itoa(int(p)) + ")"
}

// maxCloseReason is the longest reason a WebSocket close frame carries
// (125 bytes of control payload less the status).
const maxCloseReason = 123

// closeStatus is the WebSocket close status for a Roomwire close code: 4000
// + code, for the codes 0 to 999 it can carry; an internal error for
// others.
func closeStatus(code uint16) websocket.StatusCode {
	if code > 999 {
		code = uint16(reliable.CloseInternal)
	}
	return websocket.StatusCode(4000 + int(code))
}

// closeCode is the Roomwire close code a WebSocket close status stands for:
// 4000 + code, or the nearest meaning of one of RFC 6455's statuses.
func closeCode(st websocket.StatusCode) reliable.CloseCode {
	switch {
	case st >= 4000 && st <= 4999:
		return reliable.CloseCode(st - 4000)
	case st == websocket.StatusNormalClosure, st == websocket.StatusNoStatusRcvd:
		return reliable.CloseNormal
	case st == websocket.StatusGoingAway:
		return reliable.CloseGoingAway
	case st == websocket.StatusMessageTooBig:
		return reliable.CloseFrameTooLarge
	case st == websocket.StatusProtocolError, st == websocket.StatusUnsupportedData,
		st == websocket.StatusInvalidFramePayloadData, st == websocket.StatusPolicyViolation:
		return reliable.CloseProtocolError
	}
	return reliable.CloseInternal
}

// closeReason is reason cut to what a close frame carries, at a UTF-8
// boundary; the CLOSE frame before it carries the whole reason.
func closeReason(reason string) string {
	if len(reason) <= maxCloseReason {
		return reason
	}
	n := maxCloseReason
	for n > 0 && reason[n]&0xc0 == 0x80 { // a continuation byte
		n--
	}
	return reason[:n]
}

// isLoopback reports whether a is a loopback IP address.
func isLoopback(a net.Addr) bool {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case nil:
		return false
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
