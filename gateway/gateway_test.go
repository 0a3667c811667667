package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/natgw/natgw/internal/scores"
	"github.com/natgw/natgw/internal/testredis"
	"github.com/natgw/natgw/internal/testutil"
	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/specializer"
	"github.com/natgw/natgw/task"
)

type errBody = errorBody

func TestModelsByBudget(t *testing.T) {
	tk := testTask(t, "shapes")
	ts := newTestServer(t, Config{Tasks: []*task.Task{tk}})
	entries := tk.Archive.Snapshot()
	lo, hi := specializer.Range(entries)
	mid := (lo.MAdds + hi.MAdds) / 2

	var m ModelInfo
	res := ts.get(t, fmt.Sprintf("/v1/models?task=shapes&madds=%d", mid), &m)
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	want, err := specializer.Best(entries, specializer.Budget{MAdds: mid})
	if err != nil {
		t.Fatal(err)
	}
	if m.MAdds > mid || m.Arch.Hash() != want.Hash || len(m.ID) != 64 || m.ID != m.SHA256 || m.Accuracy.Split != "val" {
		t.Fatalf("model %+v, want arch %s under %d", m, want.Arch, mid)
	}
	if m.ONNXURL != "/v1/models/"+m.ID+"/model.onnx" || m.SizeBytes <= 0 {
		t.Fatalf("onnx url %q size %d", m.ONNXURL, m.SizeBytes)
	}

	// Every budget syntax of the same number gives the same model.
	for _, q := range []string{fmt.Sprintf("%dk", mid/1000), fmt.Sprintf("%de0", mid)} {
		if mid%1000 != 0 && strings.HasSuffix(q, "k") {
			continue
		}
		var m2 ModelInfo
		ts.get(t, "/v1/models?task=shapes&madds="+q, &m2)
		if m2.ID != m.ID {
			t.Errorf("madds=%s gave %s, want %s", q, m2.ID, m.ID)
		}
	}

	for _, tc := range []struct {
		query string
		code  int
		typ   string
		want  string
	}{
		{"task=shapes&madds=abc", 400, "bad_request", "malformed budget"},
		{"task=shapes", 400, "bad_request", "give at least one budget"},
		{"task=shapes&madds=-5", 400, "bad_request", "malformed"},
		{"madds=300M", 400, "bad_request", "task is required"},
		{"task=flowers&madds=300M", 404, "not_found", "unknown task \"flowers\" (tasks: shapes)"},
		{fmt.Sprintf("task=shapes&madds=%d", lo.MAdds-1), 422, "budget_out_of_range", fmt.Sprintf("feasible %d..%d", lo.MAdds, hi.MAdds)},
		{"task=shapes&madds=300M&latency_ms=5", 422, "budget_out_of_range", "no latency measurements"},
	} {
		for _, path := range []string{"/v1/models?", "/models?"} {
			var e errBody
			res := ts.get(t, path+tc.query, &e)
			if res.StatusCode != tc.code || !strings.Contains(e.Error, tc.want) || e.Type != tc.typ {
				t.Errorf("%s%s: %d %q %q, want %d %q with %q", path, tc.query, res.StatusCode, e.Type, e.Error, tc.code, tc.typ, tc.want)
			}
		}
	}

	// The design card's path answers exactly as /v1/models does.
	var alias ModelInfo
	if res := ts.get(t, fmt.Sprintf("/models?task=shapes&madds=%d", mid), &alias); res.StatusCode != 200 || alias.ID != m.ID {
		t.Fatalf("/models: %d, model %s, want %s", res.StatusCode, alias.ID, m.ID)
	}
	if res, err := http.Head(ts.http.URL + fmt.Sprintf("/v1/models?task=shapes&madds=%d", mid)); err != nil || res.StatusCode != 200 {
		t.Fatalf("HEAD /v1/models: %v %v", res, err)
	}
}

