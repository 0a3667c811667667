package onnxrt

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// maxElements bounds one input tensor (1<<31 float32 = 8 GiB) so a bad shape
// cannot ask onnxruntime for a huge allocation.
const maxElements = 1 << 31

// TensorInfo describes a model input or output as onnxruntime reports it.
type TensorInfo struct {
	Name string
	// Shape has -1 for symbolic (dynamic) dimensions such as the batch.
	Shape []int64
	// ElementType is the element type, e.g. "float32"; empty for non-tensor values.
	ElementType string
}

// ErrSymbolicShape is returned (wrapped) by Warm for a model whose input has a symbolic
// dimension besides the batch: there is no one shape to warm.
var ErrSymbolicShape = errors.New("symbolic dimension besides the batch")

// Session is an onnxruntime session for one model, taking one float32 input.
// Run is safe for concurrent use; Close waits for running calls to finish.
type Session struct {
	env     *Env
	sess    *ort.DynamicAdvancedSession
	inputs  []TensorInfo
	outputs []TensorInfo

	// mu is held shared by Run and exclusively by Close, so Close never frees
	// the session under a running call.
	mu     sync.RWMutex
	closed bool
}

// NewSession builds a session from ONNX model bytes with the Env's thread settings
// and all graph optimisations. The model must have exactly one input, a float32
// tensor, and a float32 tensor as its first output.
func (e *Env) NewSession(model []byte) (*Session, error) {
	if e.closed.Load() {
		return nil, fmt.Errorf("onnxrt: new session: env: %w", ErrClosed)
	}
	if len(model) == 0 {
		return nil, errors.New("onnxrt: new session: empty model")
	}
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(model)
	if err != nil {
		return nil, fmt.Errorf("onnxrt: new session: read model inputs/outputs: %w", err)
	}
	inputs, outputs := convertInfos(ins), convertInfos(outs)
	if len(inputs) != 1 {
		return nil, fmt.Errorf("onnxrt: new session: model has %d inputs, want exactly 1", len(inputs))
	}
	if inputs[0].ElementType != "float32" {
		return nil, fmt.Errorf("onnxrt: new session: input %q is %q, want a float32 tensor", inputs[0].Name, inputs[0].ElementType)
	}
	if len(outputs) == 0 {
		return nil, errors.New("onnxrt: new session: model has no outputs")
	}
	if outputs[0].ElementType != "float32" {
		return nil, fmt.Errorf("onnxrt: new session: output %q is %q, want a float32 tensor", outputs[0].Name, outputs[0].ElementType)
	}

	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("onnxrt: new session: options: %w", err)
	}
	defer opts.Destroy()
	if n := e.cfg.IntraOpThreads; n > 0 {
		if err := opts.SetIntraOpNumThreads(n); err != nil {
			return nil, fmt.Errorf("onnxrt: new session: intra-op threads %d: %w", n, err)
		}
	}
	if n := e.cfg.InterOpThreads; n > 0 {
		if err := opts.SetInterOpNumThreads(n); err != nil {
			return nil, fmt.Errorf("onnxrt: new session: inter-op threads %d: %w", n, err)
		}
	}
	if err := opts.SetGraphOptimizationLevel(ort.GraphOptimizationLevelEnableAll); err != nil {
		return nil, fmt.Errorf("onnxrt: new session: optimisation level: %w", err)
	}
	if e.cfg.ProfilePrefix != "" {
		if err := opts.EnableProfiling(e.cfg.ProfilePrefix); err != nil {
			return nil, fmt.Errorf("onnxrt: new session: profiling: %w", err)
		}
	}
	if err := setSpin(opts, e.cfg.Spin); err != nil {
		return nil, fmt.Errorf("onnxrt: new session: %w", err)
	}

	// Only the first output is fetched; onnxruntime skips work that feeds nothing else.
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(model,
		[]string{inputs[0].Name}, []string{outputs[0].Name}, opts)
	if err != nil {
		return nil, fmt.Errorf("onnxrt: new session: %w", err)
	}
	e.live.Add(1)
	return &Session{env: e, sess: sess, inputs: inputs, outputs: outputs}, nil
}

