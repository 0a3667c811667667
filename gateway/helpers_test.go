package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/natgw/natgw/cache"
	"github.com/natgw/natgw/onnxrt"
	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

// testSpec is a small space so that tests export and run models quickly.
func testSpec() *supernet.Spec {
	return &supernet.Spec{
		Name: "test_space", Classes: 4, Resolutions: []int{32, 48, 64}, Kernels: []int{3, 5}, Expands: []int{2, 4},
		Divisor: 8, SEReduction: 4, Padding: supernet.PadSymmetric, BNEps: 1e-5, BNMomentum: 0.1,
		Stem:  supernet.Conv{Out: 8, Kernel: 3, Stride: 2, Act: supernet.ActHSwish},
		First: supernet.FirstBlock{Out: 8, Kernel: 3, Stride: 1, Act: supernet.ActReLU},
		Stages: []supernet.Stage{
			{Width: 16, Stride: 2, Act: supernet.ActReLU, Depths: []int{1, 2}},
			{Width: 24, Stride: 2, Act: supernet.ActHSwish, SE: true, Depths: []int{1, 2}},
		},
		FinalExpand: &supernet.Pointwise{Out: 48, BN: true, Act: supernet.ActHSwish},
		FeatureMix:  &supernet.Pointwise{Out: 64, Act: supernet.ActHSwish},
	}
}

// testTask writes a task folder with a random supernet, calibration images and an archive
// of every subnet whose accuracy grows with its MAdds (so budgets have clear answers).
func testTask(t testing.TB, name string) *task.Task {
	t.Helper()
	spec := testSpec()
	var archs []supernet.Arch
	for _, r := range spec.Resolutions {
		for _, k := range spec.Kernels {
			for _, e := range spec.Expands {
				for _, d := range []int{1, 2} {
					archs = append(archs, spec.Uniform(k, e, d, r))
				}
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	return writeTestTask(t, name, archs, func(madds int64) float64 { return 0.3 + float64(madds)/2e7 + rng.Float64()*0.01 }, false)
}

// sparseTestTask is a task whose archive holds a few subnets spread over the space, with
// validation images (two per class), so that budgets between them start background
// searches and their candidates can be measured; top1 gives the archive's accuracies.
func sparseTestTask(t testing.TB, name string, top1 func(madds int64) float64) *task.Task {
	t.Helper()
	spec := testSpec()
	archs := []supernet.Arch{spec.Smallest(), spec.Uniform(3, 2, 2, 48), spec.Uniform(5, 2, 1, 48), spec.Uniform(3, 4, 1, 64), spec.Largest()}
	return writeTestTask(t, name, archs, top1, true)
}

func writeTestTask(t testing.TB, name string, archs []supernet.Arch, top1 func(madds int64) float64, val bool) *task.Task {
	t.Helper()
	spec := testSpec()
	sn, err := supernet.Random(spec, 11)
	if err != nil {
		t.Fatal(err)
	}
	sn.Meta[supernet.MetaVersion] = "1"
	archive := &task.Archive{}
	for _, a := range archs {
		sub, err := sn.Extract(a)
		if err != nil {
			t.Fatal(err)
		}
		c := sub.Count()
		a = sub.Arch
		archive.Put(task.Entry{Arch: a, Hash: a.Hash(), MAdds: c.MAdds, Params: c.Params,
			Top1: top1(c.MAdds), Split: task.SplitVal, Source: task.SourceSynthetic})
	}
	tk := &task.Task{
		Manifest: task.Manifest{Name: name, Description: "test task", Preprocess: preprocess.DefaultSpec(0)},
		Supernet: sn, Labels: []string{"red", "green", "blue", "grey"}, Archive: archive,
	}
	dir := filepath.Join(t.TempDir(), name)
	if err := task.Save(dir, tk, supernet.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, task.CalibDir), 0o755)
	for i := range 6 {
		os.WriteFile(filepath.Join(dir, task.CalibDir, string(rune('a'+i))+".png"), testPNG(t, uint64(i), 40, 40), 0o644)
	}
	if val {
		for c := range 4 {
			cd := filepath.Join(dir, task.ValDir, task.ValClassDir(c))
			os.MkdirAll(cd, 0o755)
			for i := range 2 {
				os.WriteFile(filepath.Join(cd, fmt.Sprintf("%d.png", i)), testPNG(t, uint64(100+10*c+i), 40, 40), 0o644)
			}
		}
	}
	loaded, err := task.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return loaded
}

func testPNG(t testing.TB, seed uint64, w, h int) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(rng.IntN(256)), uint8(x * 4), uint8(y * 4), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var (
	ortOnce sync.Once
	ortEnv  *onnxrt.Env
	ortErr  error
)

// testSessions returns an onnxruntime session cache, skipping without the library unless
// NATGW_REQUIRE_ORT=1.
func testSessions(t testing.TB) (*onnxrt.Cache, *onnxrt.Env) {
	t.Helper()
	ortOnce.Do(func() { ortEnv, ortErr = onnxrt.NewEnv(onnxrt.Config{IntraOpThreads: 1}) })
	if ortErr != nil {
		if os.Getenv("NATGW_REQUIRE_ORT") == "1" || !errors.Is(ortErr, onnxrt.ErrLibraryNotFound) {
			t.Fatal(ortErr)
		}
		t.Skipf("onnxruntime missing: %v", ortErr)
	}
	c := onnxrt.NewCache(ortEnv, 8, 0)
	t.Cleanup(func() { c.Close() })
	return c, ortEnv
}

type testServer struct {
	*Server
	http *httptest.Server
}

func newTestServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.SetReady(true)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() { hs.Close(); s.Close() })
	return &testServer{s, hs}
}

// newRedis is a client with generous timeouts: on a loaded machine the default 200 ms dial
// can time out, and a replica that cannot take the lock specializes on its own.
func newRedis(t testing.TB, url string) *cache.Redis {
	r, err := cache.NewRedis(cache.RedisOptions{URL: url, Prefix: "natgw-test:", DialTimeout: 3 * time.Second, ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// get fetches a URL and decodes a JSON body into v (when non-nil); it returns the response.
func (ts *testServer) get(t testing.TB, path string, v any) *http.Response {
	t.Helper()
	res, err := http.Get(ts.http.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, res, v)
}

func decode(t testing.TB, res *http.Response, v any) *http.Response {
	t.Helper()
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("%s: %v in %q", res.Request.URL, err, body)
		}
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	return res
}

// newContext builds a gin context around a POST with the given body, for handler-level fuzzing.
func newContext(body []byte, ct string) (*gin.Context, *http.Request) {
	w := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(w)
	req := httptest.NewRequest("POST", "/v1/classify", bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	c.Request = req
	return c, req
}
