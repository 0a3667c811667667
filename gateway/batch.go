package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/natgw/natgw/internal/affinity"
	"github.com/natgw/natgw/onnxrt"
)

// BatchConfig tunes dynamic batching of inference.
type BatchConfig struct {
	MaxBatch int           // images per onnxruntime run; 1 turns batching off
	MaxDelay time.Duration // how long the first request of a batch waits for company
	Queue    int           // requests waiting per model; beyond it requests get 503
	// CPUs, when set, pins each model's batcher thread (and so the onnxruntime threads
	// its sessions start) to these CPUs; the caller keeps the rest of the process off
	// them (affinity.Split).
	CPUs []int
}

func (b BatchConfig) withDefaults() BatchConfig {
	if b.MaxBatch < 1 {
		b.MaxBatch = 16
	}
	if b.MaxDelay < 0 {
		b.MaxDelay = 0
	}
	if b.Queue < 1 {
		b.Queue = 256
	}
	return b
}

// batcherIdle is how long a model's batcher goroutine lingers with nothing to do.
const batcherIdle = 2 * time.Second

type inferReq struct {
	ctx  context.Context
	x    []float32
	n    int
	enq  time.Time
	done chan inferRes
}

type inferRes struct {
	y   []float32
	err error
}

// modelFiles is all inference needs from the rest of the gateway: a model's ONNX bytes
// by id, to build its session.
type modelFiles interface {
	modelFile(ctx context.Context, id string) ([]byte, error)
}

// inference runs models in onnxruntime sessions, one batcher per model gathering
// concurrent requests into runs.
type inference struct {
	cfg      BatchConfig
	files    modelFiles
	sessions *onnxrt.Cache
	metrics  *metrics
	log      *slog.Logger

	mu       sync.Mutex
	batchers map[string]*batcher
	wg       sync.WaitGroup
	stop     chan struct{}
	stopOnce sync.Once
}

func newInference(cfg BatchConfig, files modelFiles, sessions *onnxrt.Cache, m *metrics, log *slog.Logger) *inference {
	return &inference{cfg: cfg, files: files, sessions: sessions, metrics: m, log: log,
		batchers: map[string]*batcher{}, stop: make(chan struct{})}
}

// close stops the batchers; requests still queued get 503.
func (in *inference) close() {
	in.stopOnce.Do(func() { close(in.stop) })
	in.wg.Wait()
}

// batcher gathers requests for one model into onnxruntime runs.
type batcher struct {
	in    *inference
	id    string
	res   int
	imgSz int // floats per image
	queue chan *inferReq
	// joined holds a batch of several requests' images, reused by every such batch: a
	// fresh one is up to MaxBatch images (4.9 MB at 160 px) of never-touched pages.
	joined []float32
}

