// Package gateway is natgw's HTTP service (gin): it answers budgets with specialized
// subnets, serves their ONNX files, classifies images with onnxruntime behind dynamic
// batching, speaks the Open Inference Protocol v2, and exports Prometheus metrics.
//
// A request flows one way: budget → canonical arch (the task's specializer.Resolver:
// measured subnets only) → model, made once per arch (stored BatchNorm statistics, export)
// → cache (memory, optionally Redis) → onnxruntime session.
package gateway

import (
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/natgw/natgw/cache"
	"github.com/natgw/natgw/onnxrt"
	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/specializer"
	"github.com/natgw/natgw/task"
)

// Config holds the gateway's dependencies and limits.
type Config struct {
	Tasks []*task.Task
	// Redis is the shared cache tier and cross-replica lock; nil keeps everything in memory.
	Redis *cache.Redis
	// CacheBytes caps the in-memory cache tier.
	CacheBytes int64
	// Sessions runs models; nil disables inference (classify and OIP infer answer 503).
	Sessions *onnxrt.Cache
	// Measure, if set, runs the val pass of candidates measured in the background (its
	// threads: Search.Workers); nil measures them with natgw's Go forward. Search.Forward,
	// when set, wins.
	Measure *onnxrt.Env
	// LiveSessions reports resident onnxruntime sessions for the metrics; may be nil.
	LiveSessions func() int64
	// Search configures each task's background search for subnets its archive lacks;
	// zero: budgets are answered from the archives alone.
	Search specializer.TaskOptions
	// ExportWorkers bounds concurrent ONNX exports (each holds a model's weights several
	// times over); default 2.
	ExportWorkers int
	Logger        *slog.Logger
	Version       string

	MaxBodyBytes int64 // request bodies (images, OIP tensors)
	MaxPixels    int64 // decoded image size
	Batch        BatchConfig
	ModelTTL     time.Duration // model bytes and metadata, and arch → model mappings
	AccessLog    bool
	WebRuntime   string // onnxruntime-web folder for the page at /; "" searches (web.FindRuntime)
}

// Defaults for zero Config fields.
const (
	DefaultCacheBytes    = 512 << 20
	DefaultMaxBodyBytes  = 16 << 20
	DefaultMaxPixels     = 40_000_000
	DefaultModelTTL      = 7 * 24 * time.Hour
	DefaultExportWorkers = 2
	// DefaultCandidateCalib is how many calibration images a candidate measured in the
	// background is calibrated on (specializer.TaskOptions.Calibration).
	DefaultCandidateCalib = 128
	// DefaultCandidateBatch is the calibration batch of such a candidate (0: the archive's,
	// task.CalibBatch; smaller batches save memory but cost accuracy, BENCHMARKS.md).
	DefaultCandidateBatch = 0
)

// Server is the gateway. Create it with New; serve Handler; call Close when done.
type Server struct {
	cfg         Config
	log         *slog.Logger
	tasks       map[string]*servedTask
	names       []string
	exportSlots chan struct{}
	cache       *cache.Tiered
	group       *cache.Group
	infer       *inference
	metrics     *metrics
	engine      *gin.Engine
	ready       atomic.Bool
	bufs        buffers // request bodies and input tensors, reused across requests
	reqIDs      *requestIDs
}

// New builds a gateway. It is not ready until SetReady(true).
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = DefaultCacheBytes
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxPixels <= 0 {
		cfg.MaxPixels = DefaultMaxPixels
	}
	if cfg.ExportWorkers <= 0 {
		cfg.ExportWorkers = DefaultExportWorkers
	}
	if cfg.ModelTTL <= 0 {
		cfg.ModelTTL = DefaultModelTTL
	}
	cfg.Batch = cfg.Batch.withDefaults()
	s := &Server{
		cfg: cfg, log: cfg.Logger, tasks: map[string]*servedTask{}, exportSlots: make(chan struct{}, cfg.ExportWorkers),
		reqIDs: newRequestIDs(),
	}
	for _, t := range cfg.Tasks {
		if _, dup := s.tasks[t.Name]; dup {
			s.closeResolvers()
			return nil, errors.New("gateway: task " + t.Name + " given twice")
		}
		opt := cfg.Search
		opt.Logger = cfg.Logger.With("task", t.Name)
		if opt.Forward == nil && cfg.Measure != nil {
			opt.Forward = ONNXForward(cfg.Measure)
		}
		r, err := specializer.ForTask(t, opt)
		if err != nil {
			s.closeResolvers()
			return nil, fmt.Errorf("gateway: %w", err)
		}
		s.tasks[t.Name] = &servedTask{t: t, resolver: r, version: t.Version()}
		s.names = append(s.names, t.Name)
	}
	sort.Strings(s.names)
	live := func() float64 {
		if cfg.LiveSessions == nil {
			return 0
		}
		return float64(cfg.LiveSessions())
	}
	s.metrics = newMetrics(live)
	s.infer = newInference(cfg.Batch, s, cfg.Sessions, s.metrics, cfg.Logger)
	local, err := cache.NewMemory(cache.MemoryOptions{MaxBytes: cfg.CacheBytes})
	if err != nil {
		return nil, err
	}
	topts := cache.TieredOptions{Local: local, Logger: cfg.Logger, Metrics: s.metrics.cache}
	if cfg.Redis != nil {
		topts.Remote = cfg.Redis
	}
	if s.cache, err = cache.NewTiered(topts); err != nil {
		return nil, err
	}
	if s.group, err = cache.NewGroup(cache.GroupOptions{Cache: s.cache, Logger: cfg.Logger, Metrics: s.metrics.cache}); err != nil {
		return nil, err
	}
	s.engine = s.routes()
	return s, nil
}

