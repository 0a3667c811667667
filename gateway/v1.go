package gateway

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/natgw/natgw/internal/scores"
	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/specializer"
	"github.com/natgw/natgw/task"
)

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// taskSummary is a task in /v1/tasks.
type taskSummary struct {
	Name            string          `json:"name"`
	Description     string          `json:"description,omitempty"`
	Classes         int             `json:"classes"`
	Spec            string          `json:"spec"`
	SupernetVersion string          `json:"supernet_version"`
	ArchiveSize     int             `json:"archive_size"`
	Feasible        feasible        `json:"feasible"`
	Preprocess      preprocess.Spec `json:"preprocess"`
	// CropByResolution overrides Preprocess's crop at the resolutions it names.
	CropByResolution map[int]float64 `json:"crop_by_resolution,omitempty"`
	Labels           []string        `json:"labels,omitempty"`
	Front            []task.Entry    `json:"front,omitempty"`
	Archive          []task.Entry    `json:"archive,omitempty"`
}

// feasible is the span of each budget a task can satisfy.
type feasible struct {
	MAdds     [2]int64   `json:"madds"`
	Params    [2]int64   `json:"params"`
	LatencyMS [2]float64 `json:"latency_ms"`
}

func summarize(t *task.Task, detail bool) taskSummary {
	entries := t.Archive.Snapshot()
	lo, hi := specializer.Range(entries)
	ts := taskSummary{
		Name: t.Name, Description: t.Description, Classes: len(t.Labels), Spec: t.Supernet.Spec.Name,
		SupernetVersion: t.Supernet.Version(), ArchiveSize: len(entries), Preprocess: t.Manifest.Preprocess,
		CropByResolution: t.CropByResolution,
		Feasible:         feasible{MAdds: [2]int64{lo.MAdds, hi.MAdds}, Params: [2]int64{lo.Params, hi.Params}, LatencyMS: [2]float64{lo.LatencyMS, hi.LatencyMS}},
	}
	if detail {
		ts.Labels = t.Labels
		ts.Front = task.Front(entries)
		ts.Archive = entries
	}
	return ts
}

func (s *Server) listTasks(c *gin.Context) error {
	out := make([]taskSummary, 0, len(s.names))
	for _, n := range s.names {
		out = append(out, summarize(s.tasks[n].t, false))
	}
	body := gin.H{"tasks": out}
	if len(out) == 0 {
		body["message"] = "no tasks loaded: this gateway serves nothing until a task folder is added under its --models directory"
	}
	c.JSON(http.StatusOK, body)
	return nil
}

func (s *Server) task(name string) (*servedTask, error) {
	if name == "" {
		return nil, badRequest("task is required (tasks: %s)", s.taskList())
	}
	t, ok := s.tasks[name]
	if !ok {
		return nil, notFound("unknown task %q (tasks: %s)", truncate(name, 64), s.taskList())
	}
	return t, nil
}

