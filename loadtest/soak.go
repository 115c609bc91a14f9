package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"
)

// Sample is one reading of a server's runtime during a soak.
type Sample struct {
	// At is the time since the sampling started.
	At         time.Duration `json:"at_s"`
	Goroutines int           `json:"goroutines"`
	// HeapLive is the heap live after the last garbage collection, in
	// bytes: what the server really holds, without the garbage between
	// collections.
	HeapLive uint64 `json:"heap_live_bytes"`
}

// Sampler reads a game server's runtime figures ({"runtime":
// {"goroutines": n, "heap_live_bytes": n}} at URL, the side port's
// /metrics.json) every Every until Stop, for a soak's flatness check.
type Sampler struct {
	URL   string
	Every time.Duration

	mu      sync.Mutex
	samples []Sample
	errs    int
	stop    context.CancelFunc
	done    chan struct{}
}

// Start begins sampling, at once and then every Every (10 s if zero).
func (s *Sampler) Start() {
	if s.Every <= 0 {
		s.Every = 10 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop, s.done = cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		start := time.Now()
		t := time.NewTicker(s.Every)
		defer t.Stop()
		for {
			sample, err := s.read(ctx)
			s.mu.Lock()
			switch {
			case ctx.Err() != nil: // stopped while reading
			case err != nil:
				s.errs++
			default:
				sample.At = time.Since(start).Round(time.Second)
				s.samples = append(s.samples, sample)
			}
			s.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Stop ends sampling and returns the samples and how many readings failed.
func (s *Sampler) Stop() ([]Sample, int) {
	s.stop()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples, s.errs
}

func (s *Sampler) read(ctx context.Context) (Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return Sample{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Sample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Sample{}, fmt.Errorf("loadtest: %s: %s", s.URL, resp.Status)
	}
	var body struct {
		Runtime *Sample `json:"runtime"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return Sample{}, err
	}
	if body.Runtime == nil {
		return Sample{}, fmt.Errorf("loadtest: %s has no runtime figures", s.URL)
	}
	return *body.Runtime, nil
}

// Soak is what a sampled run's report adds: the samples, and their
// flatness after warm-up.
type Soak struct {
	WarmupSeconds float64  `json:"warmup_s"`
	Flatness      Flatness `json:"flatness"`
	Samples       []Sample `json:"samples"`
	Failed        int      `json:"samples_failed"`
}

// Flatness is how far a soak's samples after warm-up strayed from their
// mean: the largest deviation, as a fraction, of goroutines and of live
// heap. A leak shows as a drift far beyond the noise of connections
// coming and going.
type Flatness struct {
	Samples        int     `json:"samples"`
	GoroutinesMean float64 `json:"goroutines_mean"`
	GoroutinesDev  float64 `json:"goroutines_max_dev"`
	HeapMeanMB     float64 `json:"heap_live_mean_mb"`
	HeapDev        float64 `json:"heap_live_max_dev"`
}

// Flat measures the samples taken at or after warmup.
func Flat(samples []Sample, warmup time.Duration) Flatness {
	var f Flatness
	var g, h []float64
	for _, s := range samples {
		if s.At >= warmup {
			g = append(g, float64(s.Goroutines))
			h = append(h, float64(s.HeapLive))
		}
	}
	f.Samples = len(g)
	f.GoroutinesMean, f.GoroutinesDev = meanDev(g)
	var hm float64
	hm, f.HeapDev = meanDev(h)
	f.HeapMeanMB = hm / (1 << 20)
	return f
}

func meanDev(v []float64) (mean, dev float64) {
	if len(v) == 0 {
		return 0, 0
	}
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	for _, x := range v {
		if mean > 0 {
			dev = max(dev, math.Abs(x-mean)/mean)
		}
	}
	return mean, dev
}
