//go:build !unix

package impair

// setSockopts does nothing where the socket options are not reachable: the
// rate cap still holds, with the system's buffers.
func setSockopts(uintptr, int, int) error { return nil }
