package importer

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/natgw/natgw/preprocess"
)

// Preprocess is the input TensorFlow's MobileNets expect: the whole image resized to r×r
// (bilinear), then (x − 128)/128 per RGB channel, which is the uint8 input tensor's
// quantization (scale 1/128, zero point 128) expressed as mean and std of x/255.
func Preprocess(r int) preprocess.Spec {
	s := preprocess.DefaultSpec(r)
	s.Mean = [3]float32{128.0 / 255, 128.0 / 255, 128.0 / 255}
	s.Std = s.Mean
	return s
}

// maxLabels bounds a labels file; ImageNet's has 1001 lines.
const maxLabels = 1 << 16

// ReadLabels reads one label per line (TensorFlow's labels file: line 0 is "background").
// Trailing blank lines are dropped; blank lines inside are errors.
func ReadLabels(r io.Reader) ([]string, error) {
	var labels []string
	sc := bufio.NewScanner(r)
	blank := 0
	for sc.Scan() {
		l := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(l) == "" {
			blank++
			continue
		}
		if blank > 0 {
			return nil, fmt.Errorf("labels: blank line before line %d", len(labels)+blank+1)
		}
		if len(labels) == maxLabels {
			return nil, fmt.Errorf("labels: more than %d lines", maxLabels)
		}
		labels = append(labels, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	if len(labels) == 0 {
		return nil, fmt.Errorf("labels: empty")
	}
	return labels, nil
}

// MatchClasses maps each data-set class name to the index of the label equal to it (the
// full string, e.g. WordNet's "goldfish, Carassius auratus"), giving −1 and an entry in
// unmatched for classes without one. Exact equality, because glosses share words. A name
// that several labels carry ("crane" the bird and the machine) goes to the first such
// label after the previous match, since both lists follow the WordNet-id order.
func MatchClasses(classNames, labels []string) (idx []int, unmatched []string) {
	pos := make(map[string][]int, len(labels))
	for i, l := range labels {
		pos[l] = append(pos[l], i)
	}
	idx = make([]int, len(classNames))
	last := -1
	for i, c := range classNames {
		cand := pos[c]
		if len(cand) == 0 {
			idx[i] = -1
			unmatched = append(unmatched, c)
			continue
		}
		idx[i] = cand[0]
		for _, j := range cand {
			if j > last {
				idx[i] = j
				break
			}
		}
		last = idx[i]
	}
	return idx, unmatched
}
