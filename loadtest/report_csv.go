package loadtest

import (
	"encoding/csv"
	"errors"
	"os"
	"path/filepath"
	"strconv"
)

// WriteCSV writes r's time series and breakdowns as CSV files into dir
// (made if missing), for people's own tools: series.csv (Report.Series,
// one row a second), rooms.csv (Report.Rooms), histograms.csv (the
// connect-time, RTT and snapshot-gap buckets, one row a bucket, named in
// its first column) and, with network profiles, profiles.csv. Each file
// starts with a header row whose names are the JSON report's. It returns
// the paths written.
func WriteCSV(dir string, r Report) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	d := func(v int64) string { return strconv.FormatInt(v, 10) }
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }

	series := [][]string{{"t_s", "interval_s", "bots", "pings", "rtt_p50_ms", "rtt_p99_ms", "snapshots_per_s", "expected_per_s",
		"bytes_down_per_s", "bytes_up_per_s", "frames_per_s", "underruns_per_s", "loss_pct"}}
	for _, s := range r.Series {
		series = append(series, []string{f(s.T), f(s.Interval), strconv.Itoa(s.Bots), d(s.Pings), f(s.RTTP50), f(s.RTTP99),
			f(s.SnapshotsPerSec), f(s.ExpectedPerSec), f(s.BytesDownPerSec), f(s.BytesUpPerSec), f(s.FramesPerSec), f(s.UnderrunsPerSec), f(s.LossPercent)})
	}
	rooms := [][]string{{"room", "bots", "snapshots_received", "snapshots_expected", "delivery_pct"}}
	for _, rd := range r.Rooms {
		rooms = append(rooms, []string{rd.Room, strconv.Itoa(rd.Bots), d(rd.SnapshotsReceived), d(rd.SnapshotsExpected), f(rd.DeliveryPercent)})
	}
	hists := [][]string{{"histogram", "lo_ms", "hi_ms", "count"}}
	for _, h := range []struct {
		name string
		bs   []Bucket
	}{{"connect", r.ConnectHistogram}, {"rtt", r.RTTHistogram}, {"snapshot_gap", r.SnapshotGapHistogram}} {
		for _, b := range h.bs {
			hists = append(hists, []string{h.name, f(b.LowMs), f(b.HighMs), d(b.Count)})
		}
	}
	files := []csvFile{{"series.csv", series}, {"rooms.csv", rooms}, {"histograms.csv", hists}}
	if len(r.Profiles) > 0 {
		profs := [][]string{{"name", "spec", "bots", "connected", "rtt_p50_ms", "rtt_p99_ms", "loss_pct", "datagrams_sent", "datagrams_lost",
			"snapshots_received", "snapshots_expected", "delivery_pct", "interp_underrun_pct"}}
		for _, p := range r.Profiles {
			profs = append(profs, []string{p.Name, p.Spec, strconv.Itoa(p.Bots), strconv.Itoa(p.Connected), f(p.RTT.P50), f(p.RTT.P99),
				f(p.LossPercent), u(p.DatagramsSent), u(p.DatagramsLost), d(p.SnapshotsReceived), d(p.SnapshotsExpected), f(p.DeliveryPercent), f(p.InterpUnderrunPercent)})
		}
		files = append(files, csvFile{"profiles.csv", profs})
	}
	var paths []string
	for _, file := range files {
		path := filepath.Join(dir, file.name)
		if err := writeCSVFile(path, file.rows); err != nil {
			return paths, err
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// csvFile is one file WriteCSV writes: its name and rows.
type csvFile struct {
	name string
	rows [][]string
}

func writeCSVFile(path string, rows [][]string) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(out)
	werr := w.WriteAll(rows) // flushes
	return errors.Join(werr, out.Close())
}