func TestBudgetSweepMonotone(t *testing.T) {
	tk := testTask(t, "shapes")
	// Test accuracies below val and falling with MAdds on some entries: a sweep choosing by
	// them, or mixing the two, would not be monotone.
	for i, e := range tk.Archive.Snapshot() {
		if i%2 == 0 {
			v := e.Top1 - 0.2 - float64(e.MAdds)/1e8
			tk.Archive.SetTestTop1(e.Hash, v)
		}
	}
	ts := newTestServer(t, Config{Tasks: []*task.Task{tk}})
	lo, hi := specializer.Range(tk.Archive.Snapshot())
	prev := -1.0
	archs := map[string]bool{}
	for i := range 40 {
		b := lo.MAdds + (hi.MAdds-lo.MAdds)*int64(i)/39
		var m ModelInfo
		if res := ts.get(t, fmt.Sprintf("/v1/models?task=shapes&madds=%d", b), &m); res.StatusCode != 200 {
			t.Fatalf("budget %d: status %d", b, res.StatusCode)
		}
		if m.MAdds > b {
			t.Fatalf("budget %d: model has %d MAdds", b, m.MAdds)
		}
		e, _ := tk.Archive.Lookup(m.Arch.Hash())
		if m.Accuracy.Split != task.SplitVal || m.Accuracy.Top1 != e.Top1 || (e.TestTop1 == nil) != (m.Accuracy.TestTop1 == nil) {
			t.Fatalf("budget %d: accuracy %+v, archive entry val %.4f test %v", b, m.Accuracy, e.Top1, e.TestTop1)
		}
		if m.Accuracy.Top1 < prev {
			t.Fatalf("budget %d: accuracy %.4f dropped below %.4f", b, m.Accuracy.Top1, prev)
		}
		prev = m.Accuracy.Top1
		archs[m.Arch.Hash()] = true
	}
	if got := ts.Exports(); got != float64(len(archs)) {
		t.Fatalf("%v exports for %d distinct archs over 40 budgets: a known arch was exported again", got, len(archs))
	}
	if len(archs) >= 40 {
		t.Fatal("every budget got its own arch: the sweep shows nothing about re-use")
	}
}

func TestModelFile(t *testing.T) {
	tk := testTask(t, "shapes")
	ts := newTestServer(t, Config{Tasks: []*task.Task{tk}})
	var m ModelInfo
	ts.get(t, "/v1/models?task=shapes&madds=1G", &m)
	res := ts.get(t, m.ONNXURL, nil)
	body, _ := io.ReadAll(res.Body)
	sum := sha256.Sum256(body)
	if res.StatusCode != 200 || hex.EncodeToString(sum[:]) != m.ID || int64(len(body)) != m.SizeBytes {
		t.Fatalf("status %d, sha %x, want %s", res.StatusCode, sum, m.ID)
	}
	if got := res.Header.Get("ETag"); got != `"sha256:`+m.ID+`"` {
		t.Errorf("ETag %q", got)
	}
	if got := res.Header.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
		t.Errorf("Cache-Control %q", got)
	}
	if got := res.Header.Get("Content-Type"); got != "application/octet-stream" {
		t.Errorf("Content-Type %q", got)
	}

	req, _ := http.NewRequest("GET", ts.http.URL+m.ONNXURL, nil)
	req.Header.Set("If-None-Match", `"sha256:`+m.ID+`"`)
	r304, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r304.Body.Close()
	if r304.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: status %d", r304.StatusCode)
	}

	req, _ = http.NewRequest("GET", ts.http.URL+m.ONNXURL, nil)
	req.Header.Set("Range", "bytes=10-19")
	part, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := io.ReadAll(part.Body)
	part.Body.Close()
	if part.StatusCode != http.StatusPartialContent || !bytes.Equal(pb, body[10:20]) {
		t.Errorf("Range: status %d, %d bytes", part.StatusCode, len(pb))
	}

	var info ModelInfo
	if res := ts.get(t, "/v1/models/"+m.ID, &info); res.StatusCode != 200 || info.ID != m.ID {
		t.Errorf("metadata: %d %+v", res.StatusCode, info)
	}
	for path, code := range map[string]int{
		"/v1/models/" + strings.Repeat("0", 64):                 404,
		"/v1/models/" + strings.Repeat("0", 64) + "/model.onnx": 404,
		"/v1/models/..%2F..%2Fetc%2Fpasswd/model.onnx":          404, // no route: never a file path
		"/v1/models/ABCDEF" + strings.Repeat("0", 58):           400,
		"/v1/models/xyz": 400,
	} {
		var e errBody
		if res := ts.get(t, path, &e); res.StatusCode != code || e.Error == "" || e.Type == "" || strings.Contains(e.Error, "model:") {
			t.Errorf("%s: %d %q (%s), want %d", path, res.StatusCode, e.Error, e.Type, code)
		}
	}
}

