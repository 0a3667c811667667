package tflite

import (
	"errors"
	"fmt"

	flatbuffers "github.com/google/flatbuffers/go"
)

// errBounds is wrapped by every error about an offset or length outside the file.
var errBounds = errors.New("out of bounds")

// reader validates every offset before the flatbuffers Table API dereferences it: the
// library trusts its input and would panic on a corrupt file.
type reader struct {
	buf []byte
	// budget caps the elements decoded in total, so that many tables sharing one large
	// vector cannot multiply a small file into a huge allocation.
	budget int64
}

func newReader(buf []byte) *reader {
	return &reader{buf: buf, budget: 8*int64(len(buf)) + 1<<16}
}

func (r *reader) spend(n int64, what string) error {
	r.budget -= n
	if r.budget < 0 {
		return fmt.Errorf("%s: decoded size exceeds %d× the file size", what, 8)
	}
	return nil
}

// in reports whether [pos, pos+size) lies inside the buffer.
func (r *reader) in(pos, size uint64) bool {
	return pos <= uint64(len(r.buf)) && size <= uint64(len(r.buf))-pos
}

// table is a validated flatbuffer table.
type table struct {
	r      *reader
	t      flatbuffers.Table
	vtLen  uint64 // vtable size in bytes
	objLen uint64 // inline object size in bytes
}

// tableAt validates the table whose start is pos (its soffset to the vtable).
func (r *reader) tableAt(pos uint64, what string) (table, error) {
	if !r.in(pos, 4) {
		return table{}, fmt.Errorf("%s: table at %d: %w", what, pos, errBounds)
	}
	vt := int64(pos) - int64(flatbuffers.GetSOffsetT(r.buf[pos:]))
	if vt < 0 || !r.in(uint64(vt), 4) {
		return table{}, fmt.Errorf("%s: vtable at %d: %w", what, vt, errBounds)
	}
	vtLen := uint64(flatbuffers.GetVOffsetT(r.buf[vt:]))
	objLen := uint64(flatbuffers.GetVOffsetT(r.buf[vt+2:]))
	if vtLen < 4 || vtLen%2 != 0 || !r.in(uint64(vt), vtLen) || objLen < 4 || !r.in(pos, objLen) {
		return table{}, fmt.Errorf("%s: vtable at %d (size %d, object %d): %w", what, vt, vtLen, objLen, errBounds)
	}
	return table{r: r, t: flatbuffers.Table{Bytes: r.buf, Pos: flatbuffers.UOffsetT(pos)}, vtLen: vtLen, objLen: objLen}, nil
}

// field returns the absolute position of field slot (0-based field id) holding size bytes,
// or 0 when the field is absent.
func (t table) field(slot int, size uint64) (uint64, error) {
	vo := uint64(4 + 2*slot)
	if vo+2 > t.vtLen {
		return 0, nil // the vtable predates this field
	}
	off := uint64(t.t.Offset(flatbuffers.VOffsetT(vo)))
	if off == 0 {
		return 0, nil
	}
	if off+size > t.objLen {
		return 0, fmt.Errorf("field %d at +%d (%d bytes) past its table's %d bytes: %w", slot, off, size, t.objLen, errBounds)
	}
	return uint64(t.t.Pos) + off, nil
}

func (t table) uint8(slot int, def uint8) (uint8, error) {
	p, err := t.field(slot, 1)
	if err != nil || p == 0 {
		return def, err
	}
	return t.t.GetUint8(flatbuffers.UOffsetT(p)), nil
}

func (t table) int8(slot int, def int8) (int8, error) {
	v, err := t.uint8(slot, uint8(def))
	return int8(v), err
}

func (t table) int32(slot int, def int32) (int32, error) {
	p, err := t.field(slot, 4)
	if err != nil || p == 0 {
		return def, err
	}
	return t.t.GetInt32(flatbuffers.UOffsetT(p)), nil
}

func (t table) uint32(slot int, def uint32) (uint32, error) {
	v, err := t.int32(slot, int32(def))
	return uint32(v), err
}

