package pth

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strconv"
)

// Write writes tensors as torch.save({"state_dict": OrderedDict(...)}) does in PyTorch's
// zip format (protocol-2 pickle, one uncompressed storage per tensor), so that
// torch.load(path)["state_dict"] and OFA's loaders read it. name is the archive's top folder.
// F32 tensors use Data; I64 tensors use Ints. Output is deterministic.
func Write(w io.Writer, name string, tensors []Tensor) error {
	if name == "" {
		name = "archive"
	}
	zw := zip.NewWriter(w)
	var pk bytes.Buffer
	p := pickler{&pk}
	p.op(0x80, 2) // PROTO 2
	p.op('}')     // EMPTY_DICT
	p.str("state_dict")
	p.global("collections", "OrderedDict")
	p.op(')', 'R') // EMPTY_TUPLE, REDUCE: OrderedDict()
	p.op('(')      // MARK
	for i, t := range tensors {
		storage := "FloatStorage"
		n := len(t.Data)
		if t.DType == "I64" {
			storage, n = "LongStorage", len(t.Ints)
		} else if t.DType != "F32" {
			return fmt.Errorf("pth: write %s: dtype %s (F32 and I64 only)", t.Name, t.DType)
		}
		if numel(t.Shape) != n {
			return fmt.Errorf("pth: write %s: %d values for shape %v", t.Name, n, t.Shape)
		}
		p.str(t.Name)
		p.global("torch._utils", "_rebuild_tensor_v2")
		p.op('(') // MARK: the call's arguments
		p.op('(') // MARK: the persistent id
		p.str("storage")
		p.global("torch", storage)
		p.str(strconv.Itoa(i))
		p.str("cpu")
		p.int(n)
		p.op('t', 'Q') // TUPLE, BINPERSID
		p.int(0)       // storage offset
		p.tuple(t.Shape)
		p.tuple(contiguousStrides(t.Shape))
		p.op(0x89) // NEWFALSE: requires_grad
		p.global("collections", "OrderedDict")
		p.op(')', 'R') // backward hooks: OrderedDict()
		p.op('t', 'R') // TUPLE, REDUCE: the tensor
	}
	p.op('u', 's', '.') // SETITEMS, SETITEM, STOP
	if err := store(zw, name+"/data.pkl", pk.Bytes()); err != nil {
		return err
	}
	if err := store(zw, name+"/byteorder", []byte("little")); err != nil {
		return err
	}
	for i, t := range tensors {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("%s/data/%d", name, i), Method: zip.Store})
		if err != nil {
			return err
		}
		bw := bufio.NewWriter(fw)
		var b [8]byte
		if t.DType == "I64" {
			for _, v := range t.Ints {
				binary.LittleEndian.PutUint64(b[:], uint64(v))
				bw.Write(b[:8])
			}
		} else {
			for _, v := range t.Data {
				binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
				bw.Write(b[:4])
			}
		}
		if err := bw.Flush(); err != nil {
			return err
		}
	}
	if err := store(zw, name+"/version", []byte("3\n")); err != nil {
		return err
	}
	return zw.Close()
}

func store(zw *zip.Writer, name string, data []byte) error {
	fw, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
	if err != nil {
		return err
	}
	_, err = fw.Write(data)
	return err
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func contiguousStrides(shape []int) []int {
	s := make([]int, len(shape))
	acc := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= shape[i]
	}
	return s
}

// pickler emits the few protocol-2 opcodes a state dict needs.
type pickler struct{ b *bytes.Buffer }

func (p pickler) op(ops ...byte) { p.b.Write(ops) }

func (p pickler) str(s string) { // BINUNICODE
	p.b.WriteByte('X')
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(s)))
	p.b.Write(n[:])
	p.b.WriteString(s)
}

func (p pickler) global(module, name string) { // GLOBAL
	p.b.WriteByte('c')
	p.b.WriteString(module + "\n" + name + "\n")
}

func (p pickler) int(v int) { // BININT (signed 32-bit) or LONG1
	if v >= math.MinInt32 && v <= math.MaxInt32 {
		p.b.WriteByte('J')
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(int32(v)))
		p.b.Write(n[:])
		return
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(v))
	p.b.Write([]byte{0x8a, 8})
	p.b.Write(n[:])
}

func (p pickler) tuple(v []int) {
	if len(v) == 0 {
		p.op(')')
		return
	}
	p.op('(')
	for _, x := range v {
		p.int(x)
	}
	p.op('t')
}