// run runs n images (x is [n,3,R,R]) through model id, batched with concurrent requests.
func (in *inference) run(ctx context.Context, info ModelInfo, x []float32, n int) ([]float32, error) {
	if in.sessions == nil {
		return nil, &apiError{errNotReady, "inference is disabled: onnxruntime is not configured"}
	}
	if n > in.cfg.MaxBatch {
		return nil, badRequest("batch of %d images, at most %d per request", n, in.cfg.MaxBatch)
	}
	r := &inferReq{ctx: ctx, x: x, n: n, enq: time.Now(), done: make(chan inferRes, 1)}
	in.mu.Lock()
	b := in.batchers[info.ID]
	if b == nil {
		b = &batcher{in: in, id: info.ID, res: info.Resolution, imgSz: 3 * info.Resolution * info.Resolution, queue: make(chan *inferReq, in.cfg.Queue)}
		in.batchers[info.ID] = b
		in.wg.Add(1)
		go b.loop()
	}
	select {
	case b.queue <- r:
	default:
		in.mu.Unlock()
		return nil, &apiError{errOverloaded, fmt.Sprintf("inference queue for model %s is full (%d waiting); retry shortly", info.ID, in.cfg.Queue)}
	}
	in.mu.Unlock()
	select {
	case res := <-r.done:
		return res.y, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (b *batcher) loop() {
	defer b.in.wg.Done()
	// onnxruntime runs part of each batch on the calling thread and keeps per-thread scratch
	// buffers: one OS thread per model reuses them instead of growing a set per thread.
	runtime.LockOSThread()
	if cpus := b.in.cfg.CPUs; len(cpus) > 0 {
		// A pinned thread must not go back to Go's pool: the goroutine exits locked, and
		// the thread ends with it.
		if err := affinity.PinThread(cpus); err != nil {
			b.in.log.Warn("inference thread not pinned", "model", b.id, "err", err)
			defer runtime.UnlockOSThread()
		}
	} else {
		defer runtime.UnlockOSThread()
	}
	cfg := b.in.cfg
	var carry *inferReq
	idle := time.NewTimer(batcherIdle)
	defer idle.Stop()
	for {
		first := carry
		carry = nil
		if first == nil {
			idle.Reset(batcherIdle)
			select {
			case first = <-b.queue:
			case <-idle.C:
				if b.retire() {
					return
				}
				continue
			case <-b.in.stop:
				b.drain()
				return
			}
		}
		batch := []*inferReq{first}
		total := first.n
		// With no delay the batch is whatever already waits: no timer per batch.
		var deadline <-chan time.Time
		var timer *time.Timer
		if cfg.MaxDelay > 0 {
			timer = time.NewTimer(cfg.MaxDelay)
			deadline = timer.C
		}
	gather:
		for total < cfg.MaxBatch {
			var r *inferReq
			if deadline == nil {
				select {
				case r = <-b.queue:
				default:
					break gather
				}
			} else {
				select {
				case r = <-b.queue:
				case <-deadline:
					break gather
				}
			}
			if total+r.n > cfg.MaxBatch {
				carry = r
				break gather
			}
			batch = append(batch, r)
			total += r.n
		}
		if timer != nil {
			timer.Stop()
		}
		b.run(batch, total)
	}
}

// retire removes an idle batcher; false when a request slipped in meanwhile.
func (b *batcher) retire() bool {
	b.in.mu.Lock()
	defer b.in.mu.Unlock()
	if len(b.queue) > 0 {
		return false
	}
	delete(b.in.batchers, b.id)
	return true
}

func (b *batcher) drain() {
	for {
		select {
		case r := <-b.queue:
			r.done <- inferRes{err: &apiError{errNotReady, "shutting down"}}
		default:
			return
		}
	}
}

// run executes one batch, skipping requests whose callers already gave up.
func (b *batcher) run(batch []*inferReq, total int) {
	start := time.Now()
	live := batch[:0]
	n := 0
	for _, r := range batch {
		if r.ctx.Err() != nil {
			r.done <- inferRes{err: r.ctx.Err()}
			continue
		}
		b.in.metrics.queueSeconds.Observe(start.Sub(r.enq).Seconds())
		live = append(live, r)
		n += r.n
	}
	if n == 0 {
		return
	}
	x := live[0].x
	if len(live) > 1 {
		if cap(b.joined) < n*b.imgSz { // n never exceeds MaxBatch: allocated once
			b.joined = make([]float32, 0, b.in.cfg.MaxBatch*b.imgSz)
		}
		x = b.joined[:0]
		for _, r := range live {
			x = append(x, r.x...)
		}
	}
	y, err := b.runSession(live[0].ctx, x, n)
	b.in.metrics.batchSize.Observe(float64(n))
	if err != nil {
		for _, r := range live {
			r.done <- inferRes{err: err}
		}
		return
	}
	per := len(y) / n
	off := 0
	for _, r := range live {
		r.done <- inferRes{y: y[off*per : (off+r.n)*per]}
		off += r.n
	}
}

func (b *batcher) runSession(ctx context.Context, x []float32, n int) ([]float32, error) {
	// The batch outlives any one caller: run it on the server's context.
	ctx = context.WithoutCancel(ctx)
	lease, err := b.in.sessions.Get(ctx, b.id, func(ctx context.Context) ([]byte, error) { return b.in.files.modelFile(ctx, b.id) })
	if err != nil {
		return nil, err
	}
	defer lease.Release()
	if lease.Built > 0 {
		b.in.metrics.sessionLoads.Observe(lease.Built.Seconds())
		b.in.log.Info("inference session loaded", "model", b.id, "ms", lease.Built.Milliseconds())
	}
	r := int64(b.res)
	start := time.Now()
	y, _, err := lease.Session.Run(ctx, x, []int64{int64(n), 3, r, r})
	b.in.metrics.computeSeconds.Observe(time.Since(start).Seconds())
	return y, err
}

// buffers recycles the two large per-request allocations of inference (the body and the
// decoded tensor, a few hundred KB each). Fresh ones cost more than decoding them: the
// kernel maps and zeroes new pages on first touch, which profiled as a quarter of the
// gateway's CPU time at batch 1.
type buffers struct{ bytes, floats sync.Pool }

func (b *buffers) getBytes(n int) []byte {
	if v, ok := b.bytes.Get().(*[]byte); ok && cap(*v) >= n {
		return (*v)[:n]
	}
	return make([]byte, n)
}

func (b *buffers) putBytes(v []byte) { b.bytes.Put(&v) }

func (b *buffers) getFloats(n int) []float32 {
	if v, ok := b.floats.Get().(*[]float32); ok && cap(*v) >= n {
		return (*v)[:0]
	}
	return make([]float32, 0, n)
}

func (b *buffers) putFloats(v []float32) { b.floats.Put(&v) }
