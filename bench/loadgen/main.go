// Command loadgen sends a bounded number of HTTP requests to a natgw gateway on this
// machine and prints latency percentiles and throughput as JSON. It refuses targets that
// are not loopback: load tests never leave the machine.
//
// By default each of -c clients sends its next request as soon as the last one returns
// (closed loop: the load is whatever the server sustains). With -rate the requests are
// scheduled at that many per second whatever the server does (open loop). Latency runs from
// the actual send, and how late each send was against its schedule is reported beside it:
// on this project's VM the client's own timer wake-ups are late by up to milliseconds, which
// would otherwise be charged to the server; a late p99 near the latency p99 means the
// clients, not the server, fell behind.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type result struct {
	URL      string  `json:"url"`
	Requests int     `json:"requests"`
	Errors   int64   `json:"errors"`
	Conc     int     `json:"concurrency"`
	Rate     float64 `json:"rate,omitempty"`
	// With -rate: how far behind its schedule a request was sent (the client's timer
	// wake-up, or all clients busy). Latencies run from the actual send.
	LateP50MS  float64 `json:"late_p50_ms,omitempty"`
	LateP99MS  float64 `json:"late_p99_ms,omitempty"`
	Seconds    float64 `json:"seconds"`
	RPS        float64 `json:"rps"`
	P50MS      float64 `json:"p50_ms"`
	P90MS      float64 `json:"p90_ms"`
	P99MS      float64 `json:"p99_ms"`
	MaxMS      float64 `json:"max_ms"`
	StatusSeen []int   `json:"status_seen"`
}

func run() error {
	target := flag.String("url", "", "URL to request (loopback only)")
	n := flag.Int("n", 2000, "requests in total (bounded)")
	conc := flag.Int("c", 16, "concurrent clients")
	warm := flag.Int("warmup", 50, "requests before measuring, sent by the -c clients")
	method := flag.String("method", "GET", "HTTP method")
	bodyFile := flag.String("body", "", "request body file")
	ct := flag.String("content-type", "application/octet-stream", "Content-Type of the body")
	maxTime := flag.Duration("max-time", 2*time.Minute, "stop after this long whatever is left")
	header := flag.String("header", "", `extra request header "Name: value"`)
	rate := flag.Float64("rate", 0, "requests per second on a fixed schedule, sent by up to -c clients (0: closed loop)")
	flag.Parse()
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-url %q: want http://127.0.0.1:PORT/...", *target)
	}
	if ip := net.ParseIP(u.Hostname()); (ip == nil || !ip.IsLoopback()) && u.Hostname() != "localhost" {
		return fmt.Errorf("-url host %q is not loopback", u.Hostname())
	}
	if *n < 1 || *conc < 1 || *n > 1_000_000 || *rate < 0 {
		return fmt.Errorf("-n %d -c %d -rate %g out of range", *n, *conc, *rate)
	}
	var body []byte
	if *bodyFile != "" {
		if body, err = os.ReadFile(*bodyFile); err != nil {
			return err
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conc * 2}, Timeout: 30 * time.Second}
	do := func() (int, error) {
		req, err := http.NewRequest(*method, *target, bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		if body != nil {
			req.Header.Set("Content-Type", *ct)
		}
		if name, value, ok := strings.Cut(*header, ":"); ok {
			req.Header.Set(strings.TrimSpace(name), strings.TrimSpace(value))
		}
		res, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode, nil
	}
	// The warm-up runs at the measured concurrency: a server's first batches of each size
	// (onnxruntime plans memory per input shape) belong to warming up, not to the load.
	var warmNext atomic.Int64
	warmErrs := make(chan error, *conc)
	var warmWG sync.WaitGroup
	for range *conc {
		warmWG.Go(func() {
			for warmNext.Add(1) <= int64(*warm) {
				if _, err := do(); err != nil {
					warmErrs <- err
					return
				}
			}
		})
	}
	warmWG.Wait()
	close(warmErrs)
	if err := <-warmErrs; err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *maxTime)
	defer cancel()
	lat, late := make([]time.Duration, *n), make([]time.Duration, *n)
	var next, errs atomic.Int64
	var mu sync.Mutex
	seen := map[int]bool{}
	var wg sync.WaitGroup
	start := time.Now()
	for range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= *n {
					return
				}
				t0 := time.Now()
				if *rate > 0 {
					due := start.Add(time.Duration(float64(i) / *rate * float64(time.Second)))
					time.Sleep(time.Until(due))
					if t0 = time.Now(); t0.After(due) {
						late[i] = t0.Sub(due)
					}
				}
				code, err := do()
				lat[i] = time.Since(t0)
				if err != nil || code >= 400 {
					errs.Add(1)
				}
				mu.Lock()
				seen[code] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	done := min(int(next.Load()), *n)
	pct := func(d []time.Duration, p float64) float64 {
		if len(d) == 0 {
			return 0
		}
		return float64(d[min(len(d)-1, int(p*float64(len(d))))].Microseconds()) / 1000
	}
	lat, late = lat[:done], late[:done]
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
	r := result{URL: *target, Requests: done, Errors: errs.Load(), Conc: *conc, Rate: *rate, Seconds: elapsed.Seconds(),
		RPS: float64(done) / elapsed.Seconds(), P50MS: pct(lat, 0.50), P90MS: pct(lat, 0.90), P99MS: pct(lat, 0.99), MaxMS: pct(lat, 1)}
	if *rate > 0 {
		r.LateP50MS, r.LateP99MS = pct(late, 0.5), pct(late, 0.99)
	}
	for c := range seen {
		r.StatusSeen = append(r.StatusSeen, c)
	}
	sort.Ints(r.StatusSeen)
	return json.NewEncoder(os.Stdout).Encode(r)
}
