// Package netcode is Roomwire's connection layer: socket.io's programming
// model (named events both ways, requests with replies, a private room per
// connection) over transports fit for real-time games, with the unreliable
// state a game needs beside it (inputs up, snapshots down, as sequenced
// datagrams that are dropped when stale and never waited for).
//
// A Server accepts connections on its transports (QUIC, KCP, WebSocket,
// WebTransport; package transport is the seam) and dispatches their events
// to handlers; a Client dials one server, by URL, falling back from one
// transport to the next. PROTOCOL.md specifies the wire.
//
// # Goroutines
//
// The server's CPU goes mostly to waking goroutines, so the hot paths wake
// none they can avoid:
//
//   - Each connection has a reader goroutine (serveConn) for its reliable
//     stream: it reads frames, runs their handlers one at a time and
//     writes their replies itself when no one else is writing. On a
//     transport that says when its stream is readable
//     (transport.ReadNotifier: every shipped transport), the reader
//     ends whenever the stream is idle, and the session starts a new one
//     when more comes, so an idle connection has no reader goroutine (on
//     QUIC and WebTransport, only the session's small one that waits to
//     read a byte ahead).
//   - Snapshots are encoded and sent on the goroutine that sends them,
//     usually a room's tick loop (Conn.SendSnapshotBatch), when the
//     transport can take them without blocking: on KCP into a Batch that
//     the tick flushes with one sendmmsg; on QUIC while fewer of the
//     connection's datagrams are unacknowledged than quic-go's queue holds,
//     so that its SendDatagram cannot block; on WebSocket while the kernel
//     holds nothing unsent. Otherwise they wait, one per connection (a
//     newer replaces an older), for the connection's datagram sender.
//   - The datagram sender and the writer (reliable frames that producers
//     other than the reader queue) run only while they have work; each ends
//     after 2 s without, so an idle connection has neither.
//   - On a transport that hands datagrams over on its own receive loop
//     (transport.DatagramHandler: KCP, WebSocket), inputs and acks are
//     handled right there. Unreliable events and copies of reliable frames,
//     whose handlers may block, go to a goroutine that runs only while some
//     wait. Input handlers therefore must not block. Elsewhere (QUIC) a
//     datagram reader runs for the connection's life.
//   - One housekeeping goroutine per server walks every connection each
//     second: the silence watch and ticket refresh of resumable ones, the
//     frame and write deadlines, and the trim of buffers an idle
//     connection need not hold. A connection keeps no timer of its own
//     for these.
//
// Every connection goroutine ends once the connection is closed and its
// session gone; Server.Close and Shutdown wait for them, and Close is
// idempotent. A Client has the same connection goroutines plus its clock
// loop, and handles datagrams on its datagram reader, where its snapshot
// handler may wait for the server.
package netcode
