package netcode_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/netcode/transport/impair"
)

// Over a real QUIC connection with 75 ms ± 10 ms each way (a 150 ms round
// trip): once the PING burst is answered, the clock estimate is within 5 ms
// of the server's clock (the same machine's: the truth is time.Now), and
// rendering 30 Hz snapshots at 60 frames a second seldom underruns.
func TestClockAndInterpolationAt150msRTT(t *testing.T) {
	tr := nt.Impaired(nt.Find("quic"), impair.Config{Seed: 5, Delay: 75 * time.Millisecond, Jitter: 10 * time.Millisecond})
	srv := nt.Server(t, tr, nil, nil)
	cl := nt.Client(t, tr, srv, nil)
	conn := srv.Conn(cl.ID())
	require.NotNil(t, conn)

	tickSnapshots(t, conn, time.Second/30)

	time.Sleep(2 * time.Second) // the PING burst and its PONGs; the delay settles
	before := cl.Stats()
	worst := time.Duration(0)
	frame := time.NewTicker(time.Second / 60)
	defer frame.Stop()
	for i := 0; i < 180; i++ {
		<-frame.C
		now := time.Now()
		_, ok := cl.Interpolate(now)
		require.True(t, ok)
		if i%10 == 0 {
			worst = max(worst, cl.ServerTime(now).Sub(now).Abs())
		}
	}
	st := cl.Stats()
	frames, underruns := st.InterpFrames-before.InterpFrames, st.InterpUnderruns-before.InterpUnderruns
	meanDelay := (st.InterpDelayTotal - before.InterpDelayTotal) / time.Duration(frames)
	t.Logf("clock error up to %v; %d of %d frames underran; mean delay %v, target %v",
		worst, underruns, frames, meanDelay, (st.InterpTargetTotal-before.InterpTargetTotal)/time.Duration(frames))
	require.LessOrEqual(t, worst, 5*time.Millisecond)
	require.LessOrEqual(t, underruns, frames/20, "the old server-clock render time underran nearly every frame at this latency")
	require.Less(t, meanDelay, 100*time.Millisecond)
}

// tickSnapshots sends conn a snapshot every period, its tick number as
// its data, as a server's tick loop would, until the test ends.
func tickSnapshots(t testing.TB, conn *netcode.Conn, every time.Duration) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(every)
		defer tk.Stop()
		for tick := uint32(1); ; tick++ {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			s := netcode.NewSnapshot(tick)
			s.Data = binary.BigEndian.AppendUint32(s.Data, tick)
			conn.SendSnapshot(s)
			s.Release()
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}
