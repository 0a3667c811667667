// Command ortrun times in-process onnxruntime Run on an ONNX file (batch N, random input)
// and prints latency percentiles as JSON: the baseline the gateway's inference latency is
// compared with. With -pair it alternates each Run with the same request to a running
// gateway and reports both sides and their ratio.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"time"

	"github.com/natgw/natgw/onnxrt"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ortrun:", err)
		os.Exit(1)
	}
}

func run() error {
	model := flag.String("model", "", "ONNX file")
	n := flag.Int("n", 500, "timed runs")
	batch := flag.Int("batch", 1, "batch size")
	threads := flag.Int("threads", 2, "intra-op threads")
	gap := flag.Duration("gap", 0, "idle time between runs, as a serial client leaves between requests")
	touch := flag.Int("touch", 0, "bytes copied between runs (cache pollution of a request body)")
	input := flag.String("input", "", "file whose last 4*N bytes are the input, little-endian float32 (a binary OIP request body)")
	profile := flag.String("profile", "", "write onnxruntime's per-operator profile to PREFIX_<date>.json")
	pair := flag.String("pair", "", "also time this gateway URL (a /v2/models/ID/infer path), alternating one request with one Run; needs -input and -header-len")
	headerLen := flag.Int("header-len", -1, "with -pair: the JSON header's length in the -input body (Inference-Header-Content-Length)")
	ceiling := flag.Int("ceiling", 0, "instead of timing one batch size, alternate K batch-1 runs with one batch-K run -n times and report the median gain in images/s of batching (the most dynamic batching can give)")
	first := flag.Int("first", 0, "instead of timing one batch size, build -n fresh sessions and time each one's first and second run at every batch size 1..K in a random order: what a fresh session's first requests pay")
	warm := flag.String("warm", "", "with -first: comma-separated batch sizes each fresh session runs once on zeros before the timed runs (Session.Warm, as the gateway at load)")
	spinName := flag.String("spin", "always", "when intra-op threads spin-wait: always (onnxruntime's default), never, or run (inside runs only)")
	flag.Parse()
	data, err := os.ReadFile(*model)
	if err != nil {
		return err
	}
	spin, err := onnxrt.ParseSpin(*spinName)
	if err != nil {
		return err
	}
	env, err := onnxrt.NewEnv(onnxrt.Config{IntraOpThreads: *threads, InterOpThreads: 1, Spin: spin, ProfilePrefix: *profile})
	if err != nil {
		return err
	}
	sess, err := env.NewSession(data)
	if err != nil {
		return err
	}
	defer sess.Close()
	x, shape := randomInput(sess, *batch)
	if *pair != "" && (*input == "" || *headerLen < 0 || *batch != 1) {
		return fmt.Errorf("-pair needs -input, -header-len and batch 1")
	}
	var raw []byte
	if *input != "" {
		if raw, err = os.ReadFile(*input); err != nil {
			return err
		}
		tail, err := bodyTail(raw, len(x))
		if err != nil {
			return err
		}
		for i := range x {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(tail[4*i:]))
		}
	}
	var junk []byte
	if *touch > 0 {
		junk = make([]byte, 2**touch)
	}
	ctx := context.Background()
	if *first > 0 {
		return firstRuns(ctx, env, data, *first, *warm, *n)
	}
	for range 20 {
		if _, _, err := sess.Run(ctx, x, shape); err != nil {
			return err
		}
	}
	if *ceiling > 1 {
		if *batch != 1 {
			return fmt.Errorf("-ceiling times its own batch sizes; leave -batch at 1")
		}
		one, many, gain, err := batchCeiling(ctx, sess, x, shape, *ceiling, *n)
		if err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(map[string]any{"model": *model, "threads": *threads, "spin": spin.String(), "rounds": *n,
			"batch": *ceiling, "batch1_p50_ms": ms(percentile(one, 0.5)), "batchK_p50_ms": ms(percentile(many, 0.5)),
			"gain_median_of_rounds": math.Round(gain*1000) / 1000})
	}
	if *pair != "" {
		local, remote, ratio, err := pairs(ctx, sess, x, shape, *pair, raw, *headerLen, *n)
		if err != nil {
			return err
		}
		lp, rp := percentile(local, 0.5), percentile(remote, 0.5)
		return json.NewEncoder(os.Stdout).Encode(map[string]any{"model": *model, "threads": *threads, "spin": spin.String(), "pairs": *n,
			"in_process_p50_ms": ms(lp), "gateway_p50_ms": ms(rp), "ratio_p50": math.Round(float64(rp)/float64(lp)*1000) / 1000,
			"ratio_median_of_pairs": math.Round(ratio*1000) / 1000})
	}
	lat := make([]time.Duration, *n)
	for i := range lat {
		if *gap > 0 {
			time.Sleep(*gap)
		}
		if junk != nil {
			copy(junk[len(junk)/2:], junk[:len(junk)/2])
			junk[0]++
		}
		t0 := time.Now()
		if _, _, err := sess.Run(ctx, x, shape); err != nil {
			return err
		}
		lat[i] = time.Since(t0)
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"model": *model, "batch": *batch, "threads": *threads, "spin": spin.String(), "runs": *n,
		"p50_ms": ms(percentile(lat, 0.5)), "p90_ms": ms(percentile(lat, 0.9)), "p99_ms": ms(percentile(lat, 0.99))})
}

// percentile sorts lat and returns its p-quantile.
func percentile(lat []time.Duration, p float64) time.Duration {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[min(len(lat)-1, int(p*float64(len(lat))))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// randomInput is a batch of b uniform values in [-1, 1) shaped as the session's input.
func randomInput(sess *onnxrt.Session, b int) ([]float32, []int64) {
	shape := append([]int64{int64(b)}, sess.Inputs()[0].Shape[1:]...)
	size := int64(1)
	for _, d := range shape {
		size *= d
	}
	x := make([]float32, size)
	for i := range x {
		x[i] = rand.Float32()*2 - 1
	}
	return x, shape
}
