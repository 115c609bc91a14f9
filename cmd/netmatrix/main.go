// Command netmatrix measures a running gameserver through a bad network:
// for each cell of a transport × loss × round-trip matrix it starts a UDP
// impairment proxy (package impair) in front of the server, runs bots
// through it (package loadtest) and reads the server's input counters from
// its HTTP side port, then prints one row per cell: a Markdown table with
// -md, else one JSON object per line. The server should serve nobody else
// while it runs. `make matrix` starts a server and runs the full matrix.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/roomwire/roomwire/loadtest"
	"github.com/roomwire/roomwire/loadtest/matrix"
	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/netcode/token"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "netmatrix:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("netmatrix", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quicURL := fs.String("quic", "quic://127.0.0.1:7777", "the server's QUIC `URL`; empty skips QUIC cells")
	kcpURL := fs.String("kcp", "kcp://127.0.0.1:7778", "the server's KCP `URL`; empty skips KCP cells")
	httpURL := fs.String("http", "http://127.0.0.1:8080", "`URL` of the server's HTTP side port, for /metrics (inputs the server received); empty skips that column")
	bots := fs.Int("bots", 20, "bots per cell")
	perRoom := fs.Int("per-room", 10, "bots per room")
	duration := fs.Duration("duration", 10*time.Second, "how long each cell's bots play")
	ping := fs.Duration("ping", 200*time.Millisecond, "interval between a bot's reliable pings")
	cellsFlag := fs.String("cells", "all", "cells to run: `LIST` of TRANSPORT/RTT/LOSS, any part * (\"quic/150ms/20%,*/0s/*\"), or all")
	jitter := fs.Duration("jitter", matrix.DefaultJitter, "each direction's jitter in every cell")
	seed := fs.Uint64("seed", 1, "seed of the proxies' loss and delay draws")
	dev := fs.Bool("dev", true, "mint connect tokens with the built-in development key")
	keyFile := fs.String("token-key", "", "`file` with the connect token key; turns -dev off")
	protocolID := fs.Uint64("protocol-id", token.DefaultProtocolID, "connect tokens' protocol `id`")
	insecure := fs.Bool("insecure", false, "skip server certificate verification (development servers)")
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for the side port's /healthz before starting")
	var copies netcode.CopyMode
	fs.Var(&copies, "copies", "the bots' copy `mode` for reliable frames: auto, always or off (the server has its own -copies)")
	md := fs.Bool("md", false, "print a Markdown table instead of JSON lines")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: netmatrix [flags]\n\nMeasures a running gameserver through an impairment proxy, cell by cell.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	cells, err := matrix.ParseCells(*cellsFlag, *jitter)
	if err != nil {
		return err
	}
	cells = withServer(cells, *quicURL, *kcpURL)
	if len(cells) == 0 {
		return errors.New("no cells to run: -cells selects none on the transports given")
	}

	key, err := loadtest.TokenKey(*keyFile, *dev)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := matrix.Config{
		QUIC: *quicURL,
		KCP:  *kcpURL,
		Load: loadtest.Config{
			TokenKey:     key,
			ProtocolID:   *protocolID,
			Insecure:     *insecure,
			Bots:         *bots,
			PerRoom:      *perRoom,
			Duration:     *duration,
			PingInterval: *ping,
			Client:       netcode.ClientConfig{ReliableCopies: copies},
		},
		Seed: *seed,
	}
	if *httpURL != "" {
		if err := waitHealthy(ctx, *httpURL, *wait); err != nil {
			return err
		}
		cfg.Metrics = matrix.HTTPMetrics(*httpURL)
	}
	enc := json.NewEncoder(stdout)
	cfg.Progress = func(r matrix.Row) {
		fmt.Fprintf(stderr, "%-18s snapshots %5.1f%%  underruns %6.2f%%  event p99 %7.1f ms  inputs %6.2f%%\n",
			r.Cell, r.SnapshotsPercent, r.UnderrunPercent, r.EventP99Ms, r.InputsDeliveredPercent)
		if !*md {
			_ = enc.Encode(r)
		}
	}
	fmt.Fprintf(stderr, "%d cells, %d bots each for %v, jitter ±%v each way\n", len(cells), *bots, *duration, *jitter)
	rows, err := matrix.Run(ctx, cfg, cells)
	if *md && len(rows) > 0 {
		fmt.Fprintf(stdout, "%d bots per cell, %v each, ±%v jitter each way; snapshot interval %g ms.\n\n", *bots, *duration, *jitter, rows[0].IntervalMs)
		if werr := matrix.WriteMarkdown(stdout, rows); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

// withServer keeps the cells whose transport has a server URL.
func withServer(cells []matrix.Cell, quicURL, kcpURL string) []matrix.Cell {
	var out []matrix.Cell
	for _, c := range cells {
		if (c.Transport == "quic" && quicURL != "") || (c.Transport == "kcp" && kcpURL != "") {
			out = append(out, c)
		}
	}
	return out
}

// waitHealthy polls base/healthz until it answers 200, for at most limit.
func waitHealthy(ctx context.Context, base string, limit time.Duration) error {
	url := strings.TrimSuffix(base, "/") + "/healthz"
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(limit)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("server not healthy at %s after %v: %w", url, limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
