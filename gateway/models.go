package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/natgw/natgw/exporter"
	"github.com/natgw/natgw/specializer"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

// Accuracy is what a served model claims. Top1/Split is the most trustworthy figure:
// the held-out test split when it was measured (after selection), else validation.
// ValTop1 is the figure selection used.
type Accuracy struct {
	Top1      float64 `json:"top1"`
	Split     string  `json:"split"`
	Predicted bool    `json:"predicted"`
	ValTop1   float64 `json:"val_top1"`
}

// ModelInfo describes one produced model; its ID is the SHA-256 of the ONNX bytes.
type ModelInfo struct {
	ID              string        `json:"id"`
	Task            string        `json:"task"`
	Arch            supernet.Arch `json:"arch"`
	Resolution      int           `json:"resolution"`
	MAdds           int64         `json:"madds"`
	Params          int64         `json:"params"`
	LatencyMS       float64       `json:"latency_ms,omitempty"`
	Accuracy        Accuracy      `json:"accuracy"`
	ONNXURL         string        `json:"onnx_url"`
	SHA256          string        `json:"sha256"`
	SizeBytes       int64         `json:"size_bytes"`
	SupernetVersion string        `json:"supernet_version"`
}

// Resolver picks the subnet for a budget. The default answers from the task's archive.
type Resolver interface {
	Resolve(ctx context.Context, t *task.Task, b specializer.Budget) (task.Entry, error)
}

type archiveResolver struct{}

func (archiveResolver) Resolve(_ context.Context, t *task.Task, b specializer.Budget) (task.Entry, error) {
	return specializer.Best(t.Archive.Snapshot(), b)
}

// Cache keys. Resolutions embed the supernet version so new weights never serve old answers.
func resolveKey(t *task.Task, b specializer.Budget) string {
	return "resolve:" + t.Name + ":" + t.SupernetVersion() + ":" + b.Key()
}
func modelKey(id string) string { return "model:" + id }
func metaKey(id string) string  { return "meta:" + id }

// predictedTTL keeps surrogate answers short-lived: their measured replacement should win soon.
const predictedTTL = time.Minute

// resolve returns the model for a budget: from the cache, or by resolving the budget to an
// arch, exporting it and storing bytes and metadata (one specialization, however many
// requests and replicas ask at once).
func (s *Server) resolve(ctx context.Context, t *task.Task, b specializer.Budget) (ModelInfo, error) {
	raw, err := s.resolveRaw(ctx, t, b)
	if err != nil {
		return ModelInfo{}, err
	}
	var info ModelInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return ModelInfo{}, fmt.Errorf("cached resolution: %w", err)
	}
	return info, nil
}

// resolveRaw is resolve returning the cached JSON as is: the hot path of /v1/models
// serves it without decoding and re-encoding.
func (s *Server) resolveRaw(ctx context.Context, t *task.Task, b specializer.Budget) ([]byte, error) {
	predicted := false
	raw, err := s.group.Do(ctx, resolveKey(t, b), s.cfg.ResolveTTL, func(ctx context.Context) ([]byte, error) {
		e, err := s.resolver.Resolve(ctx, t, b)
		if err != nil {
			return nil, err
		}
		info, err := s.produce(ctx, t, e)
		if err != nil {
			return nil, err
		}
		s.metrics.specializations.WithLabelValues(t.Name).Inc()
		predicted = info.Accuracy.Predicted
		return json.Marshal(info)
	})
	if err != nil {
		return nil, err
	}
	if predicted {
		// Let a measured answer replace this one soon.
		s.cache.Set(ctx, resolveKey(t, b), raw, predictedTTL)
	}
	return raw, nil
}

