package pth

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"
	"unsafe"
)

// outputFactor bounds the total bytes of all returned tensors at outputFactor times the file size (plus a little):
// the output types alone can widen a storage eightfold (U8/BOOL to int64), and distinct views of one storage are
// each materialised. Each single tensor is additionally bounded by the bytes of its storage.
const outputFactor = 8

func hostLittleEndian() bool {
	return binary.NativeEndian.Uint16([]byte{1, 0}) == 1
}

// materialize reads every tensor's elements. It checks each view against its storage and each storage against
// its bytes in the file before allocating.
func materialize(r io.ReaderAt, size int64, spans map[string]span, refs []namedRef) ([]Tensor, error) {
	out := make([]Tensor, 0, len(refs))
	budget := outputFactor*size + 1<<20
	type viewKey struct {
		st           *storageRef
		offset       int64
		size, stride string
	}
	seen := map[viewKey]Tensor{}
	for _, nr := range refs {
		t, err := nr.ref.check(spans)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", nr.name, err)
		}
		k := viewKey{st: nr.ref.st, offset: nr.ref.offset, size: fmt.Sprint(nr.ref.size), stride: fmt.Sprint(nr.ref.stride)}
		if prev, ok := seen[k]; ok {
			prev.Name = nr.name
			out = append(out, prev)
			continue
		}
		outBytes := t.n * 4
		if !nr.ref.st.dt.isFloat() {
			outBytes = t.n * 8
		}
		if budget -= outBytes; budget < 0 {
			return nil, fmt.Errorf("tensor %q: tensors add up to more than %d times the file size", nr.name, outputFactor)
		}
		tensor, err := t.read(r, nr.name)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", nr.name, err)
		}
		seen[k] = tensor
		out = append(out, tensor)
	}
	return out, nil
}

// view is a tensor whose geometry has been checked against the bytes in the file.
type view struct {
	ref        *tensorRef
	n          int64 // elements
	base       int64 // file offset of storage element 0 of the view's storage
	contiguous bool
	maxIdx     int64 // largest storage element index touched
}

func (ref *tensorRef) check(spans map[string]span) (view, error) {
	st := ref.st
	sp, ok := spans[st.key]
	if !ok {
		return view{}, fmt.Errorf("storage %q has no data", st.key)
	}
	esz := st.dt.size()
	rootNumel := sp.n / esz
	if st.offset > rootNumel || st.numel > rootNumel-st.offset {
		return view{}, fmt.Errorf("storage %q: elements [%d,+%d) but %d in the file", st.key, st.offset, st.numel, rootNumel)
	}
	v := view{ref: ref, base: sp.off + st.offset*esz}
	// Element count first: an empty tensor needs no storage at all.
	n := int64(1)
	for i, d := range ref.size {
		if d < 0 || ref.stride[i] < 0 {
			return view{}, fmt.Errorf("negative size or stride %v/%v", ref.size, ref.stride)
		}
		hi, lo := bits.Mul64(uint64(n), uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return view{}, fmt.Errorf("shape %v overflows", ref.size)
		}
		n = int64(lo)
	}
	if n == 0 {
		return v, nil
	}
	span := ref.offset // largest index touched, computed without overflow: everything is bounded by st.numel
	contiguous := true
	expect := int64(1)
	for i := len(ref.size) - 1; i >= 0; i-- {
		d, s := ref.size[i], ref.stride[i]
		if d == 1 {
			continue
		}
		if s > 0 && d-1 > (st.numel-span)/s {
			return view{}, fmt.Errorf("view (offset %d, size %v, stride %v) exceeds storage of %d elements", ref.offset, ref.size, ref.stride, st.numel)
		}
		span += (d - 1) * s
		if s != expect {
			contiguous = false
		}
		expect *= d
	}
	if span >= st.numel {
		return view{}, fmt.Errorf("view (offset %d, size %v, stride %v) exceeds storage of %d elements", ref.offset, ref.size, ref.stride, st.numel)
	}
	if n > st.numel {
		// Only overlapping (expanded) views have more elements than their storage; refusing them keeps every
		// allocation within the storage's size.
		return view{}, fmt.Errorf("view %v/%v has more elements than its storage (%d); overlapping views are not supported", ref.size, ref.stride, st.numel)
	}
	v.n, v.contiguous, v.maxIdx = n, contiguous, span
	return v, nil
}

