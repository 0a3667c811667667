package web_test

import (
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natgw/natgw/gateway"
	"github.com/natgw/natgw/web"
)

// fakeRuntime writes a runtime folder with small stand-ins for the onnxruntime-web files
// (the handler serves whatever is there; the real files are checked by the e2e test).
func fakeRuntime(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		web.RuntimeEntry:                "export const env = {};\n",
		"ort-wasm-simd-threaded.mjs":    "export default {};\n",
		"ort-wasm-simd-threaded.wasm":   "\x00asm\x01\x00\x00\x00",
		"package.json":                  `{"version":"test"}`,
		".hidden":                       "secret",
		"notes.txt":                     "plain",
		filepath.Join("sub", "file.js"): "nested",
	} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type response struct {
	code int
	ct   string
	body string
	hdr  http.Header
}

func do(t *testing.T, h http.Handler, method, path string) response {
	t.Helper()
	req := httptest.NewRequest(method, "http://gw.test"+path, nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	res := w.Result()
	body, _ := io.ReadAll(res.Body)
	return response{code: res.StatusCode, ct: res.Header.Get("Content-Type"), body: string(body), hdr: res.Header}
}

func errorBody(t *testing.T, r response) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error == "" {
		t.Fatalf("error body %q is not {\"error\": ...}", r.body)
	}
	return e.Error
}

func TestHandler(t *testing.T) {
	h := web.New(web.Options{RuntimeDir: fakeRuntime(t)})
	tests := []struct {
		method, path string
		code         int
		ct           string
		contains     string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8", `<script type="module" src="static/app.js">`},
		{"GET", "/index.html", 200, "text/html; charset=utf-8", "<title>"},
		{"HEAD", "/", 200, "text/html; charset=utf-8", ""},
		{"GET", "/static/app.js", 200, "text/javascript; charset=utf-8", "import"},
		{"GET", "/static/budget.js", 200, "text/javascript; charset=utf-8", "export function parseCount"},
		{"GET", "/static/preprocess.js", 200, "text/javascript; charset=utf-8", "export function tensor"},
		{"GET", "/static/style.css", 200, "text/css; charset=utf-8", ":root"},
		{"GET", "/ort/" + web.RuntimeEntry, 200, "text/javascript; charset=utf-8", "export"},
		{"GET", "/ort/ort-wasm-simd-threaded.mjs", 200, "text/javascript; charset=utf-8", "export"},
		{"GET", "/ort/ort-wasm-simd-threaded.wasm", 200, "application/wasm", "asm"},
		{"GET", "/ort/package.json", 200, "application/json", "version"},
		{"GET", "/ort/notes.txt", 200, "application/octet-stream", "plain"},
		{"GET", "/static/nope.js", 404, "application/json; charset=utf-8", ""},
		{"GET", "/static/", 404, "application/json; charset=utf-8", ""},
		{"GET", "/static/../web.go", 404, "application/json; charset=utf-8", ""},
		{"GET", "/ort/.hidden", 404, "application/json; charset=utf-8", ""},
		{"GET", "/ort/sub/file.js", 404, "application/json; charset=utf-8", ""},
		{"GET", "/ort/sub", 404, "application/json; charset=utf-8", ""},
		{"GET", "/ort/", 404, "application/json; charset=utf-8", ""},
		{"GET", "/ort/..%2fweb.go", 404, "application/json; charset=utf-8", ""},
		{"GET", "/elsewhere", 404, "application/json; charset=utf-8", ""},
		{"POST", "/", 405, "application/json; charset=utf-8", ""},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := do(t, h, tc.method, tc.path)
			if r.code != tc.code || r.ct != tc.ct {
				t.Fatalf("got %d %q, want %d %q (body %q)", r.code, r.ct, tc.code, tc.ct, r.body)
			}
			if !strings.Contains(r.body, tc.contains) {
				t.Fatalf("body %q lacks %q", r.body, tc.contains)
			}
			if r.code >= 400 {
				errorBody(t, r)
			}
			if r.hdr.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatal("no X-Content-Type-Options: nosniff")
			}
		})
	}
	if got := h.RuntimeDir(); got == "" {
		t.Fatal("RuntimeDir empty with a runtime folder")
	}
	csp := do(t, h, "GET", "/").hdr.Get("Content-Security-Policy")
	if !strings.Contains(csp, "'wasm-unsafe-eval'") || !strings.Contains(csp, "default-src 'self'") {
		t.Fatalf("page CSP %q", csp)
	}
}

func TestHandlerRevalidates(t *testing.T) {
	h := web.New(web.Options{RuntimeDir: fakeRuntime(t)})
	first := do(t, h, "GET", "/static/app.js")
	etag := first.hdr.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag on a page file")
	}
	req := httptest.NewRequest("GET", "/static/app.js", nil)
	req.Header.Set("If-None-Match", etag)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusNotModified {
		t.Fatalf("conditional GET: %d, want 304", w.Code)
	}
}

