//go:build !linux

package websocket

import "net"

// withEOR returns c: only Linux needs MSG_EOR for TCP_NOTSENT_LOWAT to
// bound every write.
func withEOR(c net.Conn) net.Conn { return c }