func (t table) uint64(slot int, def uint64) (uint64, error) {
	p, err := t.field(slot, 8)
	if err != nil || p == 0 {
		return def, err
	}
	return t.t.GetUint64(flatbuffers.UOffsetT(p)), nil
}

func (t table) float32(slot int, def float32) (float32, error) {
	p, err := t.field(slot, 4)
	if err != nil || p == 0 {
		return def, err
	}
	return t.t.GetFloat32(flatbuffers.UOffsetT(p)), nil
}

// indirect follows the uoffset stored in field slot; ok is false when the field is absent.
func (t table) indirect(slot int) (pos uint64, ok bool, err error) {
	p, err := t.field(slot, 4)
	if err != nil || p == 0 {
		return 0, false, err
	}
	target := uint64(t.t.Indirect(flatbuffers.UOffsetT(p)))
	if target >= uint64(len(t.r.buf)) {
		return 0, false, fmt.Errorf("field %d points to %d: %w", slot, target, errBounds)
	}
	return target, true, nil
}

// sub returns the table referenced by field slot; ok is false when absent.
func (t table) sub(slot int, what string) (table, bool, error) {
	p, ok, err := t.indirect(slot)
	if err != nil || !ok {
		return table{}, false, err
	}
	s, err := t.r.tableAt(p, what)
	return s, err == nil, err
}

// vector is a validated vector: n elements of elem bytes from start.
type vector struct {
	r     *reader
	start uint64
	n     int
	elem  uint64
}

// vec returns the vector in field slot (empty when absent) with elements of elem bytes.
func (t table) vec(slot int, elem uint64, what string) (vector, error) {
	p, ok, err := t.indirect(slot)
	if err != nil {
		return vector{}, fmt.Errorf("%s: %w", what, err)
	}
	if !ok {
		return vector{r: t.r, elem: elem}, nil
	}
	if !t.r.in(p, 4) {
		return vector{}, fmt.Errorf("%s: vector length at %d: %w", what, p, errBounds)
	}
	n := uint64(flatbuffers.GetUint32(t.r.buf[p:]))
	if !t.r.in(p+4, n*elem) {
		return vector{}, fmt.Errorf("%s: vector of %d×%d bytes at %d: %w", what, n, elem, p, errBounds)
	}
	if err := t.r.spend(int64(n), what); err != nil {
		return vector{}, err
	}
	return vector{r: t.r, start: p + 4, n: int(n), elem: elem}, nil
}

func (v vector) bytes() []byte { return v.r.buf[v.start : v.start+uint64(v.n)*v.elem] }

func (v vector) at(i int) []byte { return v.r.buf[v.start+uint64(i)*v.elem:] }

func (v vector) int32s() []int32 {
	if v.n == 0 {
		return nil
	}
	out := make([]int32, v.n)
	for i := range out {
		out[i] = flatbuffers.GetInt32(v.at(i))
	}
	return out
}

func (v vector) ints() []int {
	if v.n == 0 {
		return nil
	}
	out := make([]int, v.n)
	for i := range out {
		out[i] = int(flatbuffers.GetInt32(v.at(i)))
	}
	return out
}

func (v vector) int64s() []int64 {
	if v.n == 0 {
		return nil
	}
	out := make([]int64, v.n)
	for i := range out {
		out[i] = flatbuffers.GetInt64(v.at(i))
	}
	return out
}

func (v vector) float32s() []float32 {
	if v.n == 0 {
		return nil
	}
	out := make([]float32, v.n)
	for i := range out {
		out[i] = flatbuffers.GetFloat32(v.at(i))
	}
	return out
}

// table returns element i of a vector of tables.
func (v vector) table(i int, what string) (table, error) {
	p := v.start + uint64(i)*4
	return v.r.tableAt(p+uint64(flatbuffers.GetUint32(v.r.buf[p:])), what)
}

// str returns the string in field slot ("" when absent).
func (t table) str(slot int, what string) (string, error) {
	v, err := t.vec(slot, 1, what)
	if err != nil {
		return "", err
	}
	return string(v.bytes()), nil
}
