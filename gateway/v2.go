package gateway

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"unsafe"

	"github.com/gin-gonic/gin"

	"github.com/natgw/natgw/internal/scores"
)

// Open Inference Protocol v2 (KServe/Triton). Models are addressed by their id.

// binaryHeader announces Triton's binary tensor extension: the JSON header's length.
const binaryHeader = "Inference-Header-Content-Length"

func (s *Server) oipServer(c *gin.Context) error {
	c.JSON(http.StatusOK, gin.H{"name": "natgw", "version": s.cfg.Version, "extensions": []string{"classification"}})
	return nil
}

type oipTensorMeta struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// oipVersion is the one version every model has: a model id names its bytes, so a model
// never changes and has no other version.
const oipVersion = "1"

// oipModelRef reads a model path, /v2/models/{id} or /v2/models/{id}/versions/{version},
// and returns the model's metadata and task.
func (s *Server) oipModelRef(c *gin.Context) (ModelInfo, *servedTask, error) {
	id, err := modelID(c)
	if err != nil {
		return ModelInfo{}, nil, err
	}
	if v, ok := c.Params.Get("version"); ok && v != oipVersion {
		return ModelInfo{}, nil, notFound("model %s has only version %s (asked for version %q)", id, oipVersion, truncate(v, 32))
	}
	info, err := s.modelInfo(c.Request.Context(), id)
	if err != nil {
		return ModelInfo{}, nil, err
	}
	ts := s.tasks[info.Task]
	if ts == nil {
		return ModelInfo{}, nil, notFound("model %s belongs to task %q, which this gateway does not serve", id, info.Task)
	}
	return info, ts, nil
}

func (s *Server) oipModel(c *gin.Context) error {
	info, ts, err := s.oipModelRef(c)
	if err != nil {
		return err
	}
	r := int64(info.Resolution)
	c.JSON(http.StatusOK, gin.H{
		"name": info.ID, "versions": []string{oipVersion}, "platform": "onnxruntime_onnx",
		"inputs":     []oipTensorMeta{{Name: "input", Datatype: "FP32", Shape: []int64{-1, 3, r, r}}},
		"outputs":    []oipTensorMeta{{Name: "logits", Datatype: "FP32", Shape: []int64{-1, int64(len(ts.t.Labels))}}},
		"parameters": gin.H{"task": info.Task, "arch": info.Arch, "madds": info.MAdds, "params": info.Params},
	})
	return nil
}

func (s *Server) oipModelReady(c *gin.Context) error {
	info, _, err := s.oipModelRef(c)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"name": info.ID, "ready": s.infer.sessions != nil})
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
// With Triton's binary tensor extension, headerLen ≥ 0 is the length of the JSON part
// (Inference-Header-Content-Length) and the tensor follows as raw little-endian float32.
func decodeOIP(body []byte, headerLen, r, maxBatch int) (x []float32, n int, classify int, id string, err error) {
	return decodeOIPInto(body, headerLen, r, maxBatch, nil)
}

// decodeOIPInto is decodeOIP appending the tensor to dst[:0] when it has the room.
func decodeOIPInto(body []byte, headerLen, r, maxBatch int, dst []float32) (x []float32, n int, classify int, id string, err error) {
	var bin []byte
	if headerLen >= 0 {
		if headerLen > len(body) {
			return nil, 0, 0, "", badRequest("infer request: %s %d is longer than the body (%d bytes)", binaryHeader, headerLen, len(body))
		}
		body, bin = body[:headerLen], body[headerLen:]
	}
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
	if x = dst[:0]; cap(x) < want {
		x = make([]float32, 0, want)
	}
	if bin != nil {
		size, ok := in.Parameters["binary_data_size"].(float64)
		if !ok || size != float64(len(bin)) || len(in.Data) != 0 {
			return nil, 0, 0, "", badRequest("infer request: binary input needs parameters.binary_data_size = %d (the bytes after the JSON header) and no data field", len(bin))
		}
		if len(bin) != 4*want {
			return nil, 0, 0, "", badRequest("infer request: %d bytes of binary data, shape %v needs %d", len(bin), in.Shape, 4*want)
		}
		x = x[:want]
		if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 { // the wire's layout is the machine's: copy whole
			copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(x))), 4*want), bin) // one memmove
		} else {
			for i := range x {
				x[i] = math.Float32frombits(binary.LittleEndian.Uint32(bin[4*i:]))
			}
		}
	} else if x, err = flatten(in.Data, x, want, 0); err != nil {
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
// It parses the bytes itself: encoding/json's reflection costs more than the model run for
// image-sized tensors.
func flatten(raw json.RawMessage, x []float32, want, depth int) ([]float32, error) {
	p := floatParser{b: raw, max: want}
	p.skipSpace()
	out, err := p.array(x, 0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.i != len(p.b) {
		return nil, fmt.Errorf("trailing data after the array at byte %d", p.i)
	}
	return out, nil
}

type floatParser struct {
	b   []byte
	i   int
	max int
}

func (p *floatParser) skipSpace() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\n' || p.b[p.i] == '\t' || p.b[p.i] == '\r') {
		p.i++
	}
}

