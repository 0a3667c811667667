package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/natgw/natgw/cache"
	"github.com/natgw/natgw/gateway"
	"github.com/natgw/natgw/internal/affinity"
	"github.com/natgw/natgw/onnxrt"
	"github.com/natgw/natgw/specializer"
	"github.com/natgw/natgw/task"
)

// version is natgw's version, recorded in exported models; set with -ldflags "-X main.version=...".
var version = "devel"

// envFlags registers flags whose defaults come from environment variables when set.
type envFlags struct {
	fs   *flag.FlagSet
	errs []error
}

func (e *envFlags) env(name string) (string, bool) { return os.LookupEnv(name) }

func (e *envFlags) String(name, envName, def, usage string) *string {
	if v, ok := e.env(envName); ok {
		def = v
	}
	return e.fs.String(name, def, usage+" (env "+envName+")")
}

func (e *envFlags) Int(name, envName string, def int, usage string) *int {
	if v, ok := e.env(envName); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: not an integer", envName, v))
		}
		def = n
	}
	return e.fs.Int(name, def, usage+" (env "+envName+")")
}

func (e *envFlags) Int64(name, envName string, def int64, usage string) *int64 {
	if v, ok := e.env(envName); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: not an integer", envName, v))
		}
		def = n
	}
	return e.fs.Int64(name, def, usage+" (env "+envName+")")
}

func (e *envFlags) Duration(name, envName string, def time.Duration, usage string) *time.Duration {
	if v, ok := e.env(envName); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: not a duration", envName, v))
		}
		def = d
	}
	return e.fs.Duration(name, def, usage+" (env "+envName+")")
}

func (e *envFlags) Bool(name, envName string, def bool, usage string) *bool {
	if v, ok := e.env(envName); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: not a boolean", envName, v))
		}
		def = b
	}
	return e.fs.Bool(name, def, usage+" (env "+envName+")")
}

