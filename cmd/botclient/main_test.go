package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/loadtest"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
)

func TestMain(m *testing.M) {
	nt.VerifyTestMain(m)
}

// -blackout takes LENGTH@START and LENGTH@START/EVERY; a bad form is
// refused before any bot starts, with the syntax in the error.
func TestBlackoutFlag(t *testing.T) {
	for _, bad := range []string{"3s", "3s@", "0s@10s", "3s@10s/2s", "3s@ten", "-1s@1s"} {
		var stderr bytes.Buffer
		err := run([]string{"-blackout", bad}, &bytes.Buffer{}, &stderr)
		require.Error(t, err, bad)
		require.Contains(t, err.Error(), "invalid value", bad)
		require.Contains(t, err.Error(), "LENGTH@START", bad)
	}
	// Good forms parse, and the run goes ahead: here a bot with no server
	// to reach, which fails fast, and a report with the new figures.
	for _, good := range []string{"3s@10s", "2s@5s/5s"} {
		var stdout bytes.Buffer
		err := run([]string{"-blackout", good, "-addr", "quic://127.0.0.1:1", "-n", "1", "-insecure",
			"-connect-timeout", "200ms", "-duration", "100ms", "-json"}, &stdout, &bytes.Buffer{})
		require.NoError(t, err, good)
		var rep map[string]any
		require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep), good)
		require.EqualValues(t, 1, rep["failed"], good)
		for _, k := range []string{"resumed", "away", "expired", "history_checked", "history_violations",
			"blackouts", "snapshot_resume_ms", "snapshot_resume_count", "resume_ms", "resume_count"} {
			require.Contains(t, rep, k)
		}
	}
}

// The table shows the sessions and the recovery from blackouts when a run
// had any, and leaves them out otherwise.
func TestPrintTableRecovery(t *testing.T) {
	var plain bytes.Buffer
	printTable(&plain, loadtest.Report{Transport: "quic", Bots: 1})
	require.NotContains(t, plain.String(), "sessions")
	require.NotContains(t, plain.String(), "blackouts")

	var out bytes.Buffer
	printTable(&out, loadtest.Report{
		Transport: "quic", Bots: 50, Away: 50, Resumed: 49, Expired: 1, Blackouts: 50,
		SnapshotResume: loadtest.Percentiles{P50: 433.66, P99: 679.42, Max: 680.5}, SnapshotResumeCount: 49,
		ResumeAfter: loadtest.Percentiles{P50: 412.42, P99: 663.04, Max: 663.04}, ResumeCount: 49,
	})
	s := out.String()
	require.Contains(t, s, "50 away, 49 resumed, 1 expired")
	require.Contains(t, s, "50 ended while in a room")
	require.Regexp(t, `snapshots back \(ms\)\s+p50 433.66  p99 679.42  max 680.50  after 49 of them`, s)
	require.Regexp(t, `resumed after \(ms\)\s+p50 412.42  p99 663.04  max 663.04  after 49 of them`, s)
}

// -net takes a preset or a profile, -net-mix presets with weights, not
// both; a bad one is refused before any bot starts. -h lists the presets.
func TestNetFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-net", "loss=5"}, "a percentage needs a % sign"},
		{[]string{"-net", "cable"}, "lan, wifi, mobile, bad"},
		{[]string{"-net-mix", "wifi:70,cable:30"}, `no preset "cable"`},
		{[]string{"-net-mix", "wifi"}, "preset:weight"},
		{[]string{"-net", "wifi", "-net-mix", "wifi:1"}, "give one of them"},
	} {
		err := run(c.args, &bytes.Buffer{}, &bytes.Buffer{})
		require.ErrorContains(t, err, c.msg, c.args)
	}
	var help bytes.Buffer
	require.NoError(t, run([]string{"-h"}, &bytes.Buffer{}, &help))
	for _, p := range loadtest.Presets() {
		require.Regexp(t, `(?m)^  `+p.Name+` +`+regexp.QuoteMeta(p.Spec)+`$`, help.String())
	}
	require.Contains(t, help.String(), "-net-mix")
}

// -html writes the page and -csv the files even for a run whose bot
// never got in, and the report's path is the run's last line on stderr,
// after -json's line on stdout; -net shows in the report's profiles.
func TestReportFlags(t *testing.T) {
	dir := t.TempDir()
	page := filepath.Join(dir, "out", "report.html")
	var stdout, stderr bytes.Buffer
	err := run([]string{"-addr", "quic://127.0.0.1:1", "-n", "1", "-insecure", "-connect-timeout", "200ms", "-duration", "100ms",
		"-json", "-net", "wifi", "-html", page, "-csv", filepath.Join(dir, "csv")}, &stdout, &stderr)
	require.NoError(t, err)
	var rep loadtest.Report
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep))
	require.Equal(t, 1, rep.Failed)
	require.Len(t, rep.Profiles, 1)
	require.Equal(t, "wifi", rep.Profiles[0].Name)
	require.Equal(t, 1, rep.Profiles[0].Bots)
	require.NotNil(t, rep.Series)

	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	require.Equal(t, "report: "+page, lines[len(lines)-1])
	require.Contains(t, stderr.String(), "csv: "+filepath.Join(dir, "csv"))
	b, err := os.ReadFile(page)
	require.NoError(t, err)
	for _, name := range loadtest.PlotNames() {
		require.Contains(t, string(b), `data-plot="`+name+`"`)
	}
	require.Contains(t, string(b), "no data", "the charts of a run without data say so")
	require.Contains(t, string(b), "network wifi")
	for _, f := range []string{"series.csv", "rooms.csv", "histograms.csv", "profiles.csv"} {
		_, err := os.Stat(filepath.Join(dir, "csv", f))
		require.NoError(t, err, f)
	}
}

// -cpuprofile writes a CPU profile of the run that pprof reads: a gzipped
// protocol buffer, here of a bot with no server to reach.
func TestCPUProfileFlag(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bots.prof")
	err := run([]string{"-cpuprofile", path, "-addr", "quic://127.0.0.1:1", "-n", "1", "-insecure",
		"-connect-timeout", "200ms", "-duration", "100ms", "-json"}, &bytes.Buffer{}, &bytes.Buffer{})
	require.NoError(t, err)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Greater(t, len(b), 2)
	require.Equal(t, []byte{0x1f, 0x8b}, b[:2], "a gzipped profile")

	err = run([]string{"-cpuprofile", filepath.Join(t.TempDir(), "no", "such", "dir", "p.prof")}, &bytes.Buffer{}, &bytes.Buffer{})
	require.Error(t, err, "an unwritable profile path is refused before any bot starts")
}
