package websocket

// The server's side of RFC 6455 framing, written by hand for the hot path:
// a session accepted by a Listener writes its data messages as frames of its
// own, each in one write of the connection, so that a snapshot costs one
// system call and no more (the WebSocket library's writer locks, buffers and
// flushes for every message). The library still runs the opening handshake
// and the client's side, and writes nothing on a server's session after
// the handshake. Every frame reaches the connection whole, in one write,
// and the connection keeps whole writes apart, so frames written from
// several goroutines (a pong from the reader, a ping from the keep-alive
// timer, data under the turn) never interleave inside one.

// Opcodes and header bits of a frame (RFC 6455 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA

	finBit = 0x80
	// serverHeader is the longest header of a frame a server writes: no
	// masking key, a 64-bit length.
	serverHeader = 10
)

// putServerHeader writes the header of an unmasked, final frame of opcode
// op with an n-byte payload into b, ending at b[end], and returns where it
// begins; end must be at least serverHeader.
func putServerHeader(b []byte, end int, op byte, n int) int {
	switch {
	case n <= 125:
		b[end-2], b[end-1] = finBit|op, byte(n)
		return end - 2
	case n <= 0xFFFF:
		b[end-4], b[end-3], b[end-2], b[end-1] = finBit|op, 126, byte(n>>8), byte(n)
		return end - 4
	}
	b[end-10], b[end-9] = finBit|op, 127
	for i := 0; i < 8; i++ {
		b[end-1-i] = byte(uint64(n) >> (8 * i))
	}
	return end - 10
}
