package tflite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// NumElements is the product of the shape, or an error for dynamic or overflowing shapes.
func (t *Tensor) NumElements() (int, error) {
	n := 1
	for _, d := range t.Shape {
		if d < 0 {
			return 0, fmt.Errorf("tensor %q: dynamic shape %v", t.Name, t.Shape)
		}
		if d != 0 && n > math.MaxInt32/d {
			return 0, fmt.Errorf("tensor %q: shape %v too large", t.Name, t.Shape)
		}
		n *= d
	}
	return n, nil
}

// Dequantize returns a constant tensor's values as float32 in its stored (row-major) order:
// float32 data as is, quantized integer data as Scale·(q − ZeroPoint), per tensor or per
// slice along Quant.Dim. Tensors without data or without quantization (integer types) are errors.
func (t *Tensor) Dequantize() ([]float32, error) {
	n, err := t.NumElements()
	if err != nil {
		return nil, err
	}
	size := t.Type.Size()
	if size == 0 {
		return nil, fmt.Errorf("tensor %q: type %v cannot be dequantized", t.Name, t.Type)
	}
	if len(t.Data) == 0 {
		return nil, fmt.Errorf("tensor %q: no constant data", t.Name)
	}
	if len(t.Data) != n*size {
		return nil, fmt.Errorf("tensor %q: %d bytes of data, shape %v of %v needs %d", t.Name, len(t.Data), t.Shape, t.Type, n*size)
	}
	out := make([]float32, n)
	switch t.Type {
	case Float32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
		}
		return out, nil
	case Float64:
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(t.Data[8*i:])))
		}
		return out, nil
	case Uint8, Int8, Int16, Int32, Int64:
	default:
		return nil, fmt.Errorf("tensor %q: dequantizing %v is not supported", t.Name, t.Type)
	}
	q := t.Quant
	if q == nil || len(q.Scale) == 0 {
		return nil, fmt.Errorf("tensor %q: %v data without quantization scale", t.Name, t.Type)
	}
	// Per-tensor quantization is per-axis with one slice of everything.
	slices, inner := 1, n
	if len(q.Scale) > 1 {
		if q.Dim < 0 || q.Dim >= len(t.Shape) || t.Shape[q.Dim] != len(q.Scale) {
			return nil, fmt.Errorf("tensor %q: %d scales along dimension %d of shape %v", t.Name, len(q.Scale), q.Dim, t.Shape)
		}
		slices, inner = len(q.Scale), 1
		for _, d := range t.Shape[q.Dim+1:] {
			inner *= d
		}
	}
	if len(q.ZeroPoint) > 1 && len(q.ZeroPoint) != len(q.Scale) {
		return nil, fmt.Errorf("tensor %q: %d zero points for %d scales", t.Name, len(q.ZeroPoint), len(q.Scale))
	}
	raw := func(i int) int64 {
		switch t.Type {
		case Uint8:
			return int64(t.Data[i])
		case Int8:
			return int64(int8(t.Data[i]))
		case Int16:
			return int64(int16(binary.LittleEndian.Uint16(t.Data[2*i:])))
		case Int32:
			return int64(int32(binary.LittleEndian.Uint32(t.Data[4*i:])))
		}
		return int64(binary.LittleEndian.Uint64(t.Data[8*i:]))
	}
	for i := range out {
		s := (i / inner) % slices
		var zp int64
		switch len(q.ZeroPoint) {
		case 0:
		case 1:
			zp = q.ZeroPoint[0]
		default:
			zp = q.ZeroPoint[s]
		}
		// float64 keeps int32 bias products exact before the final rounding.
		out[i] = float32(float64(q.Scale[s]) * float64(raw(i)-zp))
	}
	return out, nil
}

// ErrLayout is wrapped by FilterOIHW's shape errors.
var ErrLayout = errors.New("unexpected filter layout")

// FilterOIHW reorders a convolution filter to [out, in/groups, kh, kw]: CONV_2D filters are
// stored [out, kh, kw, in] and DEPTHWISE_CONV_2D filters [1, kh, kw, channels].
func FilterOIHW(w []float32, shape []int, depthwise bool) ([]float32, []int, error) {
	if len(shape) != 4 || len(w) != shape[0]*shape[1]*shape[2]*shape[3] {
		return nil, nil, fmt.Errorf("%w: shape %v with %d values", ErrLayout, shape, len(w))
	}
	if depthwise {
		if shape[0] != 1 {
			return nil, nil, fmt.Errorf("%w: depthwise filter shape %v, want [1,kh,kw,c]", ErrLayout, shape)
		}
		kh, kw, c := shape[1], shape[2], shape[3]
		out := make([]float32, len(w))
		for y := range kh {
			for x := range kw {
				for ch := range c {
					out[(ch*kh+y)*kw+x] = w[(y*kw+x)*c+ch]
				}
			}
		}
		return out, []int{c, 1, kh, kw}, nil
	}
	o, kh, kw, in := shape[0], shape[1], shape[2], shape[3]
	out := make([]float32, len(w))
	for oc := range o {
		for y := range kh {
			for x := range kw {
				for ic := range in {
					out[((oc*in+ic)*kh+y)*kw+x] = w[((oc*kh+y)*kw+x)*in+ic]
				}
			}
		}
	}
	return out, []int{o, in, kh, kw}, nil
}
