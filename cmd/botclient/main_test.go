package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

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
		for _, k := range []string{"resumed", "expired", "history_checked", "history_violations"} {
			require.Contains(t, rep, k)
		}
	}
}
