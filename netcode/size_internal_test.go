package netcode

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// A server's Conn fits the runtime's 1 KiB size class: one byte more puts
// every connection in the next class (1 152 bytes), and an idle KCP
// session's whole cost is meant to stay under 8 KB. Fields a server's
// connection does not need belong elsewhere (clientStats, on the Client).
func TestConnFitsOneKiB(t *testing.T) {
	require.LessOrEqual(t, unsafe.Sizeof(Conn{}), uintptr(1024), "Conn grew past the 1 KiB size class")
}
