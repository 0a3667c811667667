// Command budgets asks a natgw gateway on this machine for models by budget, as clients
// that have never been seen would, and prints one JSON line per phase:
//
//   - sweep: for each task, n budgets log-spaced over [lo, hi], one request at a time in
//     ascending order: latency percentiles, and checks that every answer fits its budget
//     and that the accuracy models are chosen by (accuracy.top1) never falls as the
//     budget rises;
//   - settle: the sweep's budgets asked again, each willing to wait for its pending
//     background work (Prefer: wait=60): how long until all settled, and how many
//     answers a measured candidate improved;
//   - burst: n budgets (a grid none of the sweep's budgets lies on) all sent at once;
//   - warm: one already-asked budget requested -warm times by one client.
//
// It refuses targets that are not loopback.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "budgets:", err)
		os.Exit(1)
	}
}

type answer struct {
	ID       string `json:"id"`
	MAdds    int64  `json:"madds"`
	Accuracy struct {
		Top1  float64 `json:"top1"`
		Split string  `json:"split"`
	} `json:"accuracy"`
	Pending *struct {
		State string `json:"state"`
	} `json:"pending"`
}

type phase struct {
	Phase    string   `json:"phase"`
	Task     string   `json:"task,omitempty"`
	Requests int      `json:"requests"`
	Errors   int      `json:"errors"`
	P50MS    float64  `json:"p50_ms"`
	P99MS    float64  `json:"p99_ms"`
	MaxMS    float64  `json:"max_ms"`
	WallMS   float64  `json:"wall_ms,omitempty"`
	Models   int      `json:"distinct_models,omitempty"`
	Improved *int     `json:"improved,omitempty"` // settle: answers a measured candidate replaced
	Pending  int      `json:"pending,omitempty"`
	Fits     *bool    `json:"every_answer_fits,omitempty"`
	Monotone *bool    `json:"accuracy_monotone,omitempty"`
	Problems []string `json:"problems,omitempty"`
}

