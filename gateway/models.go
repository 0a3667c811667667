package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/natgw/natgw/exporter"
	"github.com/natgw/natgw/specializer"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

// A budget request reads top to bottom in this file:
//
//	answerBudget  budget → the task's answer: the best measured subnet that fits, and any
//	              background work that may find a better one (specializer.Resolver)
//	modelFor      subnet → its model's metadata, made once per arch and task version
//	makeModel     the making: stored BatchNorm statistics, slice, fold, export to ONNX,
//	              store bytes and metadata under the file's SHA-256
//
// and a model asked for by id is modelInfo (metadata) and modelFile (bytes, rebuilt the
// same way when the cache lost them).

// Accuracy is what a served model claims, on one scale for every answer: Top1 on the
// validation split, the figure every choice was made by. TestTop1, when present, was
// measured afterwards on the held-out test split by the offline evaluation (natgw evaluate)
// and never chose anything.
type Accuracy struct {
	Top1     float64  `json:"top1"`
	Split    string   `json:"split"`
	TestTop1 *float64 `json:"test_top1,omitempty"`
}

// ModelInfo describes one model; its ID is the SHA-256 of the ONNX bytes.
type ModelInfo struct {
	ID         string        `json:"id"`
	Task       string        `json:"task"`
	Arch       supernet.Arch `json:"arch"`
	Resolution int           `json:"resolution"`
	MAdds      int64         `json:"madds"`
	Params     int64         `json:"params"`
	LatencyMS  float64       `json:"latency_ms,omitempty"`
	Accuracy   Accuracy      `json:"accuracy"`
	// Calibration, when set, is how its BatchNorm statistics were rebuilt, a subnet measured
	// by a gateway; absent: as the task's archive's were (all its calibration images).
	Calibration     *task.Calibration `json:"calibration,omitempty"`
	ONNXURL         string            `json:"onnx_url"`
	SHA256          string            `json:"sha256"`
	SizeBytes       int64             `json:"size_bytes"`
	SupernetVersion string            `json:"supernet_version"`
	// TaskVersion identifies the task's weights, calibration, preprocessing and labels.
	TaskVersion string `json:"task_version"`
}

// budgetAnswer is /v1/models's body: the model, and the background work, if any, that may
// give the same budget a better one (Pending.Candidate's accuracy is a prediction).
type budgetAnswer struct {
	ModelInfo
	Pending *specializer.Pending `json:"pending,omitempty"`
}

// maxWait bounds how long a client's Prefer: wait may hold a request.
const maxWait = 60 * time.Second

// answerBudget answers a budget at once with the task's best measured subnet that fits.
// With wait > 0 (Prefer: wait), a request whose budget has background work pending first
// waits up to that long for it to settle (a measurement that grew the archive may start
// another search: that is waited for too), and answers with whatever is best then.
func (s *Server) answerBudget(ctx context.Context, ts *servedTask, b specializer.Budget, wait time.Duration) (budgetAnswer, error) {
	ans, err := ts.resolver.Resolve(ctx, b)
	if err != nil {
		return budgetAnswer{}, err
	}
	if ans.Pending != nil && wait > 0 {
		timer := time.NewTimer(min(wait, maxWait))
		defer timer.Stop()
	waiting:
		for ans.Pending != nil {
			select {
			case <-ts.resolver.Settled(b):
			case <-timer.C:
				break waiting
			case <-ctx.Done():
				break waiting
			}
			if ans, err = ts.resolver.Resolve(ctx, b); err != nil {
				return budgetAnswer{}, err
			}
		}
	}
	info, err := s.modelFor(ctx, ts, ans.Entry)
	if err != nil {
		return budgetAnswer{}, err
	}
	return budgetAnswer{ModelInfo: info, Pending: ans.Pending}, nil
}

// Cache keys. A model is identified by its task's version, natgw's version (recorded in
// the file), the arch and how its statistics were calibrated; its bytes and metadata by
// its SHA-256.
func archKey(ts *servedTask, e task.Entry, version string) string {
	c := "task"
	if e.Calibration != nil {
		c = e.Calibration.Key()
	}
	return "arch:" + ts.t.Name + ":" + ts.version + ":" + version + ":" + e.Hash + ":" + c
}
func modelKey(id string) string { return "model:" + id }
func metaKey(id string) string  { return "meta:" + id }

