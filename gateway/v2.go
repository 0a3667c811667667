package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
)

// Open Inference Protocol v2 (KServe/Triton). Models are addressed by their id.

func (s *Server) oipServer(c *gin.Context) error {
	c.JSON(http.StatusOK, gin.H{"name": "natgw", "version": s.cfg.Version, "extensions": []string{"classification"}})
	return nil
}

type oipTensorMeta struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

func (s *Server) oipModel(c *gin.Context) error {
	id, err := modelID(c)
	if err != nil {
		return err
	}
	info, err := s.info(c.Request.Context(), id)
	if err != nil {
		return err
	}
	r := int64(info.Resolution)
	c.JSON(http.StatusOK, gin.H{
		"name": id, "versions": []string{"1"}, "platform": "onnxruntime_onnx",
		"inputs":     []oipTensorMeta{{Name: "input", Datatype: "FP32", Shape: []int64{-1, 3, r, r}}},
		"outputs":    []oipTensorMeta{{Name: "logits", Datatype: "FP32", Shape: []int64{-1, int64(len(s.tasks[info.Task].Labels))}}},
		"parameters": gin.H{"task": info.Task, "arch": info.Arch, "madds": info.MAdds, "params": info.Params},
	})
	return nil
}

func (s *Server) oipModelReady(c *gin.Context) error {
	id, err := modelID(c)
	if err != nil {
		return err
	}
	if _, err := s.info(c.Request.Context(), id); err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"name": id, "ready": s.sessions != nil})
	return nil
}

// oipRequest is an inference request; only what natgw's models take is accepted.
type oipRequest struct {
	ID         string            `json:"id,omitempty"`
	Parameters map[string]any    `json:"parameters,omitempty"`
	Inputs     []oipInput        `json:"inputs"`
	Outputs    []oipRequestedOut `json:"outputs,omitempty"`
}

type oipInput struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters map[string]any  `json:"parameters,omitempty"`
	Data       json.RawMessage `json:"data"`
}

type oipRequestedOut struct {
	Name       string         `json:"name"`
	Parameters map[string]any `json:"parameters,omitempty"`
}

type oipOutput struct {
	Name     string  `json:"name"`
	Shape    []int64 `json:"shape"`
	Datatype string  `json:"datatype"`
	Data     any     `json:"data"`
}

// decodeOIP parses and checks an infer request against a model with resolution r: one FP32
// input "input" of shape [N,3,r,r], row-major data flat or nested, 1 ≤ N ≤ maxBatch.
// It returns the tensor, N and the classification count (0 = raw logits).
func decodeOIP(body []byte, r, maxBatch int) (x []float32, n int, classify int, id string, err error) {
	var req oipRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, 0, 0, "", badRequest("infer request: %v", err)
	}
	if len(req.Inputs) != 1 {
		return nil, 0, 0, "", badRequest("infer request: %d inputs, the model takes exactly one (\"input\")", len(req.Inputs))
	}
	in := req.Inputs[0]
	if in.Name != "input" {
		return nil, 0, 0, "", badRequest("infer request: input %q, the model's input is \"input\"", truncate(in.Name, 64))
	}
	if in.Datatype != "FP32" {
		return nil, 0, 0, "", badRequest("infer request: datatype %q, want FP32", truncate(in.Datatype, 16))
	}
	if len(in.Shape) != 4 || in.Shape[1] != 3 || in.Shape[2] != int64(r) || in.Shape[3] != int64(r) || in.Shape[0] < 1 || in.Shape[0] > int64(maxBatch) {
		return nil, 0, 0, "", badRequest("infer request: shape %v, want [N,3,%d,%d] with 1 ≤ N ≤ %d", in.Shape, r, r, maxBatch)
	}
	n = int(in.Shape[0])
	want := n * 3 * r * r
	x = make([]float32, 0, want)
	if x, err = flatten(in.Data, x, want, 0); err != nil {
		return nil, 0, 0, "", badRequest("infer request: data: %v", err)
	}
	if len(x) != want {
		return nil, 0, 0, "", badRequest("infer request: data has %d values, shape %v needs %d", len(x), in.Shape, want)
	}
	for _, o := range req.Outputs {
		if o.Name != "logits" {
			return nil, 0, 0, "", badRequest("infer request: output %q, the model's output is \"logits\"", truncate(o.Name, 64))
		}
		if v, ok := o.Parameters["classification"]; ok {
			f, ok := v.(float64)
			if !ok || f < 1 || f > maxTop || f != float64(int(f)) {
				return nil, 0, 0, "", badRequest("infer request: classification must be an integer in [1, %d]", maxTop)
			}
			classify = int(f)
		}
	}
	return x, n, classify, req.ID, nil
}

// flatten appends the numbers of a flat or nested JSON array to x, refusing more than want.
func flatten(raw json.RawMessage, x []float32, want, depth int) ([]float32, error) {
	if depth > 4 {
		return nil, fmt.Errorf("nested deeper than the tensor's 4 dimensions")
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return nil, fmt.Errorf("want a JSON array of numbers")
	}
	// Fast path: a flat array of numbers.
	var flat []float32
	if err := json.Unmarshal(raw, &flat); err == nil {
		if len(x)+len(flat) > want {
			return nil, fmt.Errorf("more than %d values", want)
		}
		return append(x, flat...), nil
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, err
	}
	for _, p := range parts {
		var err error
		if x, err = flatten(p, x, want, depth+1); err != nil {
			return nil, err
		}
	}
	return x, nil
}

func (s *Server) oipInfer(c *gin.Context) error {
	id, err := modelID(c)
	if err != nil {
		return err
	}
	info, err := s.info(c.Request.Context(), id)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		return err
	}
	x, n, classify, reqID, err := decodeOIP(body, info.Resolution, s.cfg.Batch.MaxBatch)
	if err != nil {
		return err
	}
	logits, err := s.infer(c.Request.Context(), info, x, n)
	if err != nil {
		return err
	}
	classes := len(logits) / n
	out := oipOutput{Name: "logits", Shape: []int64{int64(n), int64(classes)}, Datatype: "FP32", Data: logits}
	if classify > 0 {
		// Triton's classification extension: "<value>:<index>:<label>" per row, best first,
		// where value is the model's output (a logit).
		k := min(classify, classes)
		labels := s.tasks[info.Task].Labels
		data := make([]string, 0, n*k)
		for i := range n {
			row := logits[i*classes : (i+1)*classes]
			p := make([]float64, classes)
			for j, v := range row {
				p[j] = float64(v)
			}
			for _, t := range topK(p, labels, k) {
				data = append(data, strconv.FormatFloat(float64(row[t.Index]), 'f', 6, 32)+":"+strconv.Itoa(t.Index)+":"+t.Label)
			}
		}
		out = oipOutput{Name: "logits", Shape: []int64{int64(n), int64(k)}, Datatype: "BYTES", Data: data}
	}
	c.JSON(http.StatusOK, gin.H{"model_name": id, "model_version": "1", "id": reqID, "outputs": []oipOutput{out}})
	return nil
}
