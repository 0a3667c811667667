package surrogate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Model is a regressor from a feature vector to a scalar (accuracy).
//
// Fit may be called again to refit from scratch. Predict returns one value
// per row; rows whose length differs from the training features, and every
// row of a model that was never fitted successfully, give NaN.
type Model interface {
	Fit(X [][]float64, y []float64) error
	Predict(X [][]float64) []float64
	Name() string
}

// Factory creates a fresh, unfitted model; cross-validation needs one per fold.
type Factory func() Model

// checkXY validates a training set and returns its feature dimension.
func checkXY(X [][]float64, y []float64, minRows int) (int, error) {
	if len(X) != len(y) {
		return 0, fmt.Errorf("%d feature rows but %d targets", len(X), len(y))
	}
	if len(X) < minRows {
		return 0, fmt.Errorf("%d training rows, need at least %d", len(X), minRows)
	}
	d := len(X[0])
	if d == 0 {
		return 0, errors.New("feature vectors are empty")
	}
	for i, row := range X {
		if len(row) != d {
			return 0, fmt.Errorf("row %d has %d features, want %d", i, len(row), d)
		}
		for _, v := range row {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return 0, fmt.Errorf("row %d has a non-finite feature", i)
			}
		}
		if math.IsNaN(y[i]) || math.IsInf(y[i], 0) {
			return 0, fmt.Errorf("target %d is not finite", i)
		}
	}
	return d, nil
}

// scaler maps each feature affinely so its training range becomes
// [offset, offset+width]; constant features map to offset.
type scaler struct {
	min, inv []float64
	width    float64
	offset   float64
}

func newScaler(X [][]float64, width, offset float64) scaler {
	d := len(X[0])
	s := scaler{min: make([]float64, d), inv: make([]float64, d), width: width, offset: offset}
	for j := 0; j < d; j++ {
		lo, hi := X[0][j], X[0][j]
		for _, row := range X {
			lo, hi = math.Min(lo, row[j]), math.Max(hi, row[j])
		}
		s.min[j] = lo
		if hi > lo {
			s.inv[j] = 1 / (hi - lo)
		}
	}
	return s
}

func (s scaler) apply(row []float64) []float64 {
	out := make([]float64, len(row))
	for j, v := range row {
		out[j] = (v-s.min[j])*s.inv[j]*s.width + s.offset
	}
	return out
}

func (s scaler) applyAll(X [][]float64) [][]float64 {
	out := make([][]float64, len(X))
	for i, row := range X {
		out[i] = s.apply(row)
	}
	return out
}

// standardize returns the mean and a positive scale of y; constant targets get scale 1.
func standardize(y []float64) (mean, std float64) {
	for _, v := range y {
		mean += v
	}
	mean /= float64(len(y))
	for _, v := range y {
		std += (v - mean) * (v - mean)
	}
	std = math.Sqrt(std / float64(len(y)))
	if !(std > 1e-12*math.Max(1, math.Abs(mean))) {
		std = 1
	}
	return mean, std
}

// nanRows returns n NaNs, the prediction of an unusable model.
func nanRows(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = math.NaN()
	}
	return out
}

// rowKey identifies a feature vector exactly.
func rowKey(row []float64) string {
	b := make([]byte, 8*len(row))
	for i, v := range row {
		if v == 0 {
			v = 0 // fold -0 into +0
		}
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v))
	}
	return string(b)
}

// dedupe merges identical rows, averaging their targets, because an
// interpolant cannot pass through two values at one point.
func dedupe(X [][]float64, y []float64) ([][]float64, []float64) {
	index := map[string]int{}
	var ux [][]float64
	var sum []float64
	var cnt []int
	for i, row := range X {
		k := rowKey(row)
		j, ok := index[k]
		if !ok {
			j = len(ux)
			index[k] = j
			ux = append(ux, row)
			sum = append(sum, 0)
			cnt = append(cnt, 0)
		}
		sum[j] += y[i]
		cnt[j]++
	}
	uy := make([]float64, len(ux))
	for j := range uy {
		uy[j] = sum[j] / float64(cnt[j])
	}
	return ux, uy
}

func sqDist(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		d := a[i] - b[i]
		s += d * d
	}
	return s
}