// modelFor returns the metadata of e's model, making the model the first time its arch is
// asked for (once per arch however many requests and replicas ask at once, through the
// cache's single flight).
func (s *Server) modelFor(ctx context.Context, ts *servedTask, e task.Entry) (ModelInfo, error) {
	raw, err := s.group.Do(ctx, archKey(ts, e, s.cfg.Version), s.cfg.ModelTTL, func(ctx context.Context) ([]byte, error) {
		info, err := s.makeModel(ctx, ts, e)
		if err != nil {
			return nil, err
		}
		return json.Marshal(info)
	})
	if err != nil {
		return ModelInfo{}, err
	}
	var info ModelInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return ModelInfo{}, fmt.Errorf("cached model metadata: %w", err)
	}
	return info, nil
}

// makeModel exports e's subnet and stores its bytes and metadata under its SHA-256.
func (s *Server) makeModel(ctx context.Context, ts *servedTask, e task.Entry) (ModelInfo, error) {
	data, err := s.export(ctx, ts, e)
	if err != nil {
		return ModelInfo{}, err
	}
	sum := sha256.Sum256(data)
	id := hex.EncodeToString(sum[:])
	info := ModelInfo{
		ID: id, Task: ts.t.Name, Arch: e.Arch, Resolution: e.Arch.R, MAdds: e.MAdds, Params: e.Params,
		LatencyMS: e.LatencyMS, Accuracy: Accuracy{Top1: e.Top1, Split: e.Split, TestTop1: e.TestTop1},
		Calibration: e.Calibration, ONNXURL: "/v1/models/" + id + "/model.onnx", SHA256: id,
		SizeBytes: int64(len(data)), SupernetVersion: ts.t.Supernet.Version(), TaskVersion: ts.version,
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

// export takes e's subnet out with the statistics its accuracy was measured with (stored:
// no forward pass) and converts it to ONNX. At most Config.ExportWorkers run at once;
// the others wait their turn. Deterministic: the same task and entry give the same bytes.
func (s *Server) export(ctx context.Context, ts *servedTask, e task.Entry) ([]byte, error) {
	select {
	case s.exportSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.exportSlots }()
	sub, err := ts.t.Subnet(ctx, e)
	if err != nil {
		return nil, err
	}
	pp := ts.t.Preprocess(sub.Resolution)
	data, err := exporter.Export(sub, exporter.Options{
		Task: ts.t.Name, Labels: ts.t.Labels, Preprocess: &pp,
		SupernetID: ts.t.Supernet.Meta[supernet.MetaID], SupernetVersion: ts.t.Supernet.Meta[supernet.MetaVersion],
		ProducerVersion: s.cfg.Version,
	})
	if err == nil {
		s.metrics.exports.WithLabelValues(ts.t.Name).Inc()
	}
	return data, err
}

// errUnknownModel is a model id no cache tier knows.
func errUnknownModel(id string) error {
	return notFound("model %s is unknown here: request it by budget through /v1/models first", id)
}

// modelInfo returns a model's metadata by id.
func (s *Server) modelInfo(ctx context.Context, id string) (ModelInfo, error) {
	raw, ok, err := s.cache.Get(ctx, metaKey(id))
	if err != nil {
		return ModelInfo{}, err
	}
	if !ok {
		return ModelInfo{}, errUnknownModel(id)
	}
	var info ModelInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return ModelInfo{}, fmt.Errorf("cached metadata: %w", err)
	}
	return info, nil
}

// modelFile returns a model's ONNX file, made again when the cache lost it (export is
// deterministic, and the hash is checked).
func (s *Server) modelFile(ctx context.Context, id string) ([]byte, error) {
	data, err := s.group.Do(ctx, modelKey(id), s.cfg.ModelTTL, func(ctx context.Context) ([]byte, error) {
		info, err := s.modelInfo(ctx, id)
		if err != nil {
			return nil, err
		}
		ts := s.tasks[info.Task]
		if ts == nil || ts.version != info.TaskVersion {
			return nil, notFound("model %s belongs to a task or task version this gateway does not serve", id)
		}
		e, ok := ts.t.Archive.Lookup(info.Arch.Hash())
		if !ok {
			e = task.Entry{Arch: info.Arch, Calibration: info.Calibration}
		}
		data, err := s.export(ctx, ts, e)
		if err != nil {
			return nil, err
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != id {
			return nil, errRebuiltOther
		}
		return data, nil
	})
	if errors.Is(err, errRebuiltOther) {
		return nil, notFound("model %s can no longer be made again here: request a model by budget through /v1/models", id)
	}
	return data, err
}

// errRebuiltOther: a model made again came out with other bytes (its statistics were
// measured by a server that is gone).
var errRebuiltOther = errors.New("the rebuilt model has other bytes")
