package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"slices"
	"sort"
	"strconv"
	"unsafe"

	"github.com/natgw/natgw/internal/atomicfile"
)

// Tensor is one named tensor of a file.
type Tensor struct {
	Name string
	// DType is "F32" or "F16" (floats, in Data) or "I64" (integers, in Ints) when writing. Reading also accepts
	// "BF16" and "F64" (into Data, F64 rounded to float32) and "I32" (into Ints).
	DType string
	Shape []int
	Data  []float32
	Ints  []int64
}

// File is a whole safetensors file.
type File struct {
	Metadata map[string]string
	Tensors  []Tensor
}

// maxHeaderLen bounds the JSON header, as the reference implementation does.
const maxHeaderLen = 100 << 20

const metadataKey = "__metadata__"

func elemSize(dtype string) int64 {
	switch dtype {
	case "F32", "I32":
		return 4
	case "F16", "BF16":
		return 2
	case "F64", "I64":
		return 8
	}
	return 0
}

func isFloat(dtype string) bool {
	return dtype == "F32" || dtype == "F16" || dtype == "BF16" || dtype == "F64"
}

func hostLittleEndian() bool {
	return binary.NativeEndian.Uint16([]byte{1, 0}) == 1
}

// numel is the element count of a shape, or an error for negative or overflowing shapes.
func numel(shape []int) (int64, error) {
	n := uint64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return 0, fmt.Errorf("shape %v overflows", shape)
		}
		n = lo
	}
	return int64(n), nil
}

