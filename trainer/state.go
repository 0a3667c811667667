package trainer

import (
	"encoding/base64"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"github.com/natgw/natgw/internal/safetensors"
	"github.com/natgw/natgw/supernet"
)

// Resumable state file: safetensors with every supernet tensor under "param/<name>", the
// momentum buffers under "momentum/<name>", and step, generator state and spec in the
// metadata.
const (
	stateFormat  = "natgw-train-state/1"
	paramPrefix  = "param/"
	momentPrefix = "momentum/"
)

// SaveState writes everything needed to continue training: weights and BatchNorm
// statistics, optimizer state, step count and the generator state. The write is atomic.
func (t *Trainer) SaveState(path string) error {
	rngState, err := t.pcg.MarshalBinary()
	if err != nil {
		return fmt.Errorf("trainer: save state: %w", err)
	}
	f := safetensors.File{Metadata: map[string]string{
		"format": stateFormat,
		"step":   strconv.Itoa(t.step),
		"rng":    base64.StdEncoding.EncodeToString(rngState),
		"spec":   string(t.sn.Spec.MarshalSpec()),
	}}
	for _, p := range t.sn.Params() {
		f.Tensors = append(f.Tensors, safetensors.Tensor{Name: paramPrefix + p.Name, DType: "F32", Shape: p.Shape, Data: p.Data})
	}
	for _, p := range t.m.params {
		if buf, ok := t.opt.buf[p.name]; ok {
			f.Tensors = append(f.Tensors, safetensors.Tensor{Name: momentPrefix + p.name, DType: "F32", Shape: p.shape, Data: buf})
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".natgw-train-*")
	if err != nil {
		return fmt.Errorf("trainer: save state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := safetensors.Write(tmp, f); err != nil {
		tmp.Close()
		return fmt.Errorf("trainer: save state %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("trainer: save state %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("trainer: save state: %w", err)
	}
	return nil
}

// Resume loads a state written by SaveState into the trainer: the supernet's tensors are
// overwritten in place, and the optimizer, step count and generator continue from it.
// The spec must be the trainer's.
func (t *Trainer) Resume(path string) error {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return fmt.Errorf("trainer: resume: %w", err)
	}
	if f.Metadata["format"] != stateFormat {
		return fmt.Errorf("trainer: resume %s: not a training state (format %q)", path, f.Metadata["format"])
	}
	if f.Metadata["spec"] != string(t.sn.Spec.MarshalSpec()) {
		return fmt.Errorf("trainer: resume %s: saved for another spec", path)
	}
	step, err := strconv.Atoi(f.Metadata["step"])
	if err != nil || step < 0 {
		return fmt.Errorf("trainer: resume %s: bad step %q", path, f.Metadata["step"])
	}
	rngState, err := base64.StdEncoding.DecodeString(f.Metadata["rng"])
	if err != nil {
		return fmt.Errorf("trainer: resume %s: rng: %w", path, err)
	}
	byName := map[string]safetensors.Tensor{}
	for _, ts := range f.Tensors {
		byName[ts.Name] = ts
	}
	for _, p := range t.sn.Params() {
		ts, ok := byName[paramPrefix+p.Name]
		if !ok || len(ts.Data) != len(p.Data) {
			return fmt.Errorf("trainer: resume %s: tensor %s missing or of the wrong size", path, p.Name)
		}
	}
	bufs := map[string][]float32{}
	for _, p := range t.m.params {
		if ts, ok := byName[momentPrefix+p.name]; ok {
			if len(ts.Data) != len(p.data) {
				return fmt.Errorf("trainer: resume %s: momentum of %s has the wrong size", path, p.name)
			}
			bufs[p.name] = ts.Data
		}
	}
	if err := t.pcg.UnmarshalBinary(rngState); err != nil {
		return fmt.Errorf("trainer: resume %s: rng: %w", path, err)
	}
	for _, p := range t.sn.Params() {
		copy(p.Data, byName[paramPrefix+p.Name].Data)
	}
	t.opt.buf = bufs
	t.step = step
	return nil
}

// headWeight is the classifier's weight tensor.
const headWeight = "classifier.linear.weight"

// HeadStd is the default spread of a new task head's weights, N(0, 0.01) as torchvision's
// MobileNetV2. A fresh network's fan-in scale (1/√1280 = 0.028 on MobileNetV2's features)
// starts the loss at 6.0 instead of 4.8 on Flowers-102, and the large early gradients
// through the random head disturb the features being transferred: on Flowers-102, 30
// epochs of the fixed MobileNetV2 at 128 px reached 73.2 % val with it and 77.5 % with 0.01.
const HeadStd = 0.01

// WithClasses returns sn unchanged when it already has the given number of classes, else a
// copy whose classifier is freshly initialised for that many classes (fine-tuning a
// supernet on a new task): weights N(0, headStd), or at the fan-in scale of a fresh
// network when headStd is 0; zero bias. Every other tensor is copied.
func WithClasses(sn *supernet.Supernet, classes int, seed uint64, headStd float64) (*supernet.Supernet, error) {
	if !(headStd >= 0) || math.IsInf(headStd, 0) {
		return nil, fmt.Errorf("head std %v: want a finite value ≥ 0", headStd)
	}
	if sn.Spec.Classes == classes {
		return sn, nil
	}
	spec := *sn.Spec
	spec.Classes = classes
	fresh, err := supernet.Random(&spec, seed)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for _, p := range fresh.Params() {
		if old, ok := sn.Param(p.Name); ok && len(old.Data) == len(p.Data) {
			copy(p.Data, old.Data)
			continue
		}
		if p.Name == headWeight && headStd > 0 {
			for i := range p.Data {
				p.Data[i] = float32(rng.NormFloat64() * headStd)
			}
		}
	}
	for k, v := range sn.Meta {
		fresh.Meta[k] = v
	}
	return fresh, nil
}
