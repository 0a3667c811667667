package supernet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/natgw/natgw/internal/atomicfile"
	"github.com/natgw/natgw/internal/pth"
	"github.com/natgw/natgw/internal/safetensors"
)

// Native checkpoint metadata keys.
const (
	nativeFormat    = "natgw-supernet/1"
	metaFormat      = "format"
	metaSpec        = "spec"
	metaUserPrefix  = "meta."
	nativeExtension = ".safetensors"
)

// Format names a checkpoint file format.
type Format string

// Checkpoint formats.
const (
	FormatNative Format = "native" // safetensors with the spec embedded
	FormatTorch  Format = "torch"  // torch.save zip or legacy
)

// LoadOptions tunes Load.
type LoadOptions struct {
	// Spec forces the spec for PyTorch checkpoints; nil infers it from the tensor shapes
	// among the built-in specs.
	Spec *Spec
	// SpecName picks a built-in spec by name, with the class count read from the checkpoint.
	SpecName string
}

// Load reads a supernet checkpoint: natgw's native file, or an OFA PyTorch checkpoint
// (torch.save of {"state_dict": ...} or a bare state dict, zip or legacy format).
func Load(path string, opt LoadOptions) (*Supernet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	sn, err := Read(f, st.Size(), opt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sn, nil
}

// DetectFormat tells the format from a file's first bytes.
func DetectFormat(head []byte) (Format, error) {
	// Safetensors first: its 8-byte little-endian header length may well start with 0x80,
	// the pickle PROTO opcode, so the torch test alone would claim such a file. A legacy
	// torch.save file starts with PROTO and a protocol of 2 to 5.
	switch {
	case len(head) >= 9 && head[8] == '{':
		return FormatNative, nil
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), len(head) >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5:
		return FormatTorch, nil
	}
	return "", errors.New("not a supernet checkpoint (neither safetensors nor torch.save)")
}

// Read is Load on an io.ReaderAt of the given size.
func Read(r io.ReaderAt, size int64, opt LoadOptions) (*Supernet, error) {
	head := make([]byte, 16)
	n, _ := r.ReadAt(head, 0)
	format, err := DetectFormat(head[:n])
	if err != nil {
		return nil, err
	}
	if format == FormatNative {
		f, err := safetensors.Read(r, size)
		if err != nil {
			return nil, err
		}
		return fromNative(f)
	}
	ts, err := pth.Load(r, size)
	if err != nil {
		return nil, err
	}
	return fromTorch(ts, opt)
}

func fromNative(f safetensors.File) (*Supernet, error) {
	if got := f.Metadata[metaFormat]; got != nativeFormat {
		return nil, fmt.Errorf("metadata %q is %q, want %q", metaFormat, got, nativeFormat)
	}
	spec, err := ParseSpec([]byte(f.Metadata[metaSpec]))
	if err != nil {
		return nil, err
	}
	params := make([]Param, len(f.Tensors))
	for i, t := range f.Tensors {
		if t.Data == nil {
			return nil, fmt.Errorf("key %s: dtype %s, want a float type", t.Name, t.DType)
		}
		params[i] = Param{Name: t.Name, Shape: t.Shape, Data: t.Data}
	}
	meta := map[string]string{}
	for k, v := range f.Metadata {
		if u, ok := strings.CutPrefix(k, metaUserPrefix); ok {
			meta[u] = v
		}
	}
	return New(spec, params, meta)
}

// ofaAliases are the older key spellings OFA's own load_state_dict accepts, tried in order.
var ofaAliases = [][2]string{
	{".bn.bn.", ".bn."},
	{".conv.conv.weight", ".conv.weight"},
	{".linear.linear.", ".linear."},
	{".linear.", ".linear.linear."},
	{"bn.", "bn.bn."},
	{"conv.weight", "conv.conv.weight"},
}

// canonicalKey maps a checkpoint key to the spec's spelling, as OFA's load_state_dict does.
func canonicalKey(key string, want map[string]bool) string {
	key = strings.Replace(key, ".mobile_inverted_conv.", ".conv.", 1)
	if want[key] {
		return key
	}
	for _, a := range ofaAliases {
		if strings.Contains(key, a[0]) {
			if k := strings.Replace(key, a[0], a[1], 1); want[k] {
				return k
			}
		}
	}
	return key
}

