package pth

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// dtype is an element type of a storage.
type dtype int

const (
	dtInvalid dtype = iota
	dtF32
	dtF64
	dtF16
	dtBF16
	dtI64
	dtI32
	dtI16
	dtI8
	dtU8
	dtBool
)

func (d dtype) String() string {
	switch d {
	case dtF32:
		return "F32"
	case dtF64:
		return "F64"
	case dtF16:
		return "F16"
	case dtBF16:
		return "BF16"
	case dtI64:
		return "I64"
	case dtI32:
		return "I32"
	case dtI16:
		return "I16"
	case dtI8:
		return "I8"
	case dtU8:
		return "U8"
	case dtBool:
		return "BOOL"
	}
	return "invalid"
}

func (d dtype) size() int64 {
	switch d {
	case dtF64, dtI64:
		return 8
	case dtF32, dtI32:
		return 4
	case dtF16, dtBF16, dtI16:
		return 2
	case dtI8, dtU8, dtBool:
		return 1
	}
	return 0
}

func (d dtype) isFloat() bool { return d == dtF32 || d == dtF64 || d == dtF16 || d == dtBF16 }

// storageDType maps a torch storage class name (torch.FloatStorage, ...) to its element type.
func storageDType(name string) dtype {
	switch name {
	case "FloatStorage":
		return dtF32
	case "DoubleStorage":
		return dtF64
	case "HalfStorage":
		return dtF16
	case "BFloat16Storage":
		return dtBF16
	case "LongStorage":
		return dtI64
	case "IntStorage":
		return dtI32
	case "ShortStorage":
		return dtI16
	case "CharStorage":
		return dtI8
	case "ByteStorage", "UntypedStorage":
		return dtU8
	case "BoolStorage":
		return dtBool
	}
	return dtInvalid
}

// torchDType maps a torch dtype attribute name (torch.float32, ...) to its element type.
func torchDType(name string) dtype {
	switch name {
	case "float32", "float":
		return dtF32
	case "float64", "double":
		return dtF64
	case "float16", "half":
		return dtF16
	case "bfloat16":
		return dtBF16
	case "int64", "long":
		return dtI64
	case "int32", "int":
		return dtI32
	case "int16", "short":
		return dtI16
	case "int8":
		return dtI8
	case "uint8":
		return dtU8
	case "bool":
		return dtBool
	}
	return dtInvalid
}

// storageClass stands for a torch.XxxStorage global; torchDTypeObj for a torch.float32-style global.
type storageClass struct {
	name string
	dt   dtype
}

type torchDTypeObj struct{ dt dtype }

// storageRef is a storage as named by a persistent id: a root storage key, and for legacy views the element range
// of the root it covers.
type storageRef struct {
	dt     dtype
	key    string
	offset int64 // elements into the root storage
	numel  int64
}

// tensorRef is a tensor as rebuilt by _rebuild_tensor_v2: a strided view of a storage.
type tensorRef struct {
	st     *storageRef
	offset int64
	size   []int64
	stride []int64
}

// unsupportedTensor marks a tensor rebuilt by a torch function this package does not implement (sparse, quantized).
type unsupportedTensor struct{ fn string }

// callable adapts a Go function to gopickle's Callable.
type callable func(args ...interface{}) (interface{}, error)

func (c callable) Call(args ...interface{}) (interface{}, error) { return c(args...) }

// opaque stands for any global this package does not know (optimizer state, argparse namespaces, numpy arrays in
// the checkpoint's other entries). It accepts every construction and mutation and keeps nothing, so such values
// parse and are then ignored.
type opaque struct{ module, name string }

func (o *opaque) Call(...interface{}) (interface{}, error)  { return o, nil }
func (o *opaque) PyNew(...interface{}) (interface{}, error) { return o, nil }
func (o *opaque) PySetState(interface{}) error              { return nil }
func (o *opaque) PyDictSet(interface{}, interface{}) error  { return nil }
func (o *opaque) PySetAttr(string, interface{}) error       { return nil }
func (o *opaque) Set(interface{}, interface{})              {}
func (o *opaque) Append(interface{})                        {}
func (o *opaque) Add(interface{})                           {}