func TestHandlerWithoutRuntime(t *testing.T) {
	t.Setenv(web.RuntimeDirEnv, filepath.Join(t.TempDir(), "missing"))
	h := web.New(web.Options{})
	if h.RuntimeDir() != "" {
		t.Fatalf("RuntimeDir = %q without runtime files", h.RuntimeDir())
	}
	r := do(t, h, "GET", "/ort/"+web.RuntimeEntry)
	if r.code != http.StatusNotFound || !strings.Contains(errorBody(t, r), "in-browser inference is unavailable") {
		t.Fatalf("got %d %q", r.code, r.body)
	}
	// The page itself still works.
	if r := do(t, h, "GET", "/"); r.code != 200 {
		t.Fatalf("page: %d", r.code)
	}
}

func TestFindRuntime(t *testing.T) {
	root := t.TempDir()
	rt := filepath.Join(root, filepath.FromSlash(web.RuntimeDir))
	os.MkdirAll(rt, 0o755)
	os.WriteFile(filepath.Join(rt, web.RuntimeEntry), []byte("x"), 0o644)
	deep := filepath.Join(root, "a", "b")
	os.MkdirAll(deep, 0o755)
	t.Chdir(deep)
	t.Setenv(web.RuntimeDirEnv, "")
	if got := web.FindRuntime(); got != rt {
		t.Fatalf("FindRuntime from %s = %q, want %q", deep, got, rt)
	}
	t.Setenv(web.RuntimeDirEnv, "/elsewhere")
	if got := web.FindRuntime(); got != "/elsewhere" {
		t.Fatalf("FindRuntime with %s = %q", web.RuntimeDirEnv, got)
	}
}

func TestContentType(t *testing.T) {
	for name, want := range map[string]string{
		"a.wasm": "application/wasm", "a.mjs": "text/javascript; charset=utf-8", "A.JS": "text/javascript; charset=utf-8",
		"a.css": "text/css; charset=utf-8", "a.html": "text/html; charset=utf-8", "a.bin": "application/octet-stream", "a": "application/octet-stream",
	} {
		if got := web.ContentType(name); got != want {
			t.Errorf("ContentType(%q) = %q, want %q", name, got, want)
		}
	}
}

// Every embedded file is reachable and has a specific type (no octet-stream page files).
func TestFilesServed(t *testing.T) {
	h := web.New(web.Options{RuntimeDir: fakeRuntime(t)})
	n := 0
	fs.WalkDir(web.Files(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		r := do(t, h, "GET", "/static/"+p)
		if r.code != 200 || r.ct == "application/octet-stream" {
			t.Errorf("%s: %d %q", p, r.code, r.ct)
		}
		return nil
	})
	if n < 6 {
		t.Fatalf("only %d embedded files", n)
	}
}

// The gateway mounts the page next to its API without shadowing it.
func TestGatewayServesPage(t *testing.T) {
	gw, err := gateway.New(gateway.Config{WebRuntime: fakeRuntime(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	h := gw.Handler()
	for _, tc := range []struct {
		path string
		code int
		ct   string
	}{
		{"/", 200, "text/html; charset=utf-8"},
		{"/static/app.js", 200, "text/javascript; charset=utf-8"},
		{"/ort/ort-wasm-simd-threaded.wasm", 200, "application/wasm"},
		{"/ort/missing.wasm", 404, "application/json; charset=utf-8"},
		{"/v1/tasks", 200, "application/json; charset=utf-8"},
		{"/openapi.json", 200, "application/json"},
		{"/v1/nothing", 404, "application/json; charset=utf-8"},
	} {
		r := do(t, h, "GET", tc.path)
		if r.code != tc.code || r.ct != tc.ct {
			t.Errorf("%s: %d %q, want %d %q", tc.path, r.code, r.ct, tc.code, tc.ct)
		}
	}
	if r := do(t, h, "HEAD", "/ort/"+web.RuntimeEntry); r.code != 200 {
		t.Errorf("HEAD runtime entry: %d", r.code)
	}
}

// FuzzHandlerPath: any request path gets an answer (never a panic), and nothing outside the
// page and the runtime folder is ever served.
func FuzzHandlerPath(f *testing.F) {
	for _, s := range []string{"/", "/static/app.js", "/ort/x.wasm", "/ort/../../etc/passwd", "/static/%2e%2e/web.go", "/ort/\x00", "//", "/ort/a/../b"} {
		f.Add(s)
	}
	dir := f.TempDir()
	os.WriteFile(filepath.Join(dir, web.RuntimeEntry), []byte("export {}"), 0o644)
	secret := filepath.Join(filepath.Dir(dir), "secret.txt")
	os.WriteFile(secret, []byte("TOPSECRET"), 0o644)
	h := web.New(web.Options{RuntimeDir: dir})
	f.Fuzz(func(t *testing.T, p string) {
		req, err := http.NewRequest("GET", "http://gw.test/", nil)
		if err != nil {
			t.Fatal(err) // a constant URL: cannot happen
		}
		req.URL.Path = p
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if strings.Contains(w.Body.String(), "TOPSECRET") {
			t.Fatalf("path %q served a file outside the runtime folder", p)
		}
		if w.Code >= 400 && !strings.HasPrefix(w.Body.String(), `{"error":`) {
			t.Fatalf("path %q: %d with body %q", p, w.Code, w.Body.String())
		}
	})
}
