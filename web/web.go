// Package web is natgw's browser client: a single page, embedded in the binary, that lists
// the tasks, plots each task's accuracy-vs-MAdds front, resolves a budget to a model card,
// and classifies an image both in the browser (onnxruntime-web) and on the gateway
// (/v1/classify) so the two answers can be compared side by side.
//
// The page's own files (static/) are embedded. The onnxruntime-web runtime files are not:
// scripts/install-onnxruntime-web.sh installs them into third_party/onnxruntime-web, and the
// Handler serves that folder under /ort/. Without it the page still classifies on the
// server and says that in-browser inference is unavailable.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"
)

// The page: index.html plus its ES modules and stylesheet.
//
//go:embed static
var embedded embed.FS

// Files returns the page's static files (index.html, *.js, style.css), rooted at the page.
func Files() fs.FS {
	sub, err := fs.Sub(embedded, "static")
	if err != nil {
		panic(err) // "static" is a literal embedded directory: cannot fail
	}
	return sub
}

// Where the runtime files live and how to point the gateway elsewhere.
const (
	// RuntimeDir is the onnxruntime-web folder relative to the repository root, as
	// scripts/install-onnxruntime-web.sh installs it.
	RuntimeDir = "third_party/onnxruntime-web"
	// RuntimeDirEnv overrides the folder FindRuntime searches.
	RuntimeDirEnv = "NATGW_ORT_WEB_DIR"
	// RuntimeEntry is the runtime's ES module the page imports (WebAssembly CPU build).
	RuntimeEntry = "ort.wasm.min.mjs"
)

// Mount points of the Handler.
const (
	StaticPrefix  = "/static/"
	RuntimePrefix = "/ort/"
)

// FindRuntime returns the onnxruntime-web folder: $NATGW_ORT_WEB_DIR when set, else the
// first RuntimeDir holding RuntimeEntry found walking up from the working directory and
// from the executable's directory; "" when there is none.
func FindRuntime() string {
	if d := os.Getenv(RuntimeDirEnv); d != "" {
		return d
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, dir := range starts {
		for {
			cand := filepath.Join(dir, filepath.FromSlash(RuntimeDir))
			if fi, err := os.Stat(filepath.Join(cand, RuntimeEntry)); err == nil && fi.Mode().IsRegular() {
				return cand
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return ""
}

// Options configures a Handler.
type Options struct {
	// RuntimeDir is the folder with the onnxruntime-web files; "" uses FindRuntime.
	RuntimeDir string
}

// Handler serves the page at /, its files under /static/ and the runtime under /ort/.
// Errors are JSON {"error": "..."} like the rest of the gateway.
type Handler struct {
	page    fs.FS
	etags   map[string]string // embedded file → strong ETag of its content
	runtime fs.FS             // nil: in-browser inference unavailable
	rtDir   string
}

// New builds the handler. A missing runtime folder is not an error: the page then
// classifies on the server only.
func New(opt Options) *Handler {
	h := &Handler{page: Files(), etags: map[string]string{}}
	_ = fs.WalkDir(h.page, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(h.page, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		h.etags[p] = `"` + hex.EncodeToString(sum[:16]) + `"`
		return nil
	})
	dir := opt.RuntimeDir
	if dir == "" {
		dir = FindRuntime()
	}
	if dir != "" {
		if fi, err := os.Stat(filepath.Join(dir, RuntimeEntry)); err == nil && fi.Mode().IsRegular() {
			h.runtime, h.rtDir = os.DirFS(dir), dir
		}
	}
	return h
}

// RuntimeDir is the folder the runtime is served from; "" when in-browser inference is
// unavailable.
func (h *Handler) RuntimeDir() string { return h.rtDir }

// ContentType is the media type the handler sends for a file name: the browser refuses
// to compile WebAssembly streamed with any type but application/wasm, and to import a
// module with a non-JavaScript type.
func ContentType(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".wasm":
		return "application/wasm"
	case ".css":
		return "text/css; charset=utf-8"
	case ".json", ".map":
		return "application/json"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	}
	return "application/octet-stream"
}

// contentSecurityPolicy allows only same-origin code; 'wasm-unsafe-eval' lets the runtime
// compile its WebAssembly, and blob:/data: images are the user's own picked file.
const contentSecurityPolicy = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; " +
	"style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; worker-src 'self' blob:; " +
	"object-src 'none'; base-uri 'self'; frame-ancestors 'none'"

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/" || p == "/index.html":
		w.Header().Set("Content-Security-Policy", contentSecurityPolicy)
		h.serveEmbedded(w, r, "index.html")
	case strings.HasPrefix(p, StaticPrefix):
		h.serveEmbedded(w, r, strings.TrimPrefix(p, StaticPrefix))
	case strings.HasPrefix(p, RuntimePrefix):
		h.serveRuntime(w, r, strings.TrimPrefix(p, RuntimePrefix))
	default:
		writeError(w, http.StatusNotFound, "no route "+r.Method+" "+p)
	}
}

func (h *Handler) serveEmbedded(w http.ResponseWriter, r *http.Request, name string) {
	etag, ok := h.etags[name]
	if !ok || !fs.ValidPath(name) {
		writeError(w, http.StatusNotFound, "no page file "+truncate(name, 64))
		return
	}
	data, err := fs.ReadFile(h.page, name)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "page file "+name+" unreadable")
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", ContentType(name))
	hd.Set("X-Content-Type-Options", "nosniff")
	// Revalidate every time: the files change with the binary, the ETag makes it cheap.
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", etag)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(data))
}

// maxRuntimeFile bounds what is read from the runtime folder (the .wasm is about 12 MB).
const maxRuntimeFile = 256 << 20

func (h *Handler) serveRuntime(w http.ResponseWriter, r *http.Request, name string) {
	if h.runtime == nil {
		writeError(w, http.StatusNotFound, "in-browser inference is unavailable: the onnxruntime-web files are not installed on this gateway (scripts/install-onnxruntime-web.sh)")
		return
	}
	// Only plain file names: no sub-folders, no dot files, nothing outside the folder.
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") || !fs.ValidPath(name) {
		writeError(w, http.StatusNotFound, "no runtime file "+truncate(name, 64))
		return
	}
	f, err := h.runtime.Open(name)
	if err != nil {
		writeError(w, http.StatusNotFound, "no runtime file "+truncate(name, 64))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxRuntimeFile {
		writeError(w, http.StatusNotFound, "no runtime file "+truncate(name, 64))
		return
	}
	rs, ok := f.(io.ReadSeeker)
	if !ok {
		writeError(w, http.StatusInternalServerError, "runtime file "+name+" is not seekable")
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", ContentType(name))
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, name, fi.ModTime(), rs)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	body, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(body)
}

// truncate shortens s to at most n bytes on a rune boundary, for echoing paths in errors.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