// array parses [v, v, ...] where v is a number or (up to 4 levels) a nested array.
func (p *floatParser) array(x []float32, depth int) ([]float32, error) {
	if depth > 4 {
		return nil, fmt.Errorf("nested deeper than the tensor's 4 dimensions")
	}
	if p.i >= len(p.b) || p.b[p.i] != '[' {
		return nil, fmt.Errorf("want a JSON array of numbers at byte %d", p.i)
	}
	p.i++
	p.skipSpace()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return x, nil
	}
	for {
		p.skipSpace()
		if p.i >= len(p.b) {
			return nil, fmt.Errorf("unterminated array")
		}
		if p.b[p.i] == '[' {
			var err error
			if x, err = p.array(x, depth+1); err != nil {
				return nil, err
			}
		} else {
			j := p.i
			for j < len(p.b) && (p.b[j] == '-' || p.b[j] == '+' || p.b[j] == '.' || p.b[j] == 'e' || p.b[j] == 'E' || (p.b[j] >= '0' && p.b[j] <= '9')) {
				j++
			}
			if j == p.i {
				return nil, fmt.Errorf("want a number at byte %d", p.i)
			}
			if len(x) >= p.max {
				return nil, fmt.Errorf("more than %d values", p.max)
			}
			v, err := strconv.ParseFloat(unsafe.String(&p.b[p.i], j-p.i), 32)
			if err != nil || !jsonNumber(p.b[p.i:j]) {
				return nil, fmt.Errorf("bad number %q", truncate(string(p.b[p.i:j]), 32))
			}
			x = append(x, float32(v))
			p.i = j
		}
		p.skipSpace()
		if p.i >= len(p.b) {
			return nil, fmt.Errorf("unterminated array")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return x, nil
		default:
			return nil, fmt.Errorf("want , or ] at byte %d", p.i)
		}
	}
}

// jsonNumber checks the JSON number grammar that ParseFloat is laxer about (no leading +,
// no bare dot, no leading zeros, no hex, inf or nan).
func jsonNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return false
	}
	if b[i] == '0' {
		i++
	} else if b[i] >= '1' && b[i] <= '9' {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	} else {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	return i == len(b)
}

func (s *Server) oipInfer(c *gin.Context) error {
	info, ts, err := s.oipModelRef(c)
	if err != nil {
		return err
	}
	id := info.ID
	body, err := s.readBody(c, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	headerLen := -1
	if v := c.GetHeader(binaryHeader); v != "" {
		if headerLen, err = strconv.Atoi(v); err != nil || headerLen < 0 {
			return badRequest("%s: %q is not a length", binaryHeader, truncate(v, 32))
		}
	}
	dst := s.bufs.getFloats(3 * info.Resolution * info.Resolution)
	x, n, classify, reqID, err := decodeOIPInto(body, headerLen, info.Resolution, s.cfg.Batch.MaxBatch, dst)
	s.bufs.putBytes(body) // decoding copied everything out of it
	if err != nil {
		s.bufs.putFloats(dst) // a refused request must not cost a fresh buffer next time
		return err
	}
	logits, err := s.infer.run(c.Request.Context(), info, x, n)
	if err != nil {
		// A batch may still hold x when the caller gave up: let the collector have it.
		return err
	}
	s.bufs.putFloats(x)
	classes := len(logits) / n
	out := oipOutput{Name: "logits", Shape: []int64{int64(n), int64(classes)}, Datatype: "FP32", Data: logits}
	if classify > 0 {
		// Triton's classification extension: "<value>:<index>:<label>" per row, best first,
		// where value is the model's output (a logit).
		k := min(classify, classes)
		labels := ts.t.Labels
		data := make([]string, 0, n*k)
		for i := range n {
			row := logits[i*classes : (i+1)*classes]
			p := make([]float64, classes)
			for j, v := range row {
				p[j] = float64(v)
			}
			for _, t := range scores.TopK(p, labels, k) {
				data = append(data, strconv.FormatFloat(float64(row[t.Index]), 'f', 6, 32)+":"+strconv.Itoa(t.Index)+":"+t.Label)
			}
		}
		out = oipOutput{Name: "logits", Shape: []int64{int64(n), int64(k)}, Datatype: "BYTES", Data: data}
	}
	c.JSON(http.StatusOK, gin.H{"model_name": id, "model_version": oipVersion, "id": reqID, "outputs": []oipOutput{out}})
	return nil
}

// readBody reads the request body whole, at most limit bytes (413 beyond). A declared
// Content-Length sizes a pooled buffer up front (net/http never yields more than it
// declares); give it back with s.bufs.putBytes once nothing refers into it.
func (s *Server) readBody(c *gin.Context, limit int64) ([]byte, error) {
	r := http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	n := c.Request.ContentLength
	if n <= 0 || n > limit {
		return io.ReadAll(r)
	}
	buf := s.bufs.getBytes(int(n))
	if _, err := io.ReadFull(r, buf); err != nil {
		s.bufs.putBytes(buf)
		return nil, err
	}
	return buf, nil
}