func run() error {
	base := flag.String("url", "http://127.0.0.1:8080", "gateway base URL (loopback only)")
	tasks := flag.String("tasks", "flowers,cifar10", "comma-separated tasks")
	n := flag.Int("n", 20, "budgets per task per phase")
	lo := flag.Float64("lo", 20e6, "smallest MAdds budget")
	hi := flag.Float64("hi", 600e6, "largest MAdds budget")
	only := flag.String("phases", "sweep,settle,burst,warm", "phases to run, in this order (settle follows a sweep)")
	warm := flag.Int("warm", 2000, "requests of the warm phase")
	flag.Parse()
	u, err := url.Parse(*base)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%s is not a loopback address", *base)
	}
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	getWaiting := func(task string, madds int64, wait bool) (answer, time.Duration, error) {
		t0 := time.Now()
		req, err := http.NewRequest("GET", fmt.Sprintf("%s/v1/models?task=%s&madds=%d", *base, task, madds), nil)
		if err != nil {
			return answer{}, 0, err
		}
		if wait {
			req.Header.Set("Prefer", "wait=60")
		}
		res, err := client.Do(req)
		if err != nil {
			return answer{}, 0, err
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		d := time.Since(t0)
		if err != nil {
			return answer{}, d, err
		}
		if res.StatusCode != 200 {
			return answer{}, d, fmt.Errorf("madds=%d: %d %s", madds, res.StatusCode, body)
		}
		var a answer
		return a, d, json.Unmarshal(body, &a)
	}
	get := func(task string, madds int64) (answer, time.Duration, error) { return getWaiting(task, madds, false) }
	swept := map[string][]answer{} // the sweep's answers by task, in grid order
	grid := func(offset float64) []int64 {
		out := make([]int64, *n)
		for i := range out {
			f := (float64(i) + offset) / float64(*n-1)
			out[i] = int64(math.Round(*lo * math.Pow(*hi / *lo, f)))
		}
		return out
	}
	enc := json.NewEncoder(os.Stdout)
	names := strings.Split(*tasks, ",")
	for _, ph := range strings.Split(*only, ",") {
		switch ph {
		case "sweep":
			for _, task := range names {
				p := phase{Phase: "sweep", Task: task}
				var times []float64
				fits, mono := true, true
				prev := -1.0
				models := map[string]bool{}
				for _, b := range grid(0) {
					a, d, err := get(task, b)
					times = append(times, ms(d))
					p.Requests++
					if err != nil {
						p.Errors++
						p.Problems = append(p.Problems, err.Error())
						continue
					}
					models[a.ID] = true
					swept[task] = append(swept[task], a)
					if a.Pending != nil {
						p.Pending++
					}
					if a.MAdds > b {
						fits = false
						p.Problems = append(p.Problems, fmt.Sprintf("madds=%d: answer has %d", b, a.MAdds))
					}
					if a.Accuracy.Split != "val" || a.Accuracy.Top1 < prev {
						mono = false
						p.Problems = append(p.Problems, fmt.Sprintf("madds=%d: %s top-1 %.4f after %.4f", b, a.Accuracy.Split, a.Accuracy.Top1, prev))
					}
					prev = a.Accuracy.Top1
				}
				p.P50MS, p.P99MS, p.MaxMS = pct(times, 50), pct(times, 99), slices.Max(times)
				p.Models, p.Fits, p.Monotone = len(models), &fits, &mono
				enc.Encode(p)
			}
		case "settle":
			for _, task := range names {
				p := phase{Phase: "settle", Task: task}
				t0 := time.Now()
				improved := 0
				for i, b := range grid(0) {
					a, _, err := getWaiting(task, b, true)
					p.Requests++
					if err != nil {
						p.Errors++
						p.Problems = append(p.Problems, err.Error())
						continue
					}
					if a.Pending != nil {
						p.Pending++
					}
					if i < len(swept[task]) && a.ID != swept[task][i].ID {
						improved++
						if a.Accuracy.Top1 < swept[task][i].Accuracy.Top1 {
							p.Problems = append(p.Problems, fmt.Sprintf("madds=%d: settled on a less accurate model", b))
						}
					}
				}
				p.WallMS, p.Improved = ms(time.Since(t0)), &improved
				enc.Encode(p)
			}
		case "burst":
			p := phase{Phase: "burst"}
			var mu sync.Mutex
			var times []float64
			models := map[string]bool{}
			var wg sync.WaitGroup
			t0 := time.Now()
			for _, task := range names {
				for _, b := range grid(0.5) { // between the sweep's budgets
					wg.Add(1)
					go func() {
						defer wg.Done()
						a, d, err := get(task, b)
						mu.Lock()
						defer mu.Unlock()
						p.Requests++
						times = append(times, ms(d))
						if err != nil {
							p.Errors++
							p.Problems = append(p.Problems, err.Error())
							return
						}
						models[task+a.ID] = true
					}()
				}
			}
			wg.Wait()
			p.WallMS = ms(time.Since(t0))
			p.P50MS, p.P99MS, p.MaxMS = pct(times, 50), pct(times, 99), slices.Max(times)
			p.Models = len(models)
			enc.Encode(p)
		case "warm":
			p := phase{Phase: "warm", Task: names[0]}
			b := grid(0)[*n/2]
			if _, _, err := get(names[0], b); err != nil {
				return err
			}
			var times []float64
			for range *warm {
				_, d, err := get(names[0], b)
				p.Requests++
				if err != nil {
					p.Errors++
					continue
				}
				times = append(times, ms(d))
			}
			p.P50MS, p.P99MS, p.MaxMS = pct(times, 50), pct(times, 99), slices.Max(times)
			enc.Encode(p)
		default:
			return fmt.Errorf("unknown phase %q", ph)
		}
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// pct is the p-th percentile (nearest rank) of v.
func pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}