func setSpin(opts *ort.SessionOptions, s Spin) error {
	var entries [][2]string
	switch s {
	case SpinAlways:
	case SpinNever:
		entries = [][2]string{{"session.intra_op.allow_spinning", "0"}}
	case SpinDuringRun:
		entries = [][2]string{{"session.intra_op.allow_spinning", "1"}, {"session.force_spinning_stop", "1"}}
	default:
		return fmt.Errorf("spin policy %v", s)
	}
	for _, kv := range entries {
		if err := opts.AddSessionConfigEntry(kv[0], kv[1]); err != nil {
			return fmt.Errorf("spin policy %v: %s=%s: %w", s, kv[0], kv[1], err)
		}
	}
	return nil
}

func convertInfos(in []ort.InputOutputInfo) []TensorInfo {
	out := make([]TensorInfo, len(in))
	for i, info := range in {
		out[i].Name = info.Name
		if info.OrtValueType != ort.ONNXTypeTensor {
			continue
		}
		out[i].Shape = append([]int64(nil), info.Dimensions...)
		out[i].ElementType = elementTypeName(info.DataType)
	}
	return out
}

func elementTypeName(t ort.TensorElementDataType) string {
	switch t {
	case ort.TensorElementDataTypeFloat:
		return "float32"
	case ort.TensorElementDataTypeDouble:
		return "float64"
	case ort.TensorElementDataTypeFloat16:
		return "float16"
	case ort.TensorElementDataTypeInt64:
		return "int64"
	case ort.TensorElementDataTypeInt32:
		return "int32"
	case ort.TensorElementDataTypeUint8:
		return "uint8"
	case ort.TensorElementDataTypeInt8:
		return "int8"
	case ort.TensorElementDataTypeBool:
		return "bool"
	case ort.TensorElementDataTypeString:
		return "string"
	}
	return t.String()
}

// Inputs describes the model's inputs (exactly one).
func (s *Session) Inputs() []TensorInfo { return cloneInfos(s.inputs) }

// Outputs describes all the model's outputs; Run returns the first.
func (s *Session) Outputs() []TensorInfo { return cloneInfos(s.outputs) }

func cloneInfos(in []TensorInfo) []TensorInfo {
	out := make([]TensorInfo, len(in))
	for i, t := range in {
		out[i] = TensorInfo{Name: t.Name, Shape: append([]int64(nil), t.Shape...), ElementType: t.ElementType}
	}
	return out
}

// checkInput validates an input shape against the model's declared shape and the
// data length. It guards every product against overflow because shapes come from
// callers (ultimately from requests).
func checkInput(want []int64, shape []int64, n int) error {
	if len(shape) != len(want) {
		return fmt.Errorf("input has rank %d, model wants %d (shape %v)", len(shape), len(want), want)
	}
	elems := int64(1)
	for i, d := range shape {
		if d < 1 {
			return fmt.Errorf("input dimension %d is %d, want >= 1", i, d)
		}
		if w := want[i]; w >= 0 && d != w {
			return fmt.Errorf("input dimension %d is %d, model wants %d (shape %v)", i, d, w, want)
		}
		if elems > math.MaxInt64/d {
			return fmt.Errorf("input shape %v overflows", shape)
		}
		elems *= d
		if elems > maxElements {
			return fmt.Errorf("input shape %v has more than %d elements", shape, int64(maxElements))
		}
	}
	if elems != int64(n) {
		return fmt.Errorf("input shape %v needs %d values, got %d", shape, elems, n)
	}
	return nil
}

