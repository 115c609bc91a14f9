//go:build !linux && !darwin

package websocket

import "errors"

// setNotSentLowat reports that the system has no TCP_NOTSENT_LOWAT: the
// kernel's send buffer alone bounds what waits unsent.
func setNotSentLowat(uintptr, int) error { return errors.ErrUnsupported }