// unpickler holds the per-file state of the class and persistent-id hooks.
type unpickler struct {
	legacy bool
	roots  map[string]*storageRef // root storages by key
	views  map[string]*storageRef // legacy storage views by view key
}

func newUnpickler(legacy bool) *unpickler {
	return &unpickler{legacy: legacy, roots: map[string]*storageRef{}, views: map[string]*storageRef{}}
}

// load decodes one pickle that has been through scanPickle. Panics inside gopickle become errors.
func (u *unpickler) load(b []byte) (res interface{}, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, fmt.Errorf("malformed pickle: %v", p)
		}
	}()
	up := pickle.NewUnpickler(bytes.NewReader(b))
	up.FindClass = u.findClass
	up.PersistentLoad = u.persistentLoad
	up.GetExtension = func(int) (interface{}, error) { return nil, errors.New("pickle extension codes are not supported") }
	up.NextBuffer = func() (interface{}, error) { return nil, errors.New("out-of-band pickle buffers are not supported") }
	return up.Load()
}

func (u *unpickler) findClass(module, name string) (interface{}, error) {
	switch module {
	case "torch._utils":
		switch name {
		case "_rebuild_tensor_v2":
			return callable(rebuildTensorV2), nil
		case "_rebuild_parameter", "_rebuild_parameter_with_state":
			return callable(rebuildParameter), nil
		}
		if strings.HasPrefix(name, "_rebuild_") {
			return callable(func(...interface{}) (interface{}, error) {
				return &unsupportedTensor{fn: module + "." + name}, nil
			}), nil
		}
	case "torch._tensor":
		if name == "_rebuild_from_type_v2" {
			return callable(rebuildFromTypeV2), nil
		}
	case "torch":
		if strings.HasSuffix(name, "Storage") {
			return &storageClass{name: name, dt: storageDType(name)}, nil
		}
		if dt := torchDType(name); dt != dtInvalid {
			return &torchDTypeObj{dt: dt}, nil
		}
	}
	return &opaque{module: module, name: name}, nil
}

func asString(v interface{}) (string, bool) {
	switch s := v.(type) {
	case string:
		return s, true
	case []byte: // keys written by Python 2
		return string(s), true
	}
	return "", false
}

func asInt(v interface{}) (int64, bool) {
	switch i := v.(type) {
	case int:
		return int64(i), true
	case bool:
		return 0, false
	}
	return 0, false
}

func asTuple(v interface{}) ([]interface{}, bool) {
	switch t := v.(type) {
	case *types.Tuple:
		return *t, true
	case *types.List:
		return *t, true
	}
	return nil, false
}

