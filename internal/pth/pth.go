package pth

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"

	"github.com/nlpodyssey/gopickle/types"
)

// Tensor is one entry of a checkpoint's state dict.
type Tensor struct {
	Name string
	// DType is the element type in the file: "F32", "F64", "F16", "BF16", "I64", "I32", "I16", "I8", "U8" or "BOOL".
	DType string
	Shape []int
	// Data holds the values of floating-point tensors, converted to float32 (F64 loses precision); nil otherwise.
	Data []float32
	// Ints holds the values of integer and bool tensors, widened to int64; nil otherwise.
	Ints []int64
}

// legacyMagic is torch.serialization.MAGIC_NUMBER, the first pickle of a legacy-format file.
const legacyMagic = "1950a86a20f9469cfc6c"

const legacyProtocol = 1001

// LoadFile reads the checkpoint at path.
func LoadFile(path string) ([]Tensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat checkpoint: %w", err)
	}
	ts, err := Load(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return ts, nil
}

// Load reads a checkpoint; tensors come in file (pickle) order. size is the file size; every length read from the
// file is checked against what is left before anything is allocated, so arbitrary bytes give an error, never a
// panic or an allocation larger than the file (see materialize for the one exception that the output type forces).
// Tensors that are the very same view of one storage share their backing slice.
func Load(r io.ReaderAt, size int64) (ts []Tensor, err error) {
	defer func() {
		if p := recover(); p != nil {
			ts, err = nil, fmt.Errorf("pth: malformed checkpoint: %v", p)
		}
	}()
	if size < 0 {
		return nil, errors.New("pth: negative size")
	}
	var head [4]byte
	if size >= 4 {
		if _, err := r.ReadAt(head[:], 0); err != nil {
			return nil, fmt.Errorf("pth: read header: %w", err)
		}
	}
	var (
		top   interface{}
		spans map[string]span
		u     *unpickler
	)
	ops := opBudget(size)
	switch {
	case bytes.Equal(head[:], []byte("PK\x03\x04")):
		u = newUnpickler(false)
		top, spans, err = loadZip(r, size, u, &ops)
	case head[0] == 0x80: // pickle protocol marker: the legacy stream
		u = newUnpickler(true)
		top, spans, err = loadLegacy(r, size, u, &ops)
	default:
		return nil, errors.New("pth: not a torch.save file (neither zip nor legacy pickle stream)")
	}
	if err != nil {
		return nil, fmt.Errorf("pth: %w", err)
	}
	refs, err := stateDict(top)
	if err != nil {
		return nil, fmt.Errorf("pth: %w", err)
	}
	ts, err = materialize(r, size, spans, refs)
	if err != nil {
		return nil, fmt.Errorf("pth: %w", err)
	}
	return ts, nil
}

// span is where a root storage's bytes lie in the file.
type span struct{ off, n int64 }

