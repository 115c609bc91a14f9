package netcode_test

import (
	"testing"

	"go.uber.org/goleak"

	nt "github.com/roomwire/roomwire/netcode/netcodetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, nt.GoleakOptions()...)
}