func fromTorch(ts []pth.Tensor, opt LoadOptions) (*Supernet, error) {
	classes := 0
	for _, t := range ts {
		if (t.Name == "classifier.linear.weight" || t.Name == "classifier.linear.linear.weight") && len(t.Shape) == 2 {
			classes = t.Shape[0]
		}
	}
	if opt.Spec != nil {
		return torchToSupernet(ts, opt.Spec)
	}
	if classes == 0 {
		return nil, errors.New("key classifier.linear.weight: missing, cannot infer the spec")
	}
	if opt.SpecName != "" {
		spec, err := Builtin(opt.SpecName, classes)
		if err != nil {
			return nil, err
		}
		return torchToSupernet(ts, spec)
	}
	var firstErr error
	for _, s := range builtins(classes) {
		sn, err := torchToSupernet(ts, s)
		if err == nil {
			return sn, nil
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("checkpoint does not match spec %s (nor any built-in: %v): %w", s.Name, BuiltinNames(), err)
		}
	}
	return nil, firstErr
}

func torchToSupernet(ts []pth.Tensor, spec *Spec) (*Supernet, error) {
	keys := spec.Keys()
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[k.Name] = true
	}
	params := make([]Param, 0, len(keys))
	for _, t := range ts {
		if base, ok := strings.CutSuffix(t.Name, "num_batches_tracked"); ok {
			if want[canonicalKey(base+"running_mean", want)] {
				continue // a BatchNorm counter: OFA never reads it
			}
			return nil, fmt.Errorf("key %s: not part of spec %s", t.Name, spec.Name)
		}
		name := canonicalKey(t.Name, want)
		if !want[name] {
			return nil, fmt.Errorf("key %s: not part of spec %s", t.Name, spec.Name)
		}
		if t.Data == nil {
			return nil, fmt.Errorf("key %s: dtype %s, want a float type", t.Name, t.DType)
		}
		params = append(params, Param{Name: name, Shape: t.Shape, Data: t.Data})
	}
	return New(spec, params, map[string]string{"source": "torch"})
}

// SaveOptions tunes Save.
type SaveOptions struct {
	// Half stores weights as IEEE float16 (half the size; values are rounded).
	Half bool
}

// Write writes the supernet in the native format: safetensors with the spec and metadata
// embedded; deterministic for the same supernet.
func (sn *Supernet) Write(w io.Writer, opt SaveOptions) error {
	f := safetensors.File{Metadata: map[string]string{
		metaFormat: nativeFormat,
		metaSpec:   string(sn.Spec.MarshalSpec()),
	}}
	for k, v := range sn.Meta {
		f.Metadata[metaUserPrefix+k] = v
	}
	dtype := "F32"
	if opt.Half {
		dtype = "F16"
	}
	for _, p := range sn.params {
		f.Tensors = append(f.Tensors, safetensors.Tensor{Name: p.Name, DType: dtype, Shape: p.Shape, Data: p.Data})
	}
	return safetensors.Write(w, f)
}

// WriteTorch writes the supernet as OFA's checkpoints are laid out: torch.save of
// {"state_dict": OrderedDict} in PyTorch's zip format, with a num_batches_tracked counter
// (0) after each BatchNorm, so OFA's own code loads it.
func (sn *Supernet) WriteTorch(w io.Writer) error {
	ts := make([]pth.Tensor, 0, len(sn.params)+len(sn.params)/4)
	for _, p := range sn.params {
		ts = append(ts, pth.Tensor{Name: p.Name, DType: "F32", Shape: p.Shape, Data: p.Data})
		if base, ok := strings.CutSuffix(p.Name, ".running_var"); ok {
			ts = append(ts, pth.Tensor{Name: base + ".num_batches_tracked", DType: "I64", Shape: []int{}, Ints: []int64{0}})
		}
	}
	return pth.Write(w, strings.ReplaceAll(sn.Spec.Name, ".", "_"), ts)
}

// SaveTorch writes WriteTorch's format to path atomically.
func (sn *Supernet) SaveTorch(path string) error {
	return atomicfile.WriteFunc(path, sn.WriteTorch)
}

// Save writes the native format to path atomically.
func (sn *Supernet) Save(path string, opt SaveOptions) error {
	return atomicfile.WriteFunc(path, func(w io.Writer) error { return sn.Write(w, opt) })
}