// Handler is the HTTP handler.
func (s *Server) Handler() http.Handler { return s.engine }

// SetReady turns readiness on or off; shutdown turns it off before draining.
func (s *Server) SetReady(v bool) { s.ready.Store(v && len(s.tasks) > 0) }

// Ready reports readiness: tasks loaded and not shutting down.
func (s *Server) Ready() bool { return s.ready.Load() }

// servedTask is a task as the gateway serves it: its folder, its resolver and its version.
type servedTask struct {
	t        *task.Task
	resolver *specializer.Resolver
	version  string // t.Version(), computed once
}

// Close stops the batchers (pending requests get 503) and the tasks' background work.
// Call after the HTTP server drained.
func (s *Server) Close() {
	s.infer.close()
	s.closeResolvers()
}

func (s *Server) closeResolvers() {
	for _, ts := range s.tasks {
		ts.resolver.Close()
	}
}

// Exports is the number of ONNX exports this server made (models made, or made again).
func (s *Server) Exports() float64 {
	var total float64
	for _, name := range s.names {
		total += counterValue(s.metrics.exports.WithLabelValues(name))
	}
	return total
}

func (s *Server) imageLimits() preprocess.Limits {
	return preprocess.Limits{MaxPixels: s.cfg.MaxPixels, MaxBytes: s.cfg.MaxBodyBytes}
}

//go:embed openapi.json
var openapiJSON []byte

func (s *Server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.Use(s.observe())
	r.NoRoute(func(c *gin.Context) {
		c.JSON(http.StatusNotFound, errorBody{Error: "no route " + c.Request.Method + " " + truncate(c.Request.URL.Path, 256), Type: typeNotFound})
	})
	r.NoMethod(func(c *gin.Context) {
		c.JSON(http.StatusMethodNotAllowed, errorBody{Error: "method " + c.Request.Method + " not allowed on " + truncate(c.Request.URL.Path, 256), Type: typeMethodNotAllowed})
	})
	r.GET("/openapi.json", func(c *gin.Context) { c.Data(http.StatusOK, "application/json", openapiJSON) })
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{})))
	s.webRoutes(r)

	v1 := r.Group("/v1")
	v1.GET("/tasks", s.wrap(s.listTasks))
	v1.GET("/tasks/:task", s.wrap(s.getTask))
	v1.GET("/models", s.wrap(s.getModelByBudget))
	v1.HEAD("/models", s.wrap(s.getModelByBudget))
	v1.GET("/models/:id", s.wrap(s.getModel))
	v1.GET("/models/:id/model.onnx", s.wrap(s.getModelFile))
	v1.HEAD("/models/:id/model.onnx", s.wrap(s.getModelFile))
	v1.POST("/classify", s.wrap(s.classify))

	v2 := r.Group("/v2")
	v2.GET("", s.wrap(s.oipServer))
	v2.GET("/health/live", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"live": true}) })
	v2.GET("/health/ready", func(c *gin.Context) {
		code := http.StatusOK
		if !s.Ready() {
			code = http.StatusServiceUnavailable
		}
		c.JSON(code, gin.H{"ready": s.Ready()})
	})
	// KServe's REST description of the protocol (rest_predict_v2.yaml) names every model
	// path with and without /versions/{version}; a model has one version, "1".
	for _, p := range []string{"/models/:id", "/models/:id/versions/:version"} {
		v2.GET(p, s.wrap(s.oipModel))
		v2.GET(p+"/ready", s.wrap(s.oipModelReady))
		v2.POST(p+"/infer", s.wrap(s.oipInfer))
	}
	// The design card's own path for a model by budget.
	r.GET("/models", s.wrap(s.getModelByBudget))
	r.HEAD("/models", s.wrap(s.getModelByBudget))
	return r
}
