package dataset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/natgw/natgw/preprocess"
)

// Config configures a Loader.
type Config struct {
	Set          *Set
	Spec         preprocess.Spec // resolution, crop and mean/std; eval batches use Spec.Tensor
	Batch        int
	Shuffle      bool
	Seed         uint64
	Augment      *Augment // nil = eval preprocessing
	Workers      int      // decoding goroutines; 0 = GOMAXPROCS
	DropLast     bool     // drop the final short batch
	CacheDecoded bool     // keep decoded images in memory (about 3·W·H bytes each)
	Limits       preprocess.Limits
	Logger       *slog.Logger // nil = slog.Default()
	// Resolutions, when set (training batches only, with Augment), renders each batch at
	// one of these sizes instead of Spec.Resolution, drawn uniformly per (Seed, epoch,
	// batch): elastic-resolution training, so that subnets served at 96 px see 96-px
	// images in training. Repeats weight a size.
	Resolutions []int
}

// Batch is one batch. X and the slices are reused after fn returns: copy
// what must outlive the call.
type Batch struct {
	X      []float32 // [N,3,R,R]
	Labels []int
	N      int
	R      int // the batch's resolution
	Paths  []string
}

// Loader produces batches from a Set.
type Loader struct {
	cfg     Config
	aug     Augment
	log     *slog.Logger
	cache   []atomic.Pointer[decoded] // per item, when CacheDecoded
	skipped atomic.Int64
}

type decoded struct {
	img *preprocess.RGB
	err error
}

// prefetch is how many batches may be in preparation or in use at once.
const prefetch = 2

// NewLoader checks cfg and builds a Loader.
func NewLoader(cfg Config) (*Loader, error) {
	if cfg.Set == nil || len(cfg.Set.Items) == 0 {
		return nil, errors.New("dataset: loader needs a non-empty Set")
	}
	if err := cfg.Spec.Validate(); err != nil {
		return nil, fmt.Errorf("dataset: loader: %w", err)
	}
	if cfg.Batch < 1 {
		return nil, fmt.Errorf("dataset: batch size %d < 1", cfg.Batch)
	}
	if cfg.Workers < 0 {
		return nil, fmt.Errorf("dataset: workers %d < 0", cfg.Workers)
	}
	if cfg.Workers == 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if len(cfg.Resolutions) > 0 && cfg.Augment == nil {
		return nil, errors.New("dataset: Resolutions are for augmented training batches only")
	}
	for _, r := range cfg.Resolutions {
		if r < 1 || r > preprocess.MaxResolution {
			return nil, fmt.Errorf("dataset: resolution %d outside [1, %d]", r, preprocess.MaxResolution)
		}
	}
	l := &Loader{cfg: cfg, log: cfg.Logger}
	if l.log == nil {
		l.log = slog.Default()
	}
	if cfg.Augment != nil {
		l.aug = cfg.Augment.withDefaults()
		if err := l.aug.validate(); err != nil {
			return nil, fmt.Errorf("dataset: augment: %w", err)
		}
	}
	if cfg.CacheDecoded {
		l.cache = make([]atomic.Pointer[decoded], len(cfg.Set.Items))
	}
	return l, nil
}

// Skipped is the number of item loads skipped because the file could not be
// read or decoded, over the loader's life (a bad file counts once per epoch).
func (l *Loader) Skipped() int64 { return l.skipped.Load() }

// NumBatches is the number of batches one epoch delivers (fewer items may
// arrive if files are skipped, never more batches).
func (l *Loader) NumBatches() int {
	n, b := len(l.cfg.Set.Items), l.cfg.Batch
	if l.cfg.DropLast {
		return n / b
	}
	return (n + b - 1) / b
}