func TestTasksAndReadiness(t *testing.T) {
	empty := newTestServer(t, Config{})
	var list struct {
		Tasks   []taskSummary `json:"tasks"`
		Message string        `json:"message"`
	}
	empty.get(t, "/v1/tasks", &list)
	if len(list.Tasks) != 0 || !strings.Contains(list.Message, "no tasks") {
		t.Fatalf("empty gateway: %+v", list)
	}
	if res := empty.get(t, "/v2/health/ready", nil); res.StatusCode != 503 {
		t.Fatalf("empty gateway ready: %d", res.StatusCode)
	}

	tk := testTask(t, "shapes")
	ts := newTestServer(t, Config{Tasks: []*task.Task{tk}})
	if res := ts.get(t, "/v2/health/ready", nil); res.StatusCode != 200 {
		t.Fatalf("ready: %d", res.StatusCode)
	}
	ts.SetReady(false)
	if res := ts.get(t, "/v2/health/ready", nil); res.StatusCode != 503 {
		t.Fatalf("after SetReady(false): %d", res.StatusCode)
	}
	if res := ts.get(t, "/v2/health/live", nil); res.StatusCode != 200 {
		t.Fatalf("live: %d", res.StatusCode)
	}
	var detail taskSummary
	ts.get(t, "/v1/tasks/shapes", &detail)
	lo, hi := specializer.Range(tk.Archive.Snapshot())
	if detail.Feasible.MAdds != [2]int64{lo.MAdds, hi.MAdds} || len(detail.Front) == 0 || len(detail.Labels) != 4 {
		t.Fatalf("task detail %+v", detail.Feasible)
	}
	var e errBody
	if res := ts.get(t, "/v1/tasks/nope", &e); res.StatusCode != 404 || !strings.Contains(e.Error, "shapes") {
		t.Fatalf("unknown task: %d %q", res.StatusCode, e.Error)
	}
	if res := ts.get(t, "/openapi.json", nil); res.StatusCode != 200 {
		t.Fatalf("openapi: %d", res.StatusCode)
	}
	body, _ := io.ReadAll(ts.get(t, "/metrics", nil).Body)
	for _, name := range []string{"natgw_http_request_duration_seconds", "natgw_cache_hits_total", "natgw_sessions_resident"} {
		if !bytes.Contains(body, []byte(name)) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

func TestClassifyAndOIP(t *testing.T) {
	sessions, env := testSessions(t)
	tk := testTask(t, "shapes")
	// A crop of its own at every resolution: classify must preprocess with it, as the OIP
	// tensor below is, and the task detail must tell clients.
	tk.CropByResolution = map[int]float64{}
	for _, r := range tk.Supernet.Spec.Resolutions {
		tk.CropByResolution[r] = 0.75
	}
	ts := newTestServer(t, Config{Tasks: []*task.Task{tk}, Sessions: sessions, LiveSessions: env.LiveSessions,
		Batch: BatchConfig{MaxBatch: 8, MaxDelay: time.Millisecond}})
	img := testPNG(t, 99, 50, 40)

	var detail taskSummary
	if ts.get(t, "/v1/tasks/shapes", &detail); !maps.Equal(detail.CropByResolution, tk.CropByResolution) {
		t.Fatalf("task detail crops %v, want %v", detail.CropByResolution, tk.CropByResolution)
	}
	res, err := http.Post(ts.http.URL+"/v1/classify?task=shapes&madds=1G&top=3", "image/png", bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	var cr classifyResponse
	decode(t, res, &cr)
	if res.StatusCode != 200 || len(cr.Predictions) != 3 {
		t.Fatalf("classify: %d %+v", res.StatusCode, cr)
	}

	// Multipart gives the same answer.
	var mp bytes.Buffer
	w := multipart.NewWriter(&mp)
	fw, _ := w.CreateFormFile("image", "x.png")
	fw.Write(img)
	w.Close()
	res, _ = http.Post(ts.http.URL+"/v1/classify?task=shapes&madds=1G&top=3", w.FormDataContentType(), &mp)
	var cr2 classifyResponse
	decode(t, res, &cr2)
	if res.StatusCode != 200 || cr2.Predictions[0] != cr.Predictions[0] {
		t.Fatalf("multipart classify: %d %+v vs %+v", res.StatusCode, cr2.Predictions, cr.Predictions)
	}

	// OIP with the same preprocessed tensor gives logits whose softmax matches.
	decoded, err := preprocess.DecodeBytes(img, preprocess.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	pp := tk.Preprocess(cr.Model.Resolution)
	x := make([]float32, pp.TensorLen())
	if err := pp.Tensor(decoded, x); err != nil {
		t.Fatal(err)
	}
	r := cr.Model.Resolution
	reqBody, _ := json.Marshal(map[string]any{
		"id":     "req-1",
		"inputs": []map[string]any{{"name": "input", "shape": []int{1, 3, r, r}, "datatype": "FP32", "data": x}},
	})
	res, _ = http.Post(ts.http.URL+"/v2/models/"+cr.Model.ID+"/infer", "application/json", bytes.NewReader(reqBody))
	var out struct {
		ID      string `json:"id"`
		Outputs []struct {
			Name  string    `json:"name"`
			Shape []int64   `json:"shape"`
			Data  []float32 `json:"data"`
		} `json:"outputs"`
	}
	decode(t, res, &out)
	if res.StatusCode != 200 || out.ID != "req-1" || len(out.Outputs) != 1 || len(out.Outputs[0].Data) != 4 {
		t.Fatalf("infer: %d %+v", res.StatusCode, out)
	}
	p := scores.Softmax(out.Outputs[0].Data)
	for _, pr := range cr.Predictions {
		if math.Abs(p[pr.Index]-pr.Probability) > 1e-6 {
			t.Fatalf("OIP probability %v vs classify %v", p[pr.Index], pr.Probability)
		}
	}

	// Triton's binary tensor extension gives the same logits.
	hdr, _ := json.Marshal(map[string]any{
		"inputs": []map[string]any{{"name": "input", "shape": []int{1, 3, r, r}, "datatype": "FP32",
			"parameters": map[string]any{"binary_data_size": 4 * len(x)}}},
	})
	bin := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(bin[4*i:], math.Float32bits(v))
	}
	breq, _ := http.NewRequest("POST", ts.http.URL+"/v2/models/"+cr.Model.ID+"/infer", bytes.NewReader(append(hdr, bin...)))
	breq.Header.Set("Inference-Header-Content-Length", fmt.Sprint(len(hdr)))
	res, err = http.DefaultClient.Do(breq)
	if err != nil {
		t.Fatal(err)
	}
	var bout struct {
		Outputs []struct {
			Data []float32 `json:"data"`
		} `json:"outputs"`
	}
	decode(t, res, &bout)
	if res.StatusCode != 200 || len(bout.Outputs) != 1 || len(bout.Outputs[0].Data) != len(out.Outputs[0].Data) || testutil.MaxAbsDiff(t, bout.Outputs[0].Data, out.Outputs[0].Data) > 1e-6 {
		t.Fatalf("binary infer: %d %+v", res.StatusCode, bout)
	}

	// Triton's classification extension.
	reqBody, _ = json.Marshal(map[string]any{
		"inputs":  []map[string]any{{"name": "input", "shape": []int{1, 3, r, r}, "datatype": "FP32", "data": x}},
		"outputs": []map[string]any{{"name": "logits", "parameters": map[string]any{"classification": 2}}},
	})
	res, _ = http.Post(ts.http.URL+"/v2/models/"+cr.Model.ID+"/infer", "application/json", bytes.NewReader(reqBody))
	var cls struct {
		Outputs []struct {
			Datatype string   `json:"datatype"`
			Data     []string `json:"data"`
		} `json:"outputs"`
	}
	decode(t, res, &cls)
	if res.StatusCode != 200 || cls.Outputs[0].Datatype != "BYTES" || len(cls.Outputs[0].Data) != 2 ||
		!strings.HasSuffix(cls.Outputs[0].Data[0], fmt.Sprintf(":%d:%s", cr.Predictions[0].Index, cr.Predictions[0].Label)) {
		t.Fatalf("classification: %d %+v", res.StatusCode, cls)
	}

	var meta map[string]any
	if res := ts.get(t, "/v2/models/"+cr.Model.ID, &meta); res.StatusCode != 200 || meta["platform"] != "onnxruntime_onnx" {
		t.Fatalf("OIP metadata %d %v", res.StatusCode, meta)
	}
	if res := ts.get(t, "/v2/models/"+cr.Model.ID+"/ready", nil); res.StatusCode != 200 {
		t.Fatalf("OIP ready %d", res.StatusCode)
	}
	// The versioned paths of KServe's protocol description: version 1 is the model, any
	// other version is unknown.
	versioned := "/v2/models/" + cr.Model.ID + "/versions/1"
	var vmeta map[string]any
	if res := ts.get(t, versioned, &vmeta); res.StatusCode != 200 || vmeta["name"] != cr.Model.ID || fmt.Sprint(vmeta["versions"]) != "[1]" {
		t.Fatalf("OIP versioned metadata %d %v", res.StatusCode, vmeta)
	}
	if res := ts.get(t, versioned+"/ready", nil); res.StatusCode != 200 {
		t.Fatalf("OIP versioned ready %d", res.StatusCode)
	}
	res, _ = http.Post(ts.http.URL+versioned+"/infer", "application/json", bytes.NewReader(reqBody))
	var vcls struct {
		ModelVersion string `json:"model_version"`
		Outputs      []struct {
			Data []string `json:"data"`
		} `json:"outputs"`
	}
	decode(t, res, &vcls)
	if res.StatusCode != 200 || vcls.ModelVersion != "1" || len(vcls.Outputs) != 1 || !slices.Equal(vcls.Outputs[0].Data, cls.Outputs[0].Data) {
		t.Fatalf("OIP versioned infer: %d %+v", res.StatusCode, vcls)
	}
	for _, p := range []string{"/v2/models/" + cr.Model.ID + "/versions/2", "/v2/models/" + cr.Model.ID + "/versions/2/ready"} {
		var e errBody
		if res := ts.get(t, p, &e); res.StatusCode != 404 || e.Type != "not_found" || !strings.Contains(e.Error, "only version 1") {
			t.Fatalf("%s: %d %+v", p, res.StatusCode, e)
		}
	}

	// Concurrent classify requests batch together and all succeed.
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := http.Post(ts.http.URL+"/v1/classify?task=shapes&madds=1G", "image/png", bytes.NewReader(img))
			if err != nil || res.StatusCode != 200 {
				failed.Add(1)
			}
			if res != nil {
				res.Body.Close()
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d concurrent classify requests failed", failed.Load())
	}

	for _, tc := range []struct {
		name, ct string
		body     []byte
		code     int
	}{
		{"not an image", "image/png", []byte("hello"), 400},
		{"empty", "image/png", nil, 400},
	} {
		res, _ := http.Post(ts.http.URL+"/v1/classify?task=shapes&madds=1G", tc.ct, bytes.NewReader(tc.body))
		var e errBody
		decode(t, res, &e)
		if res.StatusCode != tc.code || e.Error == "" {
			t.Errorf("%s: %d %q", tc.name, res.StatusCode, e.Error)
		}
	}
}

func TestLimits(t *testing.T) {
	tk := testTask(t, "shapes")
	ts := newTestServer(t, Config{Tasks: []*task.Task{tk}, MaxBodyBytes: 1000, MaxPixels: 100})
	big := testPNG(t, 1, 200, 200)
	res, _ := http.Post(ts.http.URL+"/v1/classify?task=shapes&madds=1G", "image/png", bytes.NewReader(big))
	var e errBody
	decode(t, res, &e)
	if res.StatusCode != 413 {
		t.Fatalf("oversized body: %d %q", res.StatusCode, e.Error)
	}
	small := testPNG(t, 1, 20, 20) // 400 pixels > 100, under the byte limit
	if len(small) >= 1000 {
		t.Skipf("test PNG is %d bytes", len(small))
	}
	res, _ = http.Post(ts.http.URL+"/v1/classify?task=shapes&madds=1G", "image/png", bytes.NewReader(small))
	decode(t, res, &e)
	if res.StatusCode != 413 {
		t.Fatalf("too many pixels: %d %q", res.StatusCode, e.Error)
	}
}

// TestOneSpecializationAcrossReplicas: 200 concurrent identical cold requests split over two
// gateways sharing one Redis specialize exactly once.
func TestOneSpecializationAcrossReplicas(t *testing.T) {
	rs := testredis.Start(t)
	tk := testTask(t, "shapes")
	a := newTestServer(t, Config{Tasks: []*task.Task{tk}, Redis: newRedis(t, rs.URL())})
	b := newTestServer(t, Config{Tasks: []*task.Task{tk}, Redis: newRedis(t, rs.URL())})
	var wg sync.WaitGroup
	ids := make([]string, 200)
	codes := make([]int, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv := a
			if i%2 == 1 {
				srv = b
			}
			res, err := http.Get(srv.http.URL + "/v1/models?task=shapes&madds=2M")
			if err != nil {
				return
			}
			var m ModelInfo
			json.NewDecoder(res.Body).Decode(&m)
			res.Body.Close()
			ids[i], codes[i] = m.ID, res.StatusCode
		}()
	}
	wg.Wait()
	for i := range ids {
		if codes[i] != 200 || ids[i] != ids[0] {
			t.Fatalf("request %d: status %d id %s, first id %s", i, codes[i], ids[i], ids[0])
		}
	}
	if n := a.Exports() + b.Exports(); n != 1 {
		t.Fatalf("%v exports across both replicas, want exactly 1", n)
	}
	// The model file is served by the replica that did not produce it, through Redis.
	res := b.get(t, "/v1/models/"+ids[0]+"/model.onnx", nil)
	if res.StatusCode != 200 {
		t.Fatalf("model file from the other replica: %d", res.StatusCode)
	}
}

// TestRedisOutage: stopping Redis mid-loop fails no request for models already produced;
// after a restart the gateway writes to Redis again.
func TestRedisOutage(t *testing.T) {
	rs := testredis.Start(t)
	tk := testTask(t, "shapes")
	redis := newRedis(t, rs.URL())
	ts := newTestServer(t, Config{Tasks: []*task.Task{tk}, Redis: redis})
	var m ModelInfo
	ts.get(t, "/v1/models?task=shapes&madds=1G", &m)
	failures := 0
	for i := range 300 {
		if i == 100 {
			rs.Stop()
		}
		for _, path := range []string{"/v1/models?task=shapes&madds=1G", m.ONNXURL} {
			res, err := http.Get(ts.http.URL + path)
			if err != nil || res.StatusCode != 200 {
				failures++
			}
			if res != nil {
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		}
	}
	if failures != 0 {
		t.Fatalf("%d requests failed while Redis was down", failures)
	}
	rs.Restart()
	// New models are made and written through to Redis once the breaker lets it back: each
	// try asks for a budget whose answer is an arch not asked for before.
	entries := tk.Archive.Snapshot()
	sort.Slice(entries, func(i, j int) bool { return entries[i].MAdds < entries[j].MAdds })
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ; i++ {
		var m2 ModelInfo
		res := ts.get(t, fmt.Sprintf("/v1/models?task=shapes&madds=%d", entries[i%len(entries)].MAdds), &m2)
		if res.StatusCode != 200 && res.StatusCode != 422 {
			t.Fatalf("after restart: %d", res.StatusCode)
		}
		ctx := context.Background()
		n, err := redis.Client().DBSize(ctx).Result()
		if err == nil && n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis not used again after restart (dbsize %d, err %v)", n, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func FuzzDecodeOIP(f *testing.F) {
	f.Add([]byte(`{"inputs":[{"name":"input","shape":[1,3,2,2],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,10,11,12]}]}`))
	f.Add([]byte(`{"inputs":[{"name":"input","shape":[1,3,2,2],"datatype":"FP32","data":[[[[1,2],[3,4]],[[5,6],[7,8]],[[9,10],[11,12]]]]}],"outputs":[{"name":"logits","parameters":{"classification":2}}]}`))
	f.Add([]byte(`{"inputs":[]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		x, n, k, _, err := decodeOIP(body, -1, 2, 4)
		if err == nil && (n < 1 || n > 4 || len(x) != n*12 || k < 0 || k > maxTop) {
			t.Fatalf("accepted n=%d len=%d k=%d", n, len(x), k)
		}
		// The same bytes as a binary-extension body with the header length at every split.
		x, n, k, _, err = decodeOIP(body, len(body)/2, 2, 4)
		if err != nil {
			return
		}
		if n < 1 || n > 4 || len(x) != n*12 || k < 0 || k > maxTop {
			t.Fatalf("accepted n=%d len=%d k=%d", n, len(x), k)
		}
	})
}

func FuzzReadImage(f *testing.F) {
	f.Add(testPNG(f, 1, 8, 8), "image/png")
	f.Add([]byte("--x\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\nabc\r\n--x--\r\n"), "multipart/form-data; boundary=x")
	s, err := New(Config{MaxPixels: 1 << 16, MaxBodyBytes: 1 << 16})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, ct string) {
		c, req := newContext(body, ct)
		img, err := s.readImage(c, preprocess.DefaultSpec(8))
		if err == nil && (img.W*img.H > 1<<16 || len(img.Pix) != 3*img.W*img.H) {
			t.Fatalf("accepted %dx%d", img.W, img.H)
		}
		_ = req
	})
}

func TestPanicAndRequestID(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	r.Use(s.observe())
	r.GET("/boom", func(c *gin.Context) { panic("kaboom") })
	r.GET("/ok", func(c *gin.Context) { c.String(200, "ok") })
	hs := httptest.NewServer(r)
	defer hs.Close()

	req, _ := http.NewRequest("GET", hs.URL+"/boom", nil)
	req.Header.Set("X-Request-ID", "abc-123")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e errBody
	decode(t, res, &e)
	if res.StatusCode != 500 || !strings.Contains(e.Error, "abc-123") || res.Header.Get("X-Request-ID") != "abc-123" {
		t.Fatalf("panic: %d %q id %q", res.StatusCode, e.Error, res.Header.Get("X-Request-ID"))
	}
	req, _ = http.NewRequest("GET", hs.URL+"/ok", nil)
	req.Header.Set("X-Request-ID", "bad id with spaces")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if id := res.Header.Get("X-Request-ID"); id == "" || strings.Contains(id, " ") {
		t.Fatalf("unsafe incoming id not replaced: %q", id)
	}
}

// TestBatchedAnswersMatchSerial sends distinct images at once, several rounds, so that they
// share onnxruntime runs (and the batcher's reused input buffer): every answer must be the
// one the same image gets alone.
func TestBatchedAnswersMatchSerial(t *testing.T) {
	sessions, env := testSessions(t)
	ts := newTestServer(t, Config{Tasks: []*task.Task{testTask(t, "shapes")}, Sessions: sessions, LiveSessions: env.LiveSessions,
		Batch: BatchConfig{MaxBatch: 8, MaxDelay: 20 * time.Millisecond}})
	var m struct {
		ID         string `json:"id"`
		Resolution int    `json:"resolution"`
	}
	if res := ts.get(t, "/v1/models?task=shapes&madds=1G", &m); res.StatusCode != 200 {
		t.Fatalf("models: %d", res.StatusCode)
	}
	infer := func(x []float32) ([]float32, error) {
		body, _ := json.Marshal(map[string]any{"inputs": []map[string]any{{"name": "input",
			"shape": []int{1, 3, m.Resolution, m.Resolution}, "datatype": "FP32", "data": x}}})
		res, err := http.Post(ts.http.URL+"/v2/models/"+m.ID+"/infer", "application/json", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		defer res.Body.Close()
		var out struct {
			Outputs []struct {
				Data []float32 `json:"data"`
			} `json:"outputs"`
		}
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != 200 || len(out.Outputs) != 1 {
			return nil, fmt.Errorf("infer: %d %v", res.StatusCode, err)
		}
		return out.Outputs[0].Data, nil
	}
	const n = 8
	inputs, alone := make([][]float32, n), make([][]float32, n)
	for i := range n {
		inputs[i] = make([]float32, 3*m.Resolution*m.Resolution)
		for j := range inputs[i] {
			inputs[i][j] = float32(math.Sin(float64(i*7919+j) * 0.37))
		}
		var err error
		if alone[i], err = infer(inputs[i]); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 3 {
		got := make([][]float32, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { got[i], errs[i] = infer(inputs[(i+round)%n]) })
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d, request %d: %v", round, i, errs[i])
			}
			if d := testutil.MaxAbsDiff(t, got[i], alone[(i+round)%n]); d > 1e-4 {
				t.Fatalf("round %d: image %d answered %v in a batch, %v alone (max diff %g)", round, (i+round)%n, got[i], alone[(i+round)%n], d)
			}
		}
	}
	var sum, count, loads, computes float64
	res := ts.get(t, "/metrics", nil)
	body, _ := io.ReadAll(res.Body)
	for line := range strings.SplitSeq(string(body), "\n") {
		fmt.Sscanf(line, "natgw_inference_batch_size_sum %g", &sum)
		fmt.Sscanf(line, "natgw_inference_batch_size_count %g", &count)
		fmt.Sscanf(line, "natgw_session_load_seconds_count %g", &loads)
		fmt.Sscanf(line, "natgw_inference_compute_seconds_count %g", &computes)
	}
	if count == 0 || sum <= count {
		t.Fatalf("no batch held more than one image (%g images in %g runs)", sum, count)
	}
	// One model, one session: loaded once, and its load kept out of the per-run compute time.
	if loads != 1 || computes != count {
		t.Fatalf("%g session loads (want 1) and %g compute observations for %g runs", loads, computes, count)
	}
}

// TestOpenAPICoversRoutes: every API route the router serves is in the OpenAPI document
// with its method (the page's own files aside), and the document names no route the router
// lacks.
func TestOpenAPICoversRoutes(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(openapiJSON, &doc); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	served := map[string]bool{}
	for _, r := range s.engine.Routes() {
		if r.Path == "/" || r.Path == "/index.html" || strings.Contains(r.Path, "*") {
			continue // the web page and its files
		}
		parts := strings.Split(r.Path, "/")
		for i, p := range parts {
			if strings.HasPrefix(p, ":") {
				parts[i] = "{" + p[1:] + "}"
			}
		}
		path, method := strings.Join(parts, "/"), strings.ToLower(r.Method)
		served[method+" "+path] = true
		if _, ok := doc.Paths[path][method]; !ok {
			t.Errorf("%s %s is served but not in openapi.json", r.Method, path)
		}
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			if !served[method+" "+path] {
				t.Errorf("openapi.json names %s %s, which is not served", strings.ToUpper(method), path)
			}
		}
	}
}
