package onnxrt

import (
	"context"
	"encoding/binary"
	"testing"
)

// FuzzCheckInput: caller-supplied shapes must give an error or pass, never panic,
// and a passing shape must match the data length exactly.
func FuzzCheckInput(f *testing.F) {
	f.Add([]byte{}, 0)
	f.Add(binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 2), 4), 8)
	f.Add(binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 1<<62), 4), 4)
	f.Add(binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 1<<63), 1<<63-1), 1)
	want := []int64{-1, 4}
	f.Fuzz(func(t *testing.T, raw []byte, n int) {
		var shape []int64
		for len(raw) >= 8 && len(shape) < 8 {
			shape = append(shape, int64(binary.LittleEndian.Uint64(raw)))
			raw = raw[8:]
		}
		if err := checkInput(want, shape, n); err == nil {
			elems := int64(1)
			for _, d := range shape {
				elems *= d
			}
			if len(shape) != 2 || shape[1] != 4 || elems != int64(n) || n > maxElements {
				t.Fatalf("accepted shape %v for %d values", shape, n)
			}
		}
	})
}

// FuzzNewSession: arbitrary model bytes must give an error or a working session,
// never a crash. Needs the onnxruntime library.
func FuzzNewSession(f *testing.F) {
	env := newTestEnv(f, 1)
	good := tinyModel(f, 2, map[string]string{"k": "v"})
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("\x08\x07\x12\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, model []byte) {
		s, err := env.NewSession(model)
		if err != nil {
			return
		}
		defer s.Close()
		shape := make([]int64, len(s.Inputs()[0].Shape))
		elems := int64(1)
		for i, d := range s.Inputs()[0].Shape {
			shape[i] = max(d, 1)
			elems *= shape[i]
		}
		if elems <= 1<<16 {
			_, _, _ = s.Run(context.Background(), make([]float32, elems), shape)
		}
		_, _ = s.Metadata()
	})
}