// Run feeds input (row-major, with the given shape) to the model and returns its
// first output and that output's shape. input is read, not copied, and must not
// change during the call. Cancelling ctx asks onnxruntime to stop the run.
func (s *Session) Run(ctx context.Context, input []float32, shape []int64) ([]float32, []int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("onnxrt: run: %w", err)
	}
	if err := checkInput(s.inputs[0].Shape, shape, len(input)); err != nil {
		return nil, nil, fmt.Errorf("onnxrt: run: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, nil, fmt.Errorf("onnxrt: run: session: %w", ErrClosed)
	}

	in, err := ort.NewTensor(ort.NewShape(shape...), input)
	if err != nil {
		return nil, nil, fmt.Errorf("onnxrt: run: input tensor: %w", err)
	}
	defer in.Destroy()

	runOpts, err := ort.NewRunOptions()
	if err != nil {
		return nil, nil, fmt.Errorf("onnxrt: run: run options: %w", err)
	}
	defer runOpts.Destroy()
	// Terminate makes onnxruntime abandon the run at its next check point.
	stop := context.AfterFunc(ctx, func() { _ = runOpts.Terminate() })
	outs := []ort.Value{nil} // nil: onnxruntime allocates the output
	runErr := s.sess.RunWithOptions([]ort.Value{in}, outs, runOpts)
	stop()
	if runErr != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, nil, fmt.Errorf("onnxrt: run: %w (%v)", ctxErr, runErr)
		}
		return nil, nil, fmt.Errorf("onnxrt: run: %w", runErr)
	}
	out := outs[0]
	defer out.Destroy()
	t, ok := out.(*ort.Tensor[float32])
	if !ok {
		return nil, nil, fmt.Errorf("onnxrt: run: output %q is %T, want a float32 tensor", s.outputs[0].Name, out)
	}
	// GetData is a Go-owned copy of onnxruntime's buffer; it stays valid after Destroy.
	return t.GetData(), append([]int64(nil), t.GetShape()...), nil
}

// Warm runs the model once on zeros at each batch size given, in that order. onnxruntime
// sizes its memory arena and per-shape state on the first run of each input shape, which
// then costs several times a later run; warming at load moves that cost off the first
// requests. Every input dimension but the first must be fixed (else ErrSymbolicShape).
func (s *Session) Warm(ctx context.Context, batches []int) error {
	if len(batches) == 0 {
		return nil
	}
	shape := append([]int64(nil), s.inputs[0].Shape...)
	if len(shape) == 0 {
		return errors.New("onnxrt: warm: the input is a scalar, it has no batch dimension")
	}
	elems := int64(1)
	for i, d := range shape[1:] {
		if d < 1 {
			return fmt.Errorf("onnxrt: warm: input dimension %d (shape %v): %w", i+1, shape, ErrSymbolicShape)
		}
		if elems > maxElements/d {
			return fmt.Errorf("onnxrt: warm: input shape %v has more than %d elements per batch item", shape, int64(maxElements))
		}
		elems *= d
	}
	var x []float32
	for _, b := range batches {
		if b < 1 || int64(b) > maxElements/elems {
			return fmt.Errorf("onnxrt: warm: batch size %d out of range", b)
		}
		if n := int(int64(b) * elems); len(x) < n {
			x = make([]float32, n)
		}
		shape[0] = int64(b)
		if _, _, err := s.Run(ctx, x[:int64(b)*elems], shape); err != nil {
			return fmt.Errorf("onnxrt: warm at batch %d: %w", b, err)
		}
	}
	return nil
}

// Metadata returns the model's metadata_props (custom key/value metadata).
func (s *Session) Metadata() (map[string]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, fmt.Errorf("onnxrt: metadata: session: %w", ErrClosed)
	}
	md, err := s.sess.GetModelMetadata()
	if err != nil {
		return nil, fmt.Errorf("onnxrt: metadata: %w", err)
	}
	defer md.Destroy()
	keys, err := md.GetCustomMetadataMapKeys()
	if err != nil {
		return nil, fmt.Errorf("onnxrt: metadata keys: %w", err)
	}
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		v, _, err := md.LookupCustomMetadataMap(k)
		if err != nil {
			return nil, fmt.Errorf("onnxrt: metadata %q: %w", k, err)
		}
		out[k] = v
	}
	return out, nil
}

// Close destroys the session after running calls finish. It is idempotent.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.env.live.Add(-1)
	if err := s.sess.Destroy(); err != nil {
		return fmt.Errorf("onnxrt: close session: %w", err)
	}
	return nil
}
