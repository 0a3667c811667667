// Command ortrun times in-process onnxruntime Run on an ONNX file (batch N, random input)
// and prints latency percentiles as JSON: the baseline the gateway's inference latency is
// compared with.
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
	shape := append([]int64(nil), sess.Inputs()[0].Shape...)
	shape[0] = int64(*batch)
	size := int64(1)
	for _, d := range shape {
		size *= d
	}
	x := make([]float32, size)
	for i := range x {
		x[i] = rand.Float32()*2 - 1
	}
	if *input != "" {
		raw, err := os.ReadFile(*input)
		if err != nil {
			return err
		}
		tail := raw[len(raw)-4*len(x):]
		for i := range x {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(tail[4*i:]))
		}
	}
	var junk []byte
	if *touch > 0 {
		junk = make([]byte, 2**touch)
	}
	ctx := context.Background()
	for range 20 {
		if _, _, err := sess.Run(ctx, x, shape); err != nil {
			return err
		}
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
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	ms := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"model": *model, "batch": *batch, "threads": *threads, "spin": spin.String(), "runs": *n,
		"p50_ms": ms(0.5), "p90_ms": ms(0.9), "p99_ms": ms(0.99)})
}
