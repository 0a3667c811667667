package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/natgw/natgw/nat"
)

// progressPrinter renders a long run's events: on a terminal one status line redrawn in
// place (stage, bar, fraction, ETA) with each stage's messages above it; elsewhere one JSON
// line per event, counted steps at most one a second per stage (and always its last).
func progressPrinter(w io.Writer, cmd string) nat.Progress {
	if isTerminal(w) {
		return terminalProgress(w, cmd)
	}
	enc := json.NewEncoder(w)
	var lastStage string
	var lastAt time.Time
	return func(e nat.Event) {
		counted := e.Total > 0
		if counted && e.Done < e.Total && e.Stage == lastStage && time.Since(lastAt) < time.Second {
			return
		}
		lastStage, lastAt = e.Stage, time.Now()
		enc.Encode(struct {
			Cmd string `json:"cmd"`
			nat.Event
			ElapsedS float64 `json:"elapsed_s"`
			ETAS     float64 `json:"eta_s,omitempty"`
		}{cmd, e, round1(e.Elapsed.Seconds()), round1(e.ETA.Seconds())})
	}
}

func round1(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }

// terminalProgress redraws one status line; messages that count nothing go above it.
func terminalProgress(w io.Writer, cmd string) nat.Progress {
	const width = 24
	return func(e nat.Event) {
		if e.Total == 0 {
			fmt.Fprintf(w, "\r\033[K%s: %s\n", cmd, e.Message)
		}
		filled := int(e.Fraction * width)
		bar := strings.Repeat("█", filled) + strings.Repeat("░", width-filled)
		eta := "eta …"
		if e.ETA > 0 {
			eta = "eta " + e.ETA.Round(time.Second).String()
		}
		step := ""
		if e.Total > 0 {
			step = fmt.Sprintf(" %d/%d", e.Done, e.Total)
		}
		round := ""
		if e.Rounds > 0 {
			round = fmt.Sprintf(" round %d/%d", e.Round+1, e.Rounds)
		}
		fmt.Fprintf(w, "\r\033[K%s %s %3.0f%% %s%s %s%s, %s elapsed", cmd, bar, 100*e.Fraction, eta, round, e.Stage, step, e.Elapsed.Round(time.Second))
	}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