// persistentLoad resolves ('storage', storage_type, key, location, numel[, view_metadata]).
func (u *unpickler) persistentLoad(pid interface{}) (interface{}, error) {
	t, ok := asTuple(pid)
	if !ok || len(t) == 0 {
		return nil, fmt.Errorf("persistent id %T is not a tuple", pid)
	}
	if tag, _ := asString(t[0]); tag != "storage" {
		return nil, fmt.Errorf("persistent id of kind %v not supported", t[0])
	}
	if u.legacy && len(t) != 6 || !u.legacy && len(t) != 5 {
		return nil, fmt.Errorf("storage persistent id has %d fields", len(t))
	}
	var dt dtype
	switch st := t[1].(type) {
	case *storageClass:
		if st.dt == dtInvalid {
			return nil, fmt.Errorf("storage type torch.%s not supported", st.name)
		}
		dt = st.dt
	case *torchDTypeObj:
		dt = st.dt
	default:
		return nil, fmt.Errorf("storage type %T not supported", t[1])
	}
	key, ok := asString(t[2])
	if !ok {
		return nil, fmt.Errorf("storage key %T is not a string", t[2])
	}
	numel, ok := asInt(t[4])
	if !ok || numel < 0 {
		return nil, fmt.Errorf("storage %q: bad element count %v", key, t[4])
	}
	root, ok := u.roots[key]
	if !ok {
		root = &storageRef{dt: dt, key: key, numel: numel}
		u.roots[key] = root
	}
	if root.dt != dt {
		return nil, fmt.Errorf("storage %q used as both %s and %s", key, root.dt, dt)
	}
	if !u.legacy || t[5] == nil {
		return root, nil
	}
	vm, ok := asTuple(t[5])
	if !ok || len(vm) != 3 {
		return nil, fmt.Errorf("storage %q: bad view metadata", key)
	}
	viewKey, ok1 := asString(vm[0])
	off, ok2 := asInt(vm[1])
	n, ok3 := asInt(vm[2])
	if !ok1 || !ok2 || !ok3 || off < 0 || n < 0 {
		return nil, fmt.Errorf("storage %q: bad view metadata", key)
	}
	if v, ok := u.views[viewKey]; ok {
		return v, nil
	}
	// Bounds against the root are checked once the root's size in the file is known.
	v := &storageRef{dt: dt, key: key, offset: off, numel: n}
	u.views[viewKey] = v
	return v, nil
}

func intTuple(v interface{}, what string) ([]int64, error) {
	t, ok := asTuple(v)
	if !ok {
		return nil, fmt.Errorf("%s is %T, not a tuple", what, v)
	}
	out := make([]int64, len(t))
	for i, e := range t {
		n, ok := asInt(e)
		if !ok {
			return nil, fmt.Errorf("%s[%d] is %T, not an int", what, i, e)
		}
		out[i] = n
	}
	return out, nil
}

// rebuildTensorV2 mirrors torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
// backward_hooks[, metadata]); only the view geometry matters here.
func rebuildTensorV2(args ...interface{}) (interface{}, error) {
	if len(args) < 4 {
		return nil, fmt.Errorf("_rebuild_tensor_v2 with %d arguments", len(args))
	}
	st, ok := args[0].(*storageRef)
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor_v2 storage is %T", args[0])
	}
	off, ok := asInt(args[1])
	if !ok || off < 0 {
		return nil, fmt.Errorf("_rebuild_tensor_v2 bad storage offset %v", args[1])
	}
	size, err := intTuple(args[2], "size")
	if err != nil {
		return nil, err
	}
	stride, err := intTuple(args[3], "stride")
	if err != nil {
		return nil, err
	}
	if len(size) != len(stride) {
		return nil, fmt.Errorf("size has %d dims but stride %d", len(size), len(stride))
	}
	return &tensorRef{st: st, offset: off, size: size, stride: stride}, nil
}

// rebuildParameter mirrors torch._utils._rebuild_parameter(data, requires_grad, backward_hooks[, state]).
func rebuildParameter(args ...interface{}) (interface{}, error) {
	if len(args) < 1 {
		return nil, errors.New("_rebuild_parameter without arguments")
	}
	switch args[0].(type) {
	case *tensorRef, *unsupportedTensor:
		return args[0], nil
	}
	return nil, fmt.Errorf("_rebuild_parameter of %T", args[0])
}

// rebuildFromTypeV2 mirrors torch._tensor._rebuild_from_type_v2(func, new_type, args, state): the tensor subclass
// and its Python state are dropped.
func rebuildFromTypeV2(args ...interface{}) (interface{}, error) {
	if len(args) < 3 {
		return nil, errors.New("_rebuild_from_type_v2 with too few arguments")
	}
	fn, ok := args[0].(types.Callable)
	if !ok {
		return nil, fmt.Errorf("_rebuild_from_type_v2 function is %T", args[0])
	}
	a, ok := asTuple(args[2])
	if !ok {
		return nil, fmt.Errorf("_rebuild_from_type_v2 args are %T", args[2])
	}
	return fn.Call(a...)
}