func (v view) read(r io.ReaderAt, name string) (Tensor, error) {
	ref := v.ref
	dt := ref.st.dt
	t := Tensor{Name: name, DType: dt.String(), Shape: make([]int, len(ref.size))}
	for i, d := range ref.size {
		t.Shape[i] = int(d)
	}
	if dt.isFloat() {
		t.Data = make([]float32, v.n)
	} else {
		t.Ints = make([]int64, v.n)
	}
	if v.n == 0 {
		return t, nil
	}
	esz := dt.size()
	if v.contiguous {
		off := v.base + ref.offset*esz
		// The common case: little-endian float32 or int64 read straight into the result.
		if hostLittleEndian() && dt == dtF32 {
			return t, readFull(r, unsafe.Slice((*byte)(unsafe.Pointer(&t.Data[0])), v.n*4), off)
		}
		if hostLittleEndian() && dt == dtI64 {
			return t, readFull(r, unsafe.Slice((*byte)(unsafe.Pointer(&t.Ints[0])), v.n*8), off)
		}
		// Other types are converted through a small buffer.
		const chunk = 64 << 10
		buf := make([]byte, min(v.n*esz, chunk))
		for done := int64(0); done < v.n; {
			cnt := min(v.n-done, int64(len(buf))/esz)
			b := buf[:cnt*esz]
			if err := readFull(r, b, off+done*esz); err != nil {
				return Tensor{}, err
			}
			convert(dt, b, t.Data, t.Ints, done)
			done += cnt
		}
		return t, nil
	}
	// Strided view: read the storage range it touches, then gather in row-major order.
	raw := make([]byte, (v.maxIdx-ref.offset+1)*esz)
	if err := readFull(r, raw, v.base+ref.offset*esz); err != nil {
		return Tensor{}, err
	}
	idx := make([]int64, len(ref.size))
	pos := int64(0) // element index into raw
	for i := int64(0); i < v.n; i++ {
		convert(dt, raw[pos*esz:(pos+1)*esz], t.Data, t.Ints, i)
		for d := len(idx) - 1; d >= 0; d-- {
			idx[d]++
			pos += ref.stride[d]
			if idx[d] < ref.size[d] {
				break
			}
			pos -= idx[d] * ref.stride[d]
			idx[d] = 0
		}
	}
	return t, nil
}

func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %d bytes at %d: %w", len(b), off, err)
}

// convert decodes little-endian elements of b into f (floats) or ints starting at index at.
func convert(dt dtype, b []byte, f []float32, ints []int64, at int64) {
	le := binary.LittleEndian
	switch dt {
	case dtF32:
		for i := 0; i+4 <= len(b); i += 4 {
			f[at] = math.Float32frombits(le.Uint32(b[i:]))
			at++
		}
	case dtF64:
		for i := 0; i+8 <= len(b); i += 8 {
			f[at] = float32(math.Float64frombits(le.Uint64(b[i:])))
			at++
		}
	case dtF16:
		for i := 0; i+2 <= len(b); i += 2 {
			f[at] = halfToFloat32(le.Uint16(b[i:]))
			at++
		}
	case dtBF16:
		for i := 0; i+2 <= len(b); i += 2 {
			f[at] = math.Float32frombits(uint32(le.Uint16(b[i:])) << 16)
			at++
		}
	case dtI64:
		for i := 0; i+8 <= len(b); i += 8 {
			ints[at] = int64(le.Uint64(b[i:]))
			at++
		}
	case dtI32:
		for i := 0; i+4 <= len(b); i += 4 {
			ints[at] = int64(int32(le.Uint32(b[i:])))
			at++
		}
	case dtI16:
		for i := 0; i+2 <= len(b); i += 2 {
			ints[at] = int64(int16(le.Uint16(b[i:])))
			at++
		}
	case dtI8:
		for _, x := range b {
			ints[at] = int64(int8(x))
			at++
		}
	case dtU8, dtBool:
		for _, x := range b {
			ints[at] = int64(x)
			at++
		}
	}
}

// halfToFloat32 widens an IEEE binary16 value exactly.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch exp {
	case 0x1f: // inf, NaN (payload kept)
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 { // normalise the subnormal
			mant <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}