func loadZip(r io.ReaderAt, size int64, u *unpickler, ops *int64) (interface{}, map[string]span, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, nil, fmt.Errorf("open zip: %w", err)
	}
	var pkl *zip.File
	prefix := ""
	for _, f := range zr.File {
		dir, base, ok := strings.Cut(f.Name, "/")
		if ok && base == "data.pkl" {
			if pkl != nil {
				return nil, nil, errors.New("zip holds more than one data.pkl")
			}
			pkl, prefix = f, dir+"/"
		}
	}
	if pkl == nil {
		return nil, nil, errors.New("zip has no <name>/data.pkl")
	}
	entries := map[string]*zip.File{}
	for _, f := range zr.File {
		if rest, ok := strings.CutPrefix(f.Name, prefix); ok {
			entries[rest] = f
		}
	}
	if bo, ok := entries["byteorder"]; ok {
		b, err := readSmall(r, size, bo, 16)
		if err != nil {
			return nil, nil, fmt.Errorf("byteorder: %w", err)
		}
		if string(b) != "little" {
			return nil, nil, fmt.Errorf("byteorder %q not supported", b)
		}
	}

	var src io.Reader
	left := size
	switch pkl.Method {
	case zip.Store:
		sp, err := storedSpan(pkl, size)
		if err != nil {
			return nil, nil, fmt.Errorf("data.pkl: %w", err)
		}
		src, left = io.NewSectionReader(r, sp.off, sp.n), sp.n
	default:
		// A compressed pickle is read through the decompressor and capped at the file size.
		rc, err := pkl.Open()
		if err != nil {
			return nil, nil, fmt.Errorf("data.pkl: %w", err)
		}
		defer rc.Close()
		src = rc
	}
	b, _, err := scanPickle(bufio.NewReader(src), left, ops)
	if err != nil {
		return nil, nil, fmt.Errorf("data.pkl: %w", err)
	}
	top, err := u.load(b)
	if err != nil {
		return nil, nil, fmt.Errorf("data.pkl: %w", err)
	}
	spans := make(map[string]span, len(u.roots))
	for key := range u.roots {
		f, ok := entries["data/"+key]
		if !ok {
			return nil, nil, fmt.Errorf("storage %q: no data/%s entry", key, key)
		}
		sp, err := storedSpan(f, size)
		if err != nil {
			return nil, nil, fmt.Errorf("storage %q: %w", key, err)
		}
		spans[key] = sp
	}
	return top, spans, nil
}

// storedSpan locates an uncompressed zip entry's bytes, so that storages can be read in place.
func storedSpan(f *zip.File, size int64) (span, error) {
	if f.Method != zip.Store {
		return span{}, fmt.Errorf("entry %s is compressed (method %d); only stored entries are supported", f.Name, f.Method)
	}
	if f.CompressedSize64 != f.UncompressedSize64 {
		return span{}, fmt.Errorf("entry %s: stored sizes differ", f.Name)
	}
	off, err := f.DataOffset()
	if err != nil {
		return span{}, fmt.Errorf("entry %s: %w", f.Name, err)
	}
	if off < 0 || off > size || f.UncompressedSize64 > uint64(size-off) {
		return span{}, fmt.Errorf("entry %s lies outside the file", f.Name)
	}
	return span{off: off, n: int64(f.UncompressedSize64)}, nil
}

func readSmall(r io.ReaderAt, size int64, f *zip.File, max int64) ([]byte, error) {
	sp, err := storedSpan(f, size)
	if err != nil {
		return nil, err
	}
	if sp.n > max {
		return nil, fmt.Errorf("entry %s is %d bytes, want at most %d", f.Name, sp.n, max)
	}
	b := make([]byte, sp.n)
	if _, err := r.ReadAt(b, sp.off); err != nil {
		return nil, err
	}
	return b, nil
}

