package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/natgw/natgw/onnxrt"
)

// firstRuns builds rounds fresh sessions of model. Each runs the warm-up batch sizes once
// (timed together), then every batch size 1..k twice in a random order of sizes, first
// runs before second runs, as a burst of mixed batches meets a fresh session. It reports
// per round the warm-up's cost, the sum over sizes of first minus second run (what the
// first requests pay beyond steady state) and the slowest first run.
func firstRuns(ctx context.Context, env *onnxrt.Env, model []byte, k int, warmList string, rounds int) error {
	var warm []int
	for f := range strings.SplitSeq(warmList, ",") {
		if f == "" {
			continue
		}
		b, err := strconv.Atoi(f)
		if err != nil || b < 1 {
			return fmt.Errorf("-warm: %q is not a batch size", f)
		}
		warm = append(warm, b)
	}
	type round struct {
		BuildMS        float64 `json:"build_ms"`
		WarmMS         float64 `json:"warm_ms"`
		FirstExcessMS  float64 `json:"first_excess_ms"`
		SlowestFirstMS float64 `json:"slowest_first_ms"`
		SecondSumMS    float64 `json:"second_sum_ms"`
	}
	var out []round
	for range rounds {
		t0 := time.Now()
		sess, err := env.NewSession(model)
		if err != nil {
			return err
		}
		rd := round{BuildMS: ms(time.Since(t0))}
		t0 = time.Now()
		if err := sess.Warm(ctx, warm); err != nil { // the gateway's own warm-up
			return err
		}
		rd.WarmMS = ms(time.Since(t0))
		order := rand.Perm(k)
		firsts := make([]time.Duration, k)
		for pass := range 2 {
			for _, i := range order {
				x, shape := randomInput(sess, i+1)
				t := time.Now()
				if _, _, err := sess.Run(ctx, x, shape); err != nil {
					return err
				}
				d := time.Since(t)
				if pass == 0 {
					firsts[i] = d
					rd.SlowestFirstMS = max(rd.SlowestFirstMS, ms(d))
					continue
				}
				rd.FirstExcessMS += ms(firsts[i] - d)
				rd.SecondSumMS += ms(d)
			}
		}
		if err := sess.Close(); err != nil {
			return err
		}
		out = append(out, rd)
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"sizes": k, "warm": warm, "rounds": out})
}
