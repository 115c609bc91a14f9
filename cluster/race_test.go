//go:build race

package cluster_test

// raceBuild: the race detector slows every goroutine several times over,
// so timing goals are checked in the build without it (make test runs
// TestDrainHandsRoomsOff there too).
const raceBuild = true
