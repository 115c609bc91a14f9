package kcp

import (
	"testing"

	"go.uber.org/goleak"
)

// IgnoreKCPScheduler lists kcp-go's process-wide scheduler goroutines, which
// it starts when the program loads and never stops.
var ignoreKCPScheduler = []goleak.Option{
	goleak.IgnoreTopFunction("github.com/xtaci/kcp-go/v5.(*TimedSched).sched"),
	goleak.IgnoreTopFunction("github.com/xtaci/kcp-go/v5.(*TimedSched).prepend"),
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, ignoreKCPScheduler...)
}