func (s *Server) taskList() string {
	if len(s.names) == 0 {
		return "none loaded"
	}
	return strings.Join(s.names, ", ")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func (s *Server) getTask(c *gin.Context) error {
	t, err := s.task(c.Param("task"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, summarize(t.t, true))
	return nil
}

// budgetParams are the query parameters that bound a model.
var budgetParams = []string{"madds", "params", "latency_ms"}

// parseBudget reads madds/params/latency_ms; at least one is required.
func parseBudget(c *gin.Context) (specializer.Budget, error) {
	var b specializer.Budget
	var err error
	if v, ok := c.GetQuery("madds"); ok {
		if b.MAdds, err = specializer.ParseCount(v); err != nil {
			return b, fmt.Errorf("madds: %w", err)
		}
	}
	if v, ok := c.GetQuery("params"); ok {
		if b.Params, err = specializer.ParseCount(v); err != nil {
			return b, fmt.Errorf("params: %w", err)
		}
	}
	if v, ok := c.GetQuery("latency_ms"); ok {
		if b.LatencyMS, err = specializer.ParseLatency(v); err != nil {
			return b, fmt.Errorf("latency_ms: %w", err)
		}
	}
	if b.IsZero() {
		return b, badRequest("give at least one budget: %s (e.g. madds=300M)", strings.Join(budgetParams, ", "))
	}
	return b, nil
}

// budgetQuery reads ?task= and the budget of a model request.
func (s *Server) budgetQuery(c *gin.Context) (*servedTask, specializer.Budget, error) {
	ts, err := s.task(c.Query("task"))
	if err != nil {
		return nil, specializer.Budget{}, err
	}
	b, err := parseBudget(c)
	return ts, b, err
}

// getModelByBudget answers GET /v1/models (and /models, the design card's path): the best
// measured model under the budget, at once. A client willing to wait for pending work to
// settle says so with RFC 7240's Prefer: wait=SECONDS.
func (s *Server) getModelByBudget(c *gin.Context) error {
	ts, b, err := s.budgetQuery(c)
	if err != nil {
		return err
	}
	wait := preferWait(c.Request.Header.Values("Prefer"))
	ans, err := s.answerBudget(c.Request.Context(), ts, b, wait)
	if err != nil {
		return err
	}
	if wait > 0 {
		c.Header("Preference-Applied", "wait="+strconv.Itoa(int(min(wait, maxWait)/time.Second)))
	}
	c.JSON(http.StatusOK, ans)
	return nil
}

// preferWait returns the wait preference of Prefer header values (RFC 7240: "wait=10",
// among other preferences, separated by commas, with parameters after semicolons); 0 when
// absent or malformed, which the RFC says to ignore.
func preferWait(values []string) time.Duration {
	for _, v := range values {
		for _, p := range strings.Split(v, ",") {
			p, _, _ = strings.Cut(p, ";")
			name, val, ok := strings.Cut(p, "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(name), "wait") {
				continue
			}
			n, err := strconv.ParseUint(strings.Trim(strings.TrimSpace(val), `"`), 10, 31)
			if err != nil {
				continue
			}
			return time.Duration(n) * time.Second
		}
	}
	return 0
}

// modelID validates a model id from a path: 64 lowercase hex digits, nothing else ever
// reaches a cache key.
func modelID(c *gin.Context) (string, error) {
	id := c.Param("id")
	if len(id) != 64 || strings.ToLower(id) != id {
		return "", badRequest("model id must be 64 lowercase hex digits (a SHA-256)")
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", badRequest("model id must be 64 lowercase hex digits (a SHA-256)")
	}
	return id, nil
}

func (s *Server) getModel(c *gin.Context) error {
	id, err := modelID(c)
	if err != nil {
		return err
	}
	info, err := s.modelInfo(c.Request.Context(), id)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, info)
	return nil
}

func (s *Server) getModelFile(c *gin.Context) error {
	id, err := modelID(c)
	if err != nil {
		return err
	}
	etag := `"sha256:` + id + `"`
	h := c.Writer.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	// Content addressing makes a matching ETag proof enough: skip the cache entirely.
	if inm := c.GetHeader("If-None-Match"); inm != "" && etagMatch(inm, etag) {
		c.Status(http.StatusNotModified)
		return nil
	}
	data, err := s.modelFile(c.Request.Context(), id)
	if err != nil {
		return err
	}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="`+id[:16]+`.onnx"`)
	http.ServeContent(c.Writer, c.Request, "", time.Time{}, bytes.NewReader(data))
	return nil
}

func etagMatch(header, etag string) bool {
	for _, v := range strings.Split(header, ",") {
		v = strings.TrimSpace(v)
		if v == "*" || v == etag || strings.TrimPrefix(v, "W/") == etag {
			return true
		}
	}
	return false
}

type classifyResponse struct {
	Model       ModelInfo           `json:"model"`
	Predictions []scores.Prediction `json:"predictions"`
	InferenceMS float64             `json:"inference_ms"`
}

// maxTop bounds ?top=.
const maxTop = 100

func (s *Server) classify(c *gin.Context) error {
	top := 5
	if v, ok := c.GetQuery("top"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxTop {
			return badRequest("top must be an integer in [1, %d]", maxTop)
		}
		top = n
	}
	ts, b, err := s.budgetQuery(c)
	if err != nil {
		return err
	}
	ans, err := s.answerBudget(c.Request.Context(), ts, b, 0)
	if err != nil {
		return err
	}
	info := ans.ModelInfo
	t := ts.t
	pp := t.Preprocess(info.Resolution)
	img, err := s.readImage(c, pp)
	if err != nil {
		return err
	}
	x := make([]float32, pp.TensorLen())
	if err := pp.Tensor(img, x); err != nil {
		return err
	}
	start := time.Now()
	logits, err := s.infer.run(c.Request.Context(), info, x, 1)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, classifyResponse{
		Model: info, Predictions: scores.TopK(scores.Softmax(logits), t.Labels, top),
		InferenceMS: float64(time.Since(start).Microseconds()) / 1000,
	})
	return nil
}

// readImage takes the image from a multipart field "image" (or the first file) or the raw
// body, and decodes it as pp does (the pixels the model was measured on).
func (s *Server) readImage(c *gin.Context, pp preprocess.Spec) (*preprocess.RGB, error) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes)
	ct, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	var r io.Reader = c.Request.Body
	if ct == "multipart/form-data" {
		mr, err := c.Request.MultipartReader()
		if err != nil {
			return nil, badRequest("multipart body: %v", err)
		}
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil, badRequest("multipart body has no image part (use field name \"image\")")
			}
			if err != nil {
				var mb *http.MaxBytesError
				if errors.As(err, &mb) {
					return nil, err
				}
				return nil, badRequest("multipart body: %v", err)
			}
			if part.FormName() == "image" || part.FileName() != "" {
				r = part
				break
			}
		}
	}
	img, err := pp.Decode(r, s.imageLimits())
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, mb
		}
		return nil, err
	}
	return img, nil
}
