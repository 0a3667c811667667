package specializer

import (
	"errors"
	"fmt"

	"github.com/natgw/natgw/task"
)

// RangeError says a budget is below everything the task can offer, with the feasible range.
type RangeError struct {
	Budget Budget
	Min    Budget // the smallest value of each cost among the task's subnets
	Max    Budget
}

func (e *RangeError) Error() string {
	msg := "budget below the task's smallest subnet:"
	if e.Budget.MAdds > 0 {
		msg += fmt.Sprintf(" madds %d < %d (feasible %d..%d)", e.Budget.MAdds, e.Min.MAdds, e.Min.MAdds, e.Max.MAdds)
	}
	if e.Budget.Params > 0 {
		msg += fmt.Sprintf(" params %d (feasible %d..%d)", e.Budget.Params, e.Min.Params, e.Max.Params)
	}
	if e.Budget.LatencyMS > 0 {
		if e.Min.LatencyMS == 0 {
			msg += " latency_ms: this task has no latency measurements"
		} else {
			msg += fmt.Sprintf(" latency_ms %g (feasible %.3g..%.3g)", e.Budget.LatencyMS, e.Min.LatencyMS, e.Max.LatencyMS)
		}
	}
	return msg + "; no subnet fits every bound"
}

// ErrEmptyArchive means a task has no measured subnet to offer.
var ErrEmptyArchive = errors.New("the task's archive has no measured subnet")

// Range is the span of each cost over the measured entries.
func Range(entries []task.Entry) (lo, hi Budget) {
	first := true
	for _, e := range entries {
		if e.Predicted {
			continue
		}
		if first {
			lo = Budget{e.MAdds, e.Params, e.LatencyMS}
			hi = lo
			first = false
			continue
		}
		lo.MAdds, hi.MAdds = min(lo.MAdds, e.MAdds), max(hi.MAdds, e.MAdds)
		lo.Params, hi.Params = min(lo.Params, e.Params), max(hi.Params, e.Params)
		if e.LatencyMS > 0 {
			if lo.LatencyMS == 0 || e.LatencyMS < lo.LatencyMS {
				lo.LatencyMS = e.LatencyMS
			}
			hi.LatencyMS = max(hi.LatencyMS, e.LatencyMS)
		}
	}
	return lo, hi
}

// Best returns the most accurate measured entry that fits b; ties go to fewer MAdds, then
// fewer params, then the arch hash, so the answer is deterministic. Because it is a maximum
// over a set that only grows with the budget, accuracy never drops as a budget grows.
func Best(entries []task.Entry, b Budget) (task.Entry, error) {
	var best task.Entry
	found, any := false, false
	for _, e := range entries {
		if e.Predicted {
			continue
		}
		any = true
		if !b.Fits(e) {
			continue
		}
		if !found || better(e, best) {
			best, found = e, true
		}
	}
	if !any {
		return task.Entry{}, ErrEmptyArchive
	}
	if !found {
		lo, hi := Range(entries)
		return task.Entry{}, &RangeError{Budget: b, Min: lo, Max: hi}
	}
	return best, nil
}

func better(a, b task.Entry) bool {
	switch {
	case a.Top1 != b.Top1:
		return a.Top1 > b.Top1
	case a.MAdds != b.MAdds:
		return a.MAdds < b.MAdds
	case a.Params != b.Params:
		return a.Params < b.Params
	}
	return a.Hash < b.Hash
}
