package loadtest

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Percentiles of a latency distribution, in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90,omitempty"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max,omitempty"`
}

// Report is a run's result; its JSON form is the bot client's -json output.
type Report struct {
	Transport string `json:"transport"`
	Bots      int    `json:"bots"`
	Connected int    `json:"connected"`
	Failed    int    `json:"failed"`
	// ConnectRetries counts connects tried again after the server refused
	// for being busy (netcode.IsBusy), after a short random wait.
	ConnectRetries    int64       `json:"connect_retries"`
	DurationSeconds   float64     `json:"duration_s"`
	EventsSent        int64       `json:"events_sent"`
	EventsAcked       int64       `json:"events_acked"`
	RTT               Percentiles `json:"rtt_ms"`
	SnapshotsReceived int64       `json:"snapshots_received"`
	SnapshotsExpected int64       `json:"snapshots_expected"`
	SnapshotGap       Percentiles `json:"snapshot_gap_ms"`
	// LongestGap is, over the bots, each one's longest wait between two
	// snapshots while in its room: a room's handoff to another node, or a
	// blackout, as the player sees it.
	LongestGap Percentiles `json:"longest_gap_ms"`
	// Rejoined counts the times a bot connected and joined again after
	// losing its connection (Config.Rejoin); RejoinAfter is the time from
	// a loss to the bot's first snapshot after it, RejoinCount how many
	// losses ended in one.
	Rejoined      int64       `json:"rejoined,omitempty"`
	RejoinAfter   Percentiles `json:"rejoin_ms"`
	RejoinCount   int64       `json:"rejoin_count,omitempty"`
	BytesSent     uint64      `json:"bytes_sent"`
	BytesReceived uint64      `json:"bytes_received"`
	// InterpFrames counts frames the bots rendered at 60 per second with
	// Client.Interpolate; InterpUnderruns those with no snapshot after the
	// render time, InterpUnderrunPercent the same as a percentage of
	// InterpFrames.
	InterpFrames uint64 `json:"interp_frames"`
	// FramesSkipped counts the bots' frames (each with the input and the
	// interpolation due in it) that their process was too busy to run in
	// time: a load generator short of CPU, whose figures then say more
	// about itself than about the server.
	FramesSkipped uint64 `json:"frames_skipped"`
	// MachineStealPercent is the share of the machine's CPU time that its
	// virtual machine's host gave other guests during the run, in percent
	// (Linux's steal time; 0 elsewhere). A few percent is common on shared
	// hosts; tens of percent make bots and a server on the same machine
	// late for reasons of neither.
	MachineStealPercent   float64 `json:"machine_steal_pct"`
	InterpUnderruns       uint64  `json:"interp_underruns"`
	InterpUnderrunPercent float64 `json:"interp_underrun_pct"`
	// InterpDelayMean is the mean, in milliseconds, of the Delay of every
	// Interpolation the bots' Client.Interpolate returned, negative values
	// (an underrun's) included. InterpDelay are its percentiles, with
	// negative values counted as 0.
	InterpDelayMean float64     `json:"interp_delay_mean_ms"`
	InterpDelay     Percentiles `json:"interp_delay_ms"`
	// TickRate is the rooms' tick (snapshot) rate in Hz from the join
	// replies, the highest if they differ; zero if no bot joined.
	TickRate int `json:"tick_rate"`
	// InputsSent counts the inputs the bots' Client.SendInput accepted, to
	// compare with what the server handed to the game (its
	// Metrics.InputsReceived).
	InputsSent int64 `json:"inputs_sent"`
	// KbpsDown and KbpsUp are the payload bandwidth per bot, in kbit/s:
	// BytesReceived and BytesSent over the seconds the bots were
	// connected, summed.
	KbpsDown float64 `json:"kbps_down_per_bot"`
	KbpsUp   float64 `json:"kbps_up_per_bot"`
	// BotSeconds is the seconds the bots were connected, summed: the
	// denominator of KbpsDown and KbpsUp.
	BotSeconds float64 `json:"bot_seconds"`
	// SnapshotsUndecodable counts deltas whose baseline a bot lacked.
	SnapshotsUndecodable uint64 `json:"snapshots_undecodable"`
	// Resumed counts the times a bot's client resumed its session on a new
	// transport after losing one (netcode's Client.OnBack), over all bots.
	Resumed int64 `json:"resumed"`
	// Away counts the times a bot's client lost its transport and began to
	// resume (Client.OnAway), over all bots: each is followed by a resume
	// (Resumed) or the end of the connection.
	Away int64 `json:"away"`
	// Expired counts the bots whose connection ended because the server
	// let their session expire while they were away (netcode.IsExpired).
	Expired int64 `json:"expired"`
	// Blackouts counts the bots' dark windows (Config.Blackout) that ended
	// while the bot was in its room, over all bots.
	Blackouts int64 `json:"blackouts"`
	// SnapshotResume is, over those blackouts, the time from the end of
	// the dark window (the bot's network lit again) to the first snapshot
	// the bot received after it; SnapshotResumeCount how many blackouts
	// were followed by one before the next ended or the bot stopped.
	// ResumeAfter is the time from the end of the dark window to the
	// client's resume (OnBack), ResumeCount how many blackouts ended in
	// one: a transport that lived through a short blackout needs none.
	SnapshotResume      Percentiles `json:"snapshot_resume_ms"`
	SnapshotResumeCount int64       `json:"snapshot_resume_count"`
	ResumeAfter         Percentiles `json:"resume_ms"`
	ResumeCount         int64       `json:"resume_count"`
	// HistoryChecked counts the history echoes the bots checked
	// (Config.History); HistoryViolations those that broke exactly-once,
	// in-order delivery, plus the counters never echoed: the sum of
	// HistoryLost, HistoryDuplicated and HistoryReordered. Zero violations
	// mean something only with HistoryChecked well above zero.
	HistoryChecked    uint64 `json:"history_checked"`
	HistoryViolations uint64 `json:"history_violations"`
	// HistoryLost counts counters emitted and never echoed,
	// HistoryDuplicated echoes of a counter echoed before (or never
	// emitted), HistoryReordered echoes that came after a higher counter's.
	HistoryLost       uint64   `json:"history_lost"`
	HistoryDuplicated uint64   `json:"history_duplicated"`
	HistoryReordered  uint64   `json:"history_reordered"`
	Errors            []string `json:"errors"`
	// Soak is the server's runtime over the run, when it was sampled.
	Soak *Soak `json:"soak,omitempty"`

	// ConnectTime is, over the bots' connections, the time from the start
	// of the dial (busy retries included) to the join's reply, in
	// milliseconds; for idle bots, to connected. ConnectHistogram is its
	// distribution.
	ConnectTime      Percentiles `json:"connect_ms"`
	ConnectHistogram []Bucket    `json:"connect_histogram"`
	// RTTHistogram is the distribution of RTT, the ping round trips;
	// SnapshotGapHistogram that of SnapshotGap, the waits between two
	// snapshots of a bot.
	RTTHistogram         []Bucket `json:"rtt_histogram"`
	SnapshotGapHistogram []Bucket `json:"snapshot_gap_histogram"`
	// Series is the run second by second: round trips, snapshots,
	// bandwidth, underruns and loss (see Second).
	Series []Second `json:"series"`
	// Rooms is each room's snapshot delivery, in the order of the rooms'
	// names.
	Rooms []RoomDelivery `json:"rooms"`
	// Profiles is each network profile's figures (Config.Networks), in
	// the order of the profiles; empty without them.
	Profiles []ProfileFigures `json:"profiles,omitempty"`
}

func (r *run) report(elapsed time.Duration) Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := Report{
		Transport:         r.transports(),
		Bots:              r.cfg.Bots,
		Connected:         int(r.connected.Load()),
		Failed:            int(r.failed.Load()),
		ConnectRetries:    r.connectRetries.Load(),
		DurationSeconds:   math.Round(elapsed.Seconds()*100) / 100,
		EventsSent:        r.eventsSent.Load(),
		EventsAcked:       r.eventsAckd.Load(),
		RTT:               percentiles(r.rtt, true),
		SnapshotsReceived: r.snapshots.Load(),
		SnapshotsExpected: int64(math.Round(r.expected)),
		SnapshotGap:       percentiles(r.gap, false),
		LongestGap:        percentiles(r.longest, true),
		Rejoined:          r.rejoins.Load(),
		RejoinAfter:       percentiles(r.rejoinBack, true),
		RejoinCount:       r.rejoinBack.TotalCount(),
		BytesSent:         r.bytesSent,
		BytesReceived:     r.bytesRecv,
		InterpFrames:      r.frames,
		FramesSkipped:     r.clock.skipped(),

		MachineStealPercent: stealPercent(r.cpuStart, readCPUTimes()),
		InterpUnderruns:     r.underruns,
		InterpDelay:         percentiles(r.delay, true),
		TickRate:            r.tickRate,
		InputsSent:          r.inputsSent.Load(),

		SnapshotsUndecodable: r.undecod,
		Resumed:              r.resumed.Load(),
		Away:                 r.away.Load(),
		Expired:              r.expired.Load(),
		Blackouts:            r.blackouts,
		SnapshotResume:       percentiles(r.snapBack, true),
		SnapshotResumeCount:  r.snapBack.TotalCount(),
		ResumeAfter:          percentiles(r.resBack, true),
		ResumeCount:          r.resBack.TotalCount(),
		HistoryChecked:       r.hist.Checked,
		HistoryViolations:    r.hist.violations(),
		HistoryLost:          r.hist.Lost,
		HistoryDuplicated:    r.hist.Duplicated,
		HistoryReordered:     r.hist.Reordered,
		Errors:               []string{},
	}
	if r.frames > 0 {
		rep.InterpUnderrunPercent = round2(100 * float64(r.underruns) / float64(r.frames))
	}
	if r.delayN > 0 {
		rep.InterpDelayMean = round2(r.delaySum / float64(r.delayN) / float64(time.Millisecond))
	}
	rep.BotSeconds = round2(r.botSecs)
	if r.botSecs > 0 {
		rep.KbpsDown = round2(float64(r.bytesRecv) * 8 / 1000 / r.botSecs)
		rep.KbpsUp = round2(float64(r.bytesSent) * 8 / 1000 / r.botSecs)
	}
	rep.ConnectTime = percentiles(r.connect, true)
	rep.ConnectHistogram = buckets(r.connect)
	rep.RTTHistogram = buckets(r.rtt)
	rep.SnapshotGapHistogram = buckets(r.gap)
	rep.Series = slices.Clone(r.series)
	if rep.Series == nil {
		rep.Series = []Second{}
	}
	rep.Rooms = roomDeliveries(r.rooms)
	for j, p := range r.cfg.Networks {
		rep.Profiles = append(rep.Profiles, r.profs[j].figures(p))
	}
	for msg, n := range r.errs {
		if n > 1 {
			msg = fmt.Sprintf("%s (×%d)", msg, n)
		}
		rep.Errors = append(rep.Errors, msg)
	}
	sort.Strings(rep.Errors)
	return rep
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

func percentiles(h *hdrhistogram.Histogram, full bool) Percentiles {
	ms := func(us int64) float64 { return math.Round(float64(us)/10) / 100 }
	p := Percentiles{P50: ms(h.ValueAtQuantile(50)), P99: ms(h.ValueAtQuantile(99))}
	if full {
		p.P90 = ms(h.ValueAtQuantile(90))
		p.Max = ms(h.Max())
	}
	return p
}
