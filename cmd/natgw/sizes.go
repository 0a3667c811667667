package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/natgw/natgw/preprocess"
)

// maxSizes bounds a size list: it weights a per-step draw, nothing needs more.
const maxSizes = 64

// parseSizes reads a comma-separated list of input sizes ("96,128,160"); repeats are kept
// (they weight the draw).
func parseSizes(s string) ([]int, error) {
	parts := strings.Split(s, ",")
	if len(parts) > maxSizes {
		return nil, fmt.Errorf("%d sizes, at most %d", len(parts), maxSizes)
	}
	out := make([]int, 0, len(parts))
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, errors.New("empty size in the list")
		}
		v, err := strconv.Atoi(p)
		if err != nil || v < 8 || v > preprocess.MaxResolution {
			return nil, fmt.Errorf("size %q: want an integer in [8, %d]", p, preprocess.MaxResolution)
		}
		out = append(out, v)
	}
	return out, nil
}
