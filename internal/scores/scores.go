// Package scores turns a classifier's logits into labelled probabilities, the same way for
// the gateway's responses and the infer command.
package scores

import (
	"math"
	"sort"
)

// Prediction is one class with its probability.
type Prediction struct {
	Index       int     `json:"index"`
	Label       string  `json:"label"`
	Probability float64 `json:"probability"`
}

// Softmax in float64, shifted by the maximum so large logits cannot overflow.
func Softmax(logits []float32) []float64 {
	m := math.Inf(-1)
	for _, v := range logits {
		m = math.Max(m, float64(v))
	}
	p := make([]float64, len(logits))
	var sum float64
	for i, v := range logits {
		p[i] = math.Exp(float64(v) - m)
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
	return p
}

// TopK returns the k highest scores, best first, ties by index; labels may be shorter
// than p (missing labels are empty).
func TopK(p []float64, labels []string, k int) []Prediction {
	idx := make([]int, len(p))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return p[idx[a]] > p[idx[b]] })
	k = max(0, min(k, len(idx)))
	out := make([]Prediction, k)
	for i := range k {
		j := idx[i]
		label := ""
		if j < len(labels) {
			label = labels[j]
		}
		out[i] = Prediction{Index: j, Label: label, Probability: p[j]}
	}
	return out
}

// Argmax returns the first index of the largest value (the top-1 class of a logit row).
func Argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