// Write encodes f. The bytes depend only on f: tensors keep their order and are packed back to back, metadata keys
// are sorted. F16 tensors are rounded to IEEE half precision (round to nearest even, overflow to infinity).
func Write(w io.Writer, f File) error {
	header, err := encodeHeader(f)
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(header)))
	bw.Write(lenBuf[:])
	bw.Write(header)
	for _, t := range f.Tensors {
		if err := writeData(bw, t); err != nil {
			return fmt.Errorf("safetensors: tensor %q: %w", t.Name, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	return nil
}

// encodeHeader validates the tensors and builds the JSON header by hand, so that its bytes are fixed.
func encodeHeader(f File) ([]byte, error) {
	var h bytes.Buffer
	h.WriteByte('{')
	first := true
	sep := func() {
		if !first {
			h.WriteByte(',')
		}
		first = false
	}
	if len(f.Metadata) > 0 {
		sep()
		h.WriteString(`"` + metadataKey + `":{`)
		keys := make([]string, 0, len(f.Metadata))
		for k := range f.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				h.WriteByte(',')
			}
			writeJSONString(&h, k)
			h.WriteByte(':')
			writeJSONString(&h, f.Metadata[k])
		}
		h.WriteByte('}')
	}
	seen := make(map[string]bool, len(f.Tensors))
	var off int64
	for _, t := range f.Tensors {
		if t.Name == "" || t.Name == metadataKey {
			return nil, fmt.Errorf("invalid tensor name %q", t.Name)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("duplicate tensor name %q", t.Name)
		}
		seen[t.Name] = true
		n, err := numel(t.Shape)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		switch t.DType {
		case "F32", "F16":
			if int64(len(t.Data)) != n || t.Ints != nil {
				return nil, fmt.Errorf("tensor %q: %s shape %v needs %d values in Data, got %d (and %d Ints)", t.Name, t.DType, t.Shape, n, len(t.Data), len(t.Ints))
			}
		case "I64":
			if int64(len(t.Ints)) != n || t.Data != nil {
				return nil, fmt.Errorf("tensor %q: I64 shape %v needs %d values in Ints, got %d (and %d Data)", t.Name, t.Shape, n, len(t.Ints), len(t.Data))
			}
		default:
			return nil, fmt.Errorf("tensor %q: dtype %q cannot be written (F32, F16, I64)", t.Name, t.DType)
		}
		end := off + n*elemSize(t.DType)
		sep()
		writeJSONString(&h, t.Name)
		h.WriteString(`:{"dtype":"` + t.DType + `","shape":[`)
		for i, d := range t.Shape {
			if i > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		h.WriteString(`],"data_offsets":[` + strconv.FormatInt(off, 10) + `,` + strconv.FormatInt(end, 10) + `]}`)
		off = end
	}
	h.WriteByte('}')
	// Pad with spaces (valid JSON whitespace) so the data section starts on an 8-byte boundary.
	for (8+h.Len())%8 != 0 {
		h.WriteByte(' ')
	}
	return h.Bytes(), nil
}

func writeJSONString(b *bytes.Buffer, s string) {
	q, _ := json.Marshal(s) // a string always marshals
	b.Write(q)
}

func writeData(w *bufio.Writer, t Tensor) error {
	var err error
	switch t.DType {
	case "F32":
		if hostLittleEndian() && len(t.Data) > 0 {
			_, err = w.Write(unsafe.Slice((*byte)(unsafe.Pointer(&t.Data[0])), len(t.Data)*4))
			return err
		}
		var b [4]byte
		for _, v := range t.Data {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
			if _, err = w.Write(b[:]); err != nil {
				return err
			}
		}
	case "F16":
		var b [2]byte
		for _, v := range t.Data {
			binary.LittleEndian.PutUint16(b[:], float32ToHalf(v))
			if _, err = w.Write(b[:]); err != nil {
				return err
			}
		}
	case "I64":
		if hostLittleEndian() && len(t.Ints) > 0 {
			_, err = w.Write(unsafe.Slice((*byte)(unsafe.Pointer(&t.Ints[0])), len(t.Ints)*8))
			return err
		}
		var b [8]byte
		for _, v := range t.Ints {
			binary.LittleEndian.PutUint64(b[:], uint64(v))
			if _, err = w.Write(b[:]); err != nil {
				return err
			}
		}
	}
	return err
}

// WriteFile writes f to path atomically (see internal/atomicfile).
func WriteFile(path string, f File) error {
	return atomicfile.WriteFunc(path, func(w io.Writer) error { return Write(w, f) })
}

// ReadFile reads the file at path.
func ReadFile(path string) (File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return File{}, fmt.Errorf("safetensors: open: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return File{}, fmt.Errorf("safetensors: stat: %w", err)
	}
	f, err := Read(fh, st.Size())
	if err != nil {
		return File{}, fmt.Errorf("read %s: %w", path, err)
	}
	return f, nil
}

type headerEntry struct {
	DType       string  `json:"dtype"`
	Shape       []int   `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

type entry struct {
	name  string
	h     headerEntry
	n     int64
	order int
}

// Read decodes a file of the given size. Tensors come in data-offset order, which is the written order for files
// made by Write. Nothing is allocated for a tensor before the whole header has been checked, and the tensors'
// memory is at most the data section's size (twice that for F16/BF16, widened to float32).
func Read(r io.ReaderAt, size int64) (File, error) {
	if size < 8 {
		return File{}, fmt.Errorf("safetensors: file of %d bytes has no header length", size)
	}
	var lenBuf [8]byte
	if err := readFull(r, lenBuf[:], 0); err != nil {
		return File{}, fmt.Errorf("safetensors: header length: %w", err)
	}
	hlen := binary.LittleEndian.Uint64(lenBuf[:])
	if hlen > uint64(size-8) || hlen > maxHeaderLen {
		return File{}, fmt.Errorf("safetensors: header length %d does not fit a %d-byte file", hlen, size)
	}
	header := make([]byte, hlen)
	if err := readFull(r, header, 8); err != nil {
		return File{}, fmt.Errorf("safetensors: header: %w", err)
	}
	dataStart := 8 + int64(hlen)
	dataLen := size - dataStart
	f, entries, err := parseHeader(header, dataLen)
	if err != nil {
		return File{}, fmt.Errorf("safetensors: %w", err)
	}
	f.Tensors = make([]Tensor, 0, len(entries))
	for _, e := range entries {
		t, err := readTensor(r, dataStart, e)
		if err != nil {
			return File{}, fmt.Errorf("safetensors: tensor %q: %w", e.name, err)
		}
		f.Tensors = append(f.Tensors, t)
	}
	return f, nil
}

// parseHeader decodes and checks the header; entries come back sorted by offset.
func parseHeader(header []byte, dataLen int64) (File, []entry, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return f, nil, fmt.Errorf("header is not a JSON object: %v", err)
	}
	var entries []entry
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return f, nil, fmt.Errorf("header JSON: %w", err)
		}
		name, ok := tok.(string)
		if !ok {
			return f, nil, errors.New("header JSON: key is not a string")
		}
		if seen[name] {
			return f, nil, fmt.Errorf("header: duplicate key %q", name)
		}
		seen[name] = true
		if name == metadataKey {
			if err := dec.Decode(&f.Metadata); err != nil {
				return f, nil, fmt.Errorf("header %s: %w", metadataKey, err)
			}
			continue
		}
		var h headerEntry
		if err := dec.Decode(&h); err != nil {
			return f, nil, fmt.Errorf("header entry %q: %w", name, err)
		}
		e, err := checkEntry(name, h, dataLen)
		if err != nil {
			return f, nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		e.order = len(entries)
		entries = append(entries, e)
	}
	if _, err := dec.Token(); err != nil {
		return f, nil, fmt.Errorf("header JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return f, nil, errors.New("header JSON: trailing data after the object")
	}
	slices.SortStableFunc(entries, func(a, b entry) int {
		if c := a.h.DataOffsets[0] - b.h.DataOffsets[0]; c != 0 {
			return sign(c)
		}
		return sign(a.h.DataOffsets[1] - b.h.DataOffsets[1])
	})
	var end int64
	for _, e := range entries {
		if e.h.DataOffsets[0] < end {
			return f, nil, fmt.Errorf("tensor %q: data [%d,%d) overlaps the previous tensor", e.name, e.h.DataOffsets[0], e.h.DataOffsets[1])
		}
		end = e.h.DataOffsets[1]
	}
	return f, entries, nil
}

func sign(x int64) int {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}

func checkEntry(name string, h headerEntry, dataLen int64) (entry, error) {
	esz := elemSize(h.DType)
	if esz == 0 {
		return entry{}, fmt.Errorf("unsupported dtype %q", h.DType)
	}
	if h.Shape == nil {
		return entry{}, errors.New("missing shape")
	}
	if len(h.DataOffsets) != 2 {
		return entry{}, fmt.Errorf("data_offsets has %d values, want 2", len(h.DataOffsets))
	}
	b, e := h.DataOffsets[0], h.DataOffsets[1]
	if b < 0 || b > e || e > dataLen {
		return entry{}, fmt.Errorf("data_offsets [%d,%d) outside the %d-byte data section", b, e, dataLen)
	}
	n, err := numel(h.Shape)
	if err != nil {
		return entry{}, err
	}
	if n > (e-b)/esz || n*esz != e-b {
		return entry{}, fmt.Errorf("shape %v of %s needs %s bytes but data_offsets give %d", h.Shape, h.DType, byteCount(n, esz), e-b)
	}
	return entry{name: name, h: h, n: n}, nil
}

func byteCount(n, esz int64) string {
	hi, lo := bits.Mul64(uint64(n), uint64(esz))
	if hi != 0 {
		return "more than 2^64"
	}
	return strconv.FormatUint(lo, 10)
}

func readTensor(r io.ReaderAt, dataStart int64, e entry) (Tensor, error) {
	t := Tensor{Name: e.name, DType: e.h.DType, Shape: e.h.Shape}
	off := dataStart + e.h.DataOffsets[0]
	if isFloat(e.h.DType) {
		t.Data = make([]float32, e.n)
	} else {
		t.Ints = make([]int64, e.n)
	}
	if e.n == 0 {
		return t, nil
	}
	le := hostLittleEndian()
	switch {
	case le && e.h.DType == "F32":
		return t, readFull(r, unsafe.Slice((*byte)(unsafe.Pointer(&t.Data[0])), e.n*4), off)
	case le && e.h.DType == "I64":
		return t, readFull(r, unsafe.Slice((*byte)(unsafe.Pointer(&t.Ints[0])), e.n*8), off)
	}
	// Other types are converted through a small buffer.
	esz := elemSize(e.h.DType)
	buf := make([]byte, min(e.n*esz, 64<<10))
	for done := int64(0); done < e.n; {
		cnt := min(e.n-done, int64(len(buf))/esz)
		b := buf[:cnt*esz]
		if err := readFull(r, b, off+done*esz); err != nil {
			return Tensor{}, err
		}
		for i := int64(0); i < cnt; i++ {
			x := b[i*esz:]
			switch e.h.DType {
			case "F32":
				t.Data[done+i] = math.Float32frombits(binary.LittleEndian.Uint32(x))
			case "F16":
				t.Data[done+i] = halfToFloat32(binary.LittleEndian.Uint16(x))
			case "BF16":
				t.Data[done+i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(x)) << 16)
			case "F64":
				t.Data[done+i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(x)))
			case "I64":
				t.Ints[done+i] = int64(binary.LittleEndian.Uint64(x))
			case "I32":
				t.Ints[done+i] = int64(int32(binary.LittleEndian.Uint32(x)))
			}
		}
		done += cnt
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

// float32ToHalf rounds to the nearest IEEE binary16 value, ties to even; out-of-range values become infinities
// and NaNs stay NaNs (quiet, with the top payload bits kept).
func float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00
		}
		return sign | 0x7c00 | 0x200 | uint16(mant>>13)
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 { // below half the smallest subnormal
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - e)
		r := mant >> shift
		rem := mant & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || rem == half && r&1 == 1 {
			r++ // may carry into the smallest normal, which is right
		}
		return sign | uint16(r)
	}
	r := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || rem == 0x1000 && r&1 == 1 {
		r++ // may carry into the exponent, up to infinity, which is right
	}
	return sign | uint16(r)
}

// halfToFloat32 widens an IEEE binary16 value exactly.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch exp {
	case 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}