func loadLegacy(r io.ReaderAt, size int64, u *unpickler, ops *int64) (interface{}, map[string]span, error) {
	br := bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 64<<10)
	var pos int64
	next := func(what string) (interface{}, error) {
		b, n, err := scanPickle(br, size-pos, ops)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		pos += n
		v, err := u.load(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return v, nil
	}
	magic, err := next("magic number")
	if err != nil {
		return nil, nil, err
	}
	want, _ := new(big.Int).SetString(legacyMagic, 16)
	if m, ok := magic.(*big.Int); !ok || m.Cmp(want) != 0 {
		return nil, nil, errors.New("legacy format: bad magic number")
	}
	proto, err := next("protocol version")
	if err != nil {
		return nil, nil, err
	}
	if p, ok := asInt(proto); !ok || p != legacyProtocol {
		return nil, nil, fmt.Errorf("legacy format: protocol version %v, want %d", proto, legacyProtocol)
	}
	sysInfo, err := next("sys_info")
	if err != nil {
		return nil, nil, err
	}
	if le, ok := dictGet(sysInfo, "little_endian"); ok && le != true {
		return nil, nil, errors.New("legacy format: big-endian checkpoints are not supported")
	}
	top, err := next("main pickle")
	if err != nil {
		return nil, nil, err
	}
	keysObj, err := next("storage keys")
	if err != nil {
		return nil, nil, err
	}
	keys, ok := asTuple(keysObj)
	if !ok {
		return nil, nil, fmt.Errorf("storage keys are %T, not a list", keysObj)
	}
	spans := make(map[string]span, len(keys))
	var cnt [8]byte
	for _, k := range keys {
		key, ok := asString(k)
		if !ok {
			return nil, nil, fmt.Errorf("storage key %T is not a string", k)
		}
		root, ok := u.roots[key]
		if !ok {
			return nil, nil, fmt.Errorf("storage %q listed but never referenced", key)
		}
		if _, dup := spans[key]; dup {
			return nil, nil, fmt.Errorf("storage %q listed twice", key)
		}
		if size-pos < 8 {
			return nil, nil, fmt.Errorf("storage %q: element count: %w", key, io.ErrUnexpectedEOF)
		}
		if _, err := r.ReadAt(cnt[:], pos); err != nil {
			return nil, nil, fmt.Errorf("storage %q: element count: %w", key, err)
		}
		pos += 8
		n := binary.LittleEndian.Uint64(cnt[:])
		esz := root.dt.size()
		if n > uint64((size-pos)/esz) {
			return nil, nil, fmt.Errorf("storage %q: %d elements but %d bytes left: %w", key, n, size-pos, io.ErrUnexpectedEOF)
		}
		spans[key] = span{off: pos, n: int64(n) * esz}
		pos += int64(n) * esz
	}
	return top, spans, nil
}

// dictGet looks a string key up in a pickled dict or OrderedDict.
func dictGet(d interface{}, key string) (interface{}, bool) {
	var found interface{}
	ok := false
	_ = eachEntry(d, func(k, v interface{}) error {
		if s, isStr := asString(k); isStr && s == key {
			found, ok = v, true
		}
		return nil
	})
	return found, ok
}

// eachEntry calls fn for each entry of a dict in insertion order; it reports false for non-dicts.
func eachEntry(d interface{}, fn func(k, v interface{}) error) error {
	switch t := d.(type) {
	case *types.Dict:
		for _, e := range *t {
			if err := fn(e.Key, e.Value); err != nil {
				return err
			}
		}
	case *types.OrderedDict:
		for el := t.List.Front(); el != nil; el = el.Next() {
			e := el.Value.(*types.OrderedDictEntry)
			if err := fn(e.Key, e.Value); err != nil {
				return err
			}
		}
	default:
		return errNotDict
	}
	return nil
}

var errNotDict = errors.New("not a dict")

type namedRef struct {
	name string
	ref  *tensorRef
}

// stateDict picks the name->tensor mapping out of the top object: the value of "state_dict" if there is one,
// else the object itself. Non-tensor values are skipped.
func stateDict(top interface{}) ([]namedRef, error) {
	if sd, ok := dictGet(top, "state_dict"); ok {
		top = sd
	}
	var out []namedRef
	index := map[string]int{}
	err := eachEntry(top, func(k, v interface{}) error {
		name, ok := asString(k)
		if !ok {
			return nil // not a parameter name
		}
		var ref *tensorRef
		switch t := v.(type) {
		case *tensorRef:
			ref = t
		case *unsupportedTensor:
			return fmt.Errorf("tensor %q: built by %s, which is not supported", name, t.fn)
		default:
			return nil
		}
		// A repeated key overwrites the earlier value, as in Python, keeping the first position.
		if i, dup := index[name]; dup {
			out[i].ref = ref
			return nil
		}
		index[name] = len(out)
		out = append(out, namedRef{name: name, ref: ref})
		return nil
	})
	if errors.Is(err, errNotDict) {
		return nil, fmt.Errorf("top-level object is %T, want a dict", top)
	}
	return out, err
}
