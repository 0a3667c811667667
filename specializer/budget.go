package specializer

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/natgw/natgw/task"
)

// Budget bounds a subnet's cost; a zero field is no bound.
type Budget struct {
	MAdds     int64   `json:"madds,omitempty"`
	Params    int64   `json:"params,omitempty"`
	LatencyMS float64 `json:"latency_ms,omitempty"`
}

// IsZero reports whether no bound is set.
func (b Budget) IsZero() bool { return b.MAdds == 0 && b.Params == 0 && b.LatencyMS == 0 }

// Key is the budget's canonical text, used in cache keys: equal budgets, equal keys.
func (b Budget) Key() string {
	return fmt.Sprintf("madds=%d,params=%d,latency_ms=%s", b.MAdds, b.Params, strconv.FormatFloat(b.LatencyMS, 'g', -1, 64))
}

// Fits reports whether e satisfies every bound. An entry with no latency never fits a
// latency bound.
func (b Budget) Fits(e task.Entry) bool {
	if b.MAdds > 0 && e.MAdds > b.MAdds {
		return false
	}
	if b.Params > 0 && e.Params > b.Params {
		return false
	}
	if b.LatencyMS > 0 && (e.LatencyMS <= 0 || e.LatencyMS > b.LatencyMS) {
		return false
	}
	return true
}

// ErrBudgetSyntax wraps every budget parse error.
var ErrBudgetSyntax = errors.New("malformed budget")

// maxCount keeps parsed counts far from int64 overflow; no network here has 1e15 MAdds.
const maxCount = 1e15

// ParseCount parses a MAdds or params budget: 300M, 300m (m is million, never milli),
// 0.3G, 1.5k, 300e6 or 300000000. It must be a positive whole number of operations.
func ParseCount(s string) (int64, error) {
	in := s
	s = strings.TrimSpace(s)
	mult := 1.0
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'K':
			mult, s = 1e3, s[:n-1]
		case 'm', 'M':
			mult, s = 1e6, s[:n-1]
		case 'g', 'G', 'b', 'B':
			mult, s = 1e9, s[:n-1]
		}
	}
	if s == "" || strings.ContainsAny(s, "xXpP_") || strings.HasPrefix(s, "+") {
		return 0, fmt.Errorf("%w: %q (want e.g. 300M, 0.3G, 300e6 or 300000000)", ErrBudgetSyntax, in)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%w: %q (want e.g. 300M, 0.3G, 300e6 or 300000000)", ErrBudgetSyntax, in)
	}
	v *= mult
	if v < 1 || v > maxCount {
		return 0, fmt.Errorf("%w: %q is out of range [1, 1e15]", ErrBudgetSyntax, in)
	}
	r := math.Round(v)
	if math.Abs(v-r) > 1e-9*v { // absorbs float error (0.3G), not real fractions
		return 0, fmt.Errorf("%w: %q is not a whole number", ErrBudgetSyntax, in)
	}
	return int64(r), nil
}

// ParseLatency parses a latency budget in milliseconds ("12", "12.5", optionally "12ms").
func ParseLatency(s string) (float64, error) {
	in := s
	s = strings.TrimSuffix(strings.TrimSpace(s), "ms")
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 || v > 1e6 || strings.ContainsAny(s, "xXpP_") {
		return 0, fmt.Errorf("%w: latency %q (want milliseconds, e.g. 12.5)", ErrBudgetSyntax, in)
	}
	return v, nil
}