func cmdServe(ctx context.Context, env *cli, args []string) error {
	fs := newFlags(env, "serve")
	e := &envFlags{fs: fs}
	addr := e.String("addr", "NATGW_ADDR", ":8080", "listen address")
	models := e.String("models", "NATGW_MODELS", "models", "folder of task folders to serve")
	redisURL := e.String("redis", "NATGW_REDIS_URL", "", "Redis URL for the shared cache tier and cross-replica locks (empty: in-memory only)")
	cacheBytes := e.Int64("cache-bytes", "NATGW_CACHE_BYTES", gateway.DefaultCacheBytes, "in-memory cache tier size in bytes")
	ortLib := e.String("ort-lib", "ONNXRUNTIME_LIB", "", "path of libonnxruntime.so.1 (default: search, see scripts/install-onnxruntime.sh)")
	ortThreads := e.Int("ort-threads", "NATGW_ORT_THREADS", 2, "onnxruntime intra-op threads per session")
	ortWeb := e.String("ort-web", "NATGW_ORT_WEB_DIR", "", "onnxruntime-web files for in-browser inference on the page at / (default: search third_party/onnxruntime-web)")
	ortSpin := e.String("ort-spin", "NATGW_ORT_SPIN", "run", "when onnxruntime threads spin-wait for work: run (inside runs only), never, or always (also between runs)")
	ortCPUs := e.String("ort-cpus", "NATGW_ORT_CPUS", "", "run inference threads on these CPUs (e.g. 1 or 2-3) and everything else on the others (empty: no pinning); --ort-threads must not exceed their number")
	ortProfile := e.String("ort-profile", "NATGW_ORT_PROFILE", "", "write onnxruntime's per-operator profile of each session to PREFIX_<date>.json when the session closes (empty: off)")
	maxSessions := e.Int("max-sessions", "NATGW_MAX_SESSIONS", onnxrt.DefaultMaxSessions, "onnxruntime sessions kept resident")
	sessionBytes := e.Int64("session-bytes", "NATGW_SESSION_BYTES", onnxrt.DefaultMaxBytes, "model bytes kept resident in sessions")
	maxBatch := e.Int("max-batch", "NATGW_MAX_BATCH", 16, "images per onnxruntime run (1 disables dynamic batching)")
	warmBatch := e.Int("warm-batch", "NATGW_WARM_BATCH", -1, "batch size each new inference session runs once on zeros before it serves, so that the first burst does not pay onnxruntime's first run at large batch sizes (0: off; -1: --max-batch)")
	batchDelay := e.Duration("batch-delay", "NATGW_BATCH_DELAY", 0, "how long the first request of a batch waits for others (0: batch only what is already queued, as Triton's default)")
	queue := e.Int("queue", "NATGW_QUEUE", 256, "inference requests waiting per model before 503")
	maxBody := e.Int64("max-body", "NATGW_MAX_BODY", gateway.DefaultMaxBodyBytes, "largest request body in bytes (413 beyond)")
	maxPixels := e.Int64("max-pixels", "NATGW_MAX_PIXELS", gateway.DefaultMaxPixels, "largest image in pixels (413 beyond)")
	shutdownDelay := e.Duration("shutdown-delay", "NATGW_SHUTDOWN_DELAY", 0, "time between turning readiness off and draining, for load balancers to notice")
	shutdownTimeout := e.Duration("shutdown-timeout", "NATGW_SHUTDOWN_TIMEOUT", 20*time.Second, "longest wait for in-flight requests on shutdown")
	searchTime := e.Duration("search-time", "NATGW_SEARCH_TIME", 200*time.Millisecond, "time limit of a background surrogate search for budgets far above the archive's best fit (0: archive answers only, nothing new measured)")
	candidateCalib := e.Int("candidate-calib", "NATGW_CANDIDATE_CALIB", gateway.DefaultCandidateCalib, "calibration images (evenly spaced over the task's) a background candidate's BatchNorm statistics are rebuilt on (0: all, as the archive's)")
	candidateBatch := e.Int("candidate-batch", "NATGW_CANDIDATE_BATCH", gateway.DefaultCandidateBatch, "calibration batch of a background candidate (0: the archive's, 64; memory grows with it, accuracy falls below it)")
	measureWorkers := e.Int("measure-workers", "NATGW_MEASURE_WORKERS", 1, "cores one background measurement uses")
	exportWorkers := e.Int("export-workers", "NATGW_EXPORT_WORKERS", gateway.DefaultExportWorkers, "ONNX exports running at once")
	logLevel := e.String("log-level", "NATGW_LOG_LEVEL", "info", "debug, info, warn or error")
	accessLog := e.Bool("access-log", "NATGW_ACCESS_LOG", true, "log one line per request")
	pprofAddr := e.String("pprof-addr", "NATGW_PPROF_ADDR", "", "serve Go's profiler (/debug/pprof/) on this separate address, e.g. 127.0.0.1:6060 (empty: off)")
	if err := parse(fs, args); err != nil {
		return helpOK(err)
	}
	if err := errors.Join(e.errs...); err != nil {
		return usageError{err.Error()}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError{fmt.Sprintf("--log-level %q: %v", *logLevel, err)}
	}
	spin, err := onnxrt.ParseSpin(*ortSpin)
	if err != nil {
		return usageError{"--ort-spin: " + err.Error()}
	}
	if *warmBatch < -1 {
		return usageError{fmt.Sprintf("--warm-batch %d: give a batch size, 0 (off) or -1 (--max-batch)", *warmBatch)}
	}
	if *searchTime < 0 || *candidateCalib < 0 || *candidateBatch < 0 || *measureWorkers < 1 || *exportWorkers < 1 {
		return usageError{"--search-time, --candidate-calib and --candidate-batch are not negative; --measure-workers and --export-workers at least 1"}
	}
	if *warmBatch > *maxBatch {
		return usageError{fmt.Sprintf("--warm-batch %d exceeds --max-batch %d: no run is ever that large", *warmBatch, *maxBatch)}
	}
	var cpus []int
	if *ortCPUs != "" {
		if cpus, err = affinity.Parse(*ortCPUs); err != nil {
			return usageError{"--ort-cpus: " + err.Error()}
		}
		if *ortThreads < 1 || *ortThreads > len(cpus) {
			return usageError{fmt.Sprintf("--ort-threads %d with --ort-cpus %s: give 1 to %d threads, one per pinned CPU", *ortThreads, affinity.Format(cpus), len(cpus))}
		}
	}
	log := slog.New(slog.NewJSONHandler(env.stderr, &slog.HandlerOptions{Level: level}))

	tasks, err := loadTasks(*models, log)
	if err != nil {
		return err
	}
	cfg := gateway.Config{
		Tasks: tasks, CacheBytes: *cacheBytes, Logger: log, Version: version,
		MaxBodyBytes: *maxBody, MaxPixels: *maxPixels, AccessLog: *accessLog, WebRuntime: *ortWeb,
		Batch: gateway.BatchConfig{MaxBatch: *maxBatch, MaxDelay: *batchDelay, Queue: *queue, CPUs: cpus},
		Search: specializer.TaskOptions{SearchTime: *searchTime, Workers: *measureWorkers,
			Calibration: task.Calibration{Images: *candidateCalib, Batch: *candidateBatch}},
		ExportWorkers: *exportWorkers,
	}
	if len(cpus) > 0 {
		rest, err := affinity.Split(cpus)
		if err != nil {
			return fmt.Errorf("--ort-cpus: %w", err)
		}
		log.Info("inference pinned", "cpus", affinity.Format(cpus), "rest", affinity.Format(rest))
	}
	if *redisURL != "" {
		r, err := cache.NewRedis(cache.RedisOptions{URL: *redisURL, Prefix: "natgw:", ReadTimeout: time.Second, WriteTimeout: time.Second})
		if err != nil {
			return fmt.Errorf("--redis: %w", err)
		}
		defer r.Close()
		cfg.Redis = r
		log.Info("redis cache tier", "url", redactURL(*redisURL))
	}
	ortCfg := onnxrt.Config{LibraryPath: *ortLib, IntraOpThreads: *ortThreads, InterOpThreads: 1, Spin: spin, ProfilePrefix: *ortProfile}
	switch {
	case *warmBatch < 0:
		ortCfg.WarmBatches = []int{max(*maxBatch, 1)}
	case *warmBatch > 0:
		ortCfg.WarmBatches = []int{*warmBatch}
	}
	ortEnv, err := onnxrt.NewEnv(ortCfg)
	if err != nil {
		log.Warn("inference disabled", "err", err)
	} else {
		sessions := onnxrt.NewCache(ortEnv, *maxSessions, *sessionBytes)
		defer sessions.Close()
		cfg.Sessions, cfg.LiveSessions = sessions, ortEnv.LiveSessions
		// Candidates' val passes: their own threads, which sleep between runs.
		if cfg.Measure, err = onnxrt.NewEnv(onnxrt.Config{LibraryPath: ortEnv.LibraryPath(), IntraOpThreads: max(*measureWorkers, 1),
			InterOpThreads: 1, Spin: onnxrt.SpinNever}); err != nil {
			return err
		}
		log.Info("onnxruntime", "library", ortEnv.LibraryPath(), "version", ortEnv.Version())
	}
	gw, err := gateway.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           gw.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      120 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if *pprofAddr != "" {
		// A separate listener: profiles never share the public port.
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		psrv := &http.Server{Addr: *pprofAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := psrv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Warn("pprof listener", "err", err)
			}
		}()
		defer psrv.Close()
	}
	gw.SetReady(true)
	log.Info("serving", "addr", ln.Addr().String(), "tasks", len(tasks), "ready", gw.Ready())
	fmt.Fprintf(env.stdout, "natgw listening on %s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Readiness goes first so that balancers stop sending before we drain.
	gw.SetReady(false)
	log.Info("shutting down: readiness off, draining", "delay", *shutdownDelay)
	time.Sleep(*shutdownDelay)
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	gw.Close()
	log.Info("stopped", "err", err)
	return err
}

// loadTasks loads every task under dir; a missing or empty folder serves nothing (and the
// gateway reports itself not ready), a broken task stops the start.
func loadTasks(dir string, log *slog.Logger) ([]*task.Task, error) {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		log.Warn("no task folder: serving no tasks, not ready", "models", dir)
		return nil, nil
	}
	tasks, err := task.LoadAll(dir)
	if err != nil {
		return nil, err
	}
	if len(tasks) == 0 {
		log.Warn("no tasks found: serving none, not ready", "models", dir)
	}
	for _, t := range tasks {
		log.Info("task loaded", "task", t.Name, "spec", t.Supernet.Spec.Name, "supernet", t.Supernet.Version(),
			"archive", t.Archive.Len(), "stored_statistics", t.Stats.Len(), "calibration_images", len(t.Calib))
	}
	return tasks, nil
}

// redactURL hides a password in a Redis URL for logs.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparseable)"
}