// produce exports e's subnet and stores its bytes and metadata under its SHA-256.
func (s *Server) produce(ctx context.Context, t *task.Task, e task.Entry) (ModelInfo, error) {
	data, err := s.export(ctx, t, e.Arch)
	// Recalibration's activations (hundreds of MB) are garbage now. Left to the collector, they
	// set its goal so high that no cycle runs for a long while, and until one does every
	// request allocates from fresh pages: first-touch faults were a fifth of the CPU time
	// of warm /v1/models. Exports are rare; one forced collection and scavenge is cheap.
	debug.FreeOSMemory()
	if err != nil {
		return ModelInfo{}, err
	}
	sum := sha256.Sum256(data)
	id := hex.EncodeToString(sum[:])
	acc := Accuracy{Top1: e.Top1, Split: e.Split, Predicted: e.Predicted, ValTop1: e.Top1}
	if e.TestTop1 != nil {
		acc.Top1, acc.Split = *e.TestTop1, task.SplitTest
	}
	info := ModelInfo{
		ID: id, Task: t.Name, Arch: e.Arch, Resolution: e.Arch.R, MAdds: e.MAdds, Params: e.Params,
		LatencyMS: e.LatencyMS, Accuracy: acc, ONNXURL: "/v1/models/" + id + "/model.onnx",
		SHA256: id, SizeBytes: int64(len(data)), SupernetVersion: t.SupernetVersion(),
	}
	meta, err := json.Marshal(info)
	if err != nil {
		return ModelInfo{}, err
	}
	if err := s.cache.Set(ctx, modelKey(id), data, s.cfg.ModelTTL); err != nil {
		return ModelInfo{}, err
	}
	if err := s.cache.Set(ctx, metaKey(id), meta, s.cfg.ModelTTL); err != nil {
		return ModelInfo{}, err
	}
	return info, nil
}

// export extracts the subnet, rebuilds its BatchNorm statistics on the task's calibration
// images (as the accuracy measurement did) and exports it. Deterministic: the same task and
// arch always give the same bytes.
func (s *Server) export(ctx context.Context, t *task.Task, arch supernet.Arch) ([]byte, error) {
	sub, err := t.Supernet.Extract(arch)
	if err != nil {
		return nil, err
	}
	if err := t.Recalibrate(ctx, sub); err != nil {
		return nil, err
	}
	pp := t.Preprocess(sub.Resolution)
	return exporter.Export(sub, exporter.Options{
		Task: t.Name, Labels: t.Labels, Preprocess: &pp,
		SupernetID: t.Supernet.Meta[supernet.MetaID], SupernetVersion: t.Supernet.Meta[supernet.MetaVersion],
		ProducerVersion: s.cfg.Version,
	})
}

// info returns a produced model's metadata by id.
func (s *Server) info(ctx context.Context, id string) (ModelInfo, error) {
	raw, ok, err := s.cache.Get(ctx, metaKey(id))
	if err != nil {
		return ModelInfo{}, err
	}
	if !ok {
		return ModelInfo{}, notFound("model %s is unknown here: request it by budget through /v1/models first", id)
	}
	var info ModelInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return ModelInfo{}, fmt.Errorf("cached metadata: %w", err)
	}
	return info, nil
}

// bytes returns a model's ONNX file, re-exporting it when the cache lost it (export is
// deterministic, and the hash is checked).
func (s *Server) bytes(ctx context.Context, id string) ([]byte, error) {
	return s.group.Do(ctx, modelKey(id), s.cfg.ModelTTL, func(ctx context.Context) ([]byte, error) {
		info, err := s.info(ctx, id)
		if err != nil {
			return nil, err
		}
		t, ok := s.tasks[info.Task]
		if !ok || t.SupernetVersion() != info.SupernetVersion {
			return nil, notFound("model %s belongs to a task or supernet version this gateway does not serve", id)
		}
		data, err := s.export(ctx, t, info.Arch)
		if err != nil {
			return nil, err
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != id {
			return nil, fmt.Errorf("re-export of %s gave different bytes", id)
		}
		return data, nil
	})
}

// TaskResolvers answers each task with its own specializer.Resolver (archive, then a short
// surrogate search when the archive is far below the budget); tasks without one are
// answered from their archive.
type TaskResolvers map[string]*specializer.Resolver

// Resolve implements Resolver.
func (m TaskResolvers) Resolve(ctx context.Context, t *task.Task, b specializer.Budget) (task.Entry, error) {
	if r := m[t.Name]; r != nil {
		return r.Resolve(ctx, b)
	}
	return archiveResolver{}.Resolve(ctx, t, b)
}