// splitmix64 scrambles seeds so nearby (epoch, index) pairs give unrelated streams.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// order is the item order of an epoch: a seeded shuffle or the Set's order.
func (l *Loader) order(epoch int) []int {
	n := len(l.cfg.Set.Items)
	if !l.cfg.Shuffle {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	r := rand.New(rand.NewPCG(l.cfg.Seed, splitmix64(uint64(epoch)^0x5117ff1e)))
	return r.Perm(n)
}

// batchRes is the resolution of batch bi of an epoch.
func (l *Loader) batchRes(epoch, bi int) int {
	rs := l.cfg.Resolutions
	if len(rs) == 0 {
		return l.cfg.Spec.Resolution
	}
	h := splitmix64(l.cfg.Seed ^ splitmix64(uint64(epoch)<<32|uint64(bi)) ^ 0x7e5017)
	return rs[h%uint64(len(rs))]
}

// maxRes is the largest resolution a batch can have.
func (l *Loader) maxRes() int {
	return max(l.cfg.Spec.Resolution, slices.Max(append([]int{0}, l.cfg.Resolutions...)))
}

// itemRand is the generator for one item's augmentation in one epoch.
func (l *Loader) itemRand(epoch, item int) *rand.Rand {
	return rand.New(rand.NewPCG(splitmix64(l.cfg.Seed^splitmix64(uint64(epoch))), splitmix64(uint64(item))))
}

func (l *Loader) image(item int) (*preprocess.RGB, error) {
	if l.cache != nil {
		if d := l.cache[item].Load(); d != nil {
			return d.img, d.err
		}
	}
	img, err := l.decode(l.cfg.Set.Items[item].Path)
	if l.cache != nil {
		l.cache[item].Store(&decoded{img, err})
	}
	return img, err
}

func (l *Loader) decode(path string) (*preprocess.RGB, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return l.cfg.Spec.Decode(f, l.cfg.Limits)
}

// load writes item's tensor into dst; false means it was skipped.
func (l *Loader) load(epoch, item, res int, dst []float32) bool {
	path := l.cfg.Set.Items[item].Path
	img, err := l.image(item)
	if err == nil {
		err = l.transform(epoch, item, res, img, dst)
	}
	if err != nil {
		l.skipped.Add(1)
		l.log.Warn("dataset: skipping image", "path", path, "err", err)
		return false
	}
	return true
}

func (l *Loader) transform(epoch, item, res int, img *preprocess.RGB, dst []float32) error {
	spec := l.cfg.Spec
	if l.cfg.Augment == nil {
		return spec.Tensor(img, dst)
	}
	r := l.itemRand(epoch, item)
	spec.Resolution = res
	if l.aug.RandomResizedCrop {
		box := l.aug.cropBox(r, img.W, img.H)
		if err := preprocess.ResizeRegion(img, box, res, res, dst); err != nil {
			return err
		}
	} else if err := spec.Resample(img, dst); err != nil {
		return err
	}
	if l.aug.HFlip && r.IntN(2) == 1 {
		flipH(dst, res)
	}
	if l.aug.ColorJitter > 0 {
		jitter(r, dst, l.aug.ColorJitter)
	}
	spec.Normalize(dst)
	return nil
}

// batchBuf holds one batch while workers fill it.
type batchBuf struct {
	x     []float32
	r     int // resolution
	items []int
	ok    []bool
	wg    sync.WaitGroup
	out   Batch
}

type job struct {
	buf  *batchBuf
	slot int
}

// Epoch delivers one pass over the set to fn, batch by batch, in order. Items
// are decoded on Config.Workers goroutines; a batch's content depends only on
// (Seed, epoch) and the Config, not on Workers. It stops at the first error
// from fn (returned as is) or when ctx is cancelled (ctx.Err()).
func (l *Loader) Epoch(ctx context.Context, epoch int, fn func(b Batch) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	order := l.order(epoch)
	nb := l.NumBatches()
	if nb == 0 {
		return nil
	}
	maxStride := 3 * l.maxRes() * l.maxRes()
	bs := l.cfg.Batch

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan job, bs)
	free := make(chan *batchBuf, prefetch)
	ready := make(chan *batchBuf, prefetch)
	for range prefetch {
		free <- &batchBuf{x: make([]float32, bs*maxStride), ok: make([]bool, bs)}
	}

	var workers sync.WaitGroup
	for range l.cfg.Workers {
		workers.Go(func() {
			for j := range jobs {
				b := j.buf
				stride := 3 * b.r * b.r
				b.ok[j.slot] = ctx.Err() == nil && l.load(epoch, b.items[j.slot], b.r, b.x[j.slot*stride:(j.slot+1)*stride])
				b.wg.Done()
			}
		})
	}
	// The feeder hands out batches in order; workers take jobs FIFO, so
	// batches finish roughly in order while the consumer runs fn.
	var feeder sync.WaitGroup
	feeder.Go(func() {
		defer close(ready)
		defer close(jobs)
		for bi := range nb {
			var b *batchBuf
			select {
			case b = <-free:
			case <-ctx.Done():
				return
			}
			lo, hi := bi*bs, min((bi+1)*bs, len(order))
			b.items = order[lo:hi]
			b.r = l.batchRes(epoch, bi)
			b.wg.Add(len(b.items))
			for slot := range b.items {
				select {
				case jobs <- job{b, slot}:
				case <-ctx.Done():
					return // b is abandoned; nobody waits on it
				}
			}
			select {
			case ready <- b:
			case <-ctx.Done():
				return
			}
		}
	})

	var fnErr error
	delivered := 0
	for b := range ready {
		b.wg.Wait()
		if ctx.Err() != nil {
			break
		}
		// A batch whose every file was skipped is not passed on.
		if batch := l.compact(b); batch.N > 0 {
			if err := fn(batch); err != nil {
				fnErr = err
				break
			}
		}
		delivered++
		free <- b // capacity prefetch: never blocks
	}
	cancel()
	for range ready { // let the feeder finish
	}
	feeder.Wait()
	workers.Wait()
	switch {
	case fnErr != nil:
		return fnErr
	case delivered == nb:
		return nil
	case parent.Err() != nil:
		return parent.Err()
	}
	return fmt.Errorf("dataset: epoch %d stopped after %d of %d batches", epoch, delivered, nb)
}

// compact moves the loaded items to the front and fills b.out.
func (l *Loader) compact(b *batchBuf) Batch {
	stride := 3 * b.r * b.r
	items := l.cfg.Set.Items
	out := &b.out
	out.Labels, out.Paths = out.Labels[:0], out.Paths[:0]
	n := 0
	for slot, it := range b.items {
		if !b.ok[slot] {
			continue
		}
		if n != slot {
			copy(b.x[n*stride:(n+1)*stride], b.x[slot*stride:(slot+1)*stride])
		}
		out.Labels = append(out.Labels, items[it].Label)
		out.Paths = append(out.Paths, items[it].Path)
		n++
	}
	out.N, out.R = n, b.r
	out.X = b.x[:n*stride]
	return *out
}
