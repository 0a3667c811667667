package trainer

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
)

// Sampler draws the elastic part (ks, e, d) of the random subnets of each step; NAT's
// loop supplies one that follows its archive's distribution. R is ignored: training runs
// at the data's resolution.
type Sampler interface {
	Sample(rng *rand.Rand) supernet.Arch
}

// UniformSampler draws every kernel size, expand ratio and depth uniformly.
type UniformSampler struct{ Spec *supernet.Spec }

// Sample implements Sampler.
func (u UniformSampler) Sample(r *rand.Rand) supernet.Arch {
	s := u.Spec
	nb := s.NumBlocks()
	a := supernet.Arch{KS: make([]int, nb), E: make([]int, nb), D: make([]int, len(s.Stages)), R: s.Resolutions[0]}
	for b := range nb {
		a.KS[b] = s.Kernels[r.IntN(len(s.Kernels))]
		a.E[b] = s.Expands[r.IntN(len(s.Expands))]
	}
	for i, st := range s.Stages {
		a.D[i] = st.Depths[r.IntN(len(st.Depths))]
	}
	return a
}

// Config sets up training. Zero values are taken literally except where noted;
// DefaultConfig gives OFA-like values.
type Config struct {
	Batch      int // images per step (required)
	Resolution int // input size of validation and of training batches that carry none (required); a loader with Resolutions sizes each batch itself
	Epochs     int // passes over the training data (Fit)
	MaxSteps   int // stop after this many steps in all; 0 = Epochs' worth
	Subnets    int // random subnets per step besides the largest and the smallest

	LR             float64 // peak learning rate, reached after WarmupSteps
	WarmupSteps    int     // linear warm-up from 0, then cosine decay to 0 at the last step
	Momentum       float64
	Nesterov       bool
	WeightDecay    float64 // not on names containing "bn" or "bias"
	LabelSmoothing float64
	KDRatio        float64 // weight of the distillation loss from the largest subnet's soft targets

	Seed    uint64
	Sampler Sampler // nil = UniformSampler
	// Elastic, if set, limits the sandwich to these dimensions: the smallest subnet and every
	// sampled one keep the others at their largest choice. Progressive shrinking runs
	// {Kernel}, then {Kernel, Depth}, then all three. nil = all elastic.
	Elastic *supernet.Dims
	// Teacher, if set, gives the soft targets of every subnet (the largest included) instead
	// of the largest subnet's own softmax: logits [n,k] of a frozen network for the batch x
	// [n,3,r,r]. OFA distils from the full pretrained network this way.
	Teacher func(ctx context.Context, x []float32, n, r int) ([]float32, error)
	// Top, if set, takes the largest subnet's place at the top of the sandwich: trained on
	// the hard labels every step and, without a Teacher, the source of the others' soft
	// targets. Adapting an imported network, its own arch is the natural top: the pretrained
	// weights are exactly that subnet. nil = the space's largest.
	Top *supernet.Arch
	// TopSizes, if set, also trains the top subnet (Top or the largest) at each of these
	// input sizes every step, on the batch resized bilinearly, besides the batch's own size.
	// With elastic-resolution batches each size otherwise gets only its share of the steps,
	// while a network fine-tuned at one size gets them all.
	TopSizes []int
	// TopKD, with TopSizes, makes the top at its largest size (of TopSizes and the batch's)
	// the teacher: it trains first, on the hard labels, and its softmax is the soft target
	// of every other pass, the top at its smaller sizes included. A size then learns from
	// the same weights seen sharper, which the hard labels alone (10 images a class on
	// Flowers) do not give it. Excludes Teacher.
	TopKD bool
	// TopKDWeight, under TopKD, weighs the top's pass at its largest size (its hard labels):
	// every other pass's target is the labels plus KDRatio times the soft target, so 1 +
	// KDRatio gives the teacher's own size as large a share of the gradient as each of the
	// others. 0 = 1.
	TopKDWeight float64
	// Fixed, if set, trains only this subnet: conventional fine-tuning of one fixed
	// architecture (no sandwich, no distillation), the baseline NAT is compared with.
	Fixed *supernet.Arch
	// Trainable, if set, limits the update to the tensors it accepts (e.g. only the
	// classifier: a linear probe on frozen features); nil trains every tensor.
	Trainable func(name string) bool

	ValEvery        int // validate every this many steps (and at the end); 0 = only at the end
	CheckpointEvery int // write the resumable state every this many steps; 0 = only at the end
	Checkpoint      string
	Progress        io.Writer // progress lines (stderr); nil = none
	// OnStep, if set, is called after every training step with the step number (1-based,
	// counting resumed ones), the run's total and the step's loss.
	OnStep        func(step, total int, loss float64)
	ProgressEvery time.Duration // 0 = 10s
	GraphCache    int           // compiled subnet graphs kept (0 = 12: the largest and smallest at three resolutions, and others)
}

// DefaultConfig returns OFA's training hyper-parameters (fine-tuning learning rate).
func DefaultConfig() Config {
	return Config{Subnets: 2, LR: 0.025, Momentum: 0.9, Nesterov: true, WeightDecay: 3e-5,
		LabelSmoothing: 0.1, KDRatio: 1, Seed: 1}
}

func (c *Config) validate() error {
	switch {
	case c.Batch < 1:
		return fmt.Errorf("batch %d < 1", c.Batch)
	case c.Resolution < 8:
		return fmt.Errorf("resolution %d < 8", c.Resolution)
	case c.Subnets < 0, c.Epochs < 0, c.MaxSteps < 0, c.WarmupSteps < 0:
		return errors.New("negative subnets, epochs, steps or warm-up")
	case !(c.LR >= 0) || !(c.Momentum >= 0 && c.Momentum < 1) || !(c.WeightDecay >= 0):
		return errors.New("lr, momentum or weight decay out of range")
	case !(c.LabelSmoothing >= 0 && c.LabelSmoothing < 1) || !(c.KDRatio >= 0):
		return errors.New("label smoothing or kd ratio out of range")
	case len(c.TopSizes) > 0 && c.Fixed != nil:
		return errors.New("a fixed subnet has no sandwich: top sizes and fixed exclude each other")
	case c.TopKD && len(c.TopSizes) == 0:
		return errors.New("top kd distils from the top at its largest size: it needs top sizes")
	case c.TopKD && c.Teacher != nil:
		return errors.New("top kd and a teacher both give the soft targets: they exclude each other")
	case !(c.TopKDWeight >= 0):
		return errors.New("top kd weight out of range")
	case c.TopKDWeight != 0 && !c.TopKD:
		return errors.New("top kd weight weighs the top kd pass: it needs top kd")
	}
	for _, r := range c.TopSizes {
		if r < 8 {
			return fmt.Errorf("top size %d < 8", r)
		}
	}
	return nil
}

// Trainer trains one supernet in place.
type Trainer struct {
	cfg    Config
	sn     *supernet.Supernet
	m      *model
	opt    *SGD
	pcg    *rand.PCG
	rng    *rand.Rand
	step   int
	graphs graphCache
}

// New prepares sn for training; the trainer updates sn's tensors in place.
func New(sn *supernet.Supernet, cfg Config) (*Trainer, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("trainer: %w", err)
	}
	if cfg.Sampler == nil {
		cfg.Sampler = UniformSampler{Spec: sn.Spec}
	}
	if cfg.Fixed != nil {
		if err := sn.Spec.ValidateArch(*cfg.Fixed); err != nil {
			return nil, fmt.Errorf("trainer: fixed subnet: %w", err)
		}
		if cfg.Top != nil {
			return nil, errors.New("trainer: a fixed subnet has no sandwich: top and fixed exclude each other")
		}
	}
	if cfg.Top != nil {
		if err := sn.Spec.ValidateArch(*cfg.Top); err != nil {
			return nil, fmt.Errorf("trainer: top subnet: %w", err)
		}
	}
	if cfg.GraphCache <= 0 {
		cfg.GraphCache = 12
	}
	t := &Trainer{cfg: cfg, sn: sn, opt: &SGD{Momentum: cfg.Momentum, Nesterov: cfg.Nesterov, WeightDecay: cfg.WeightDecay}}
	t.pcg = rand.NewPCG(cfg.Seed, cfg.Seed^0x7a1e5eed)
	t.rng = rand.New(t.pcg)
	t.m = newModel(sn, t.rng.Float64)
	t.graphs = graphCache{max: cfg.GraphCache, byKey: map[string]*list.Element{}}
	return t, nil
}

// StepCount is the number of optimizer steps taken (restored by Resume).
func (t *Trainer) StepCount() int { return t.step }

// Supernet is the supernet being trained.
func (t *Trainer) Supernet() *supernet.Supernet { return t.sn }

// LR is the learning rate of step s (0-based) out of total: linear warm-up, then cosine.
func (c *Config) lrAt(s, total int) float64 {
	if s < c.WarmupSteps {
		return c.LR * float64(s+1) / float64(c.WarmupSteps)
	}
	span := total - c.WarmupSteps
	if span <= 0 {
		return c.LR
	}
	return 0.5 * c.LR * (1 + math.Cos(math.Pi*float64(s-c.WarmupSteps)/float64(span)))
}

// graphCache keeps compiled graphs of recently trained subnets (the largest and the
// smallest recur every step).
type graphCache struct {
	max   int
	order list.List // front = most recent; values *cachedGraph
	byKey map[string]*list.Element
}

type cachedGraph struct {
	key string
	g   *subnetGraph
}

func (t *Trainer) graph(a supernet.Arch, n, r int) (*subnetGraph, error) {
	s := t.sn.Spec
	a.R = s.Resolutions[0]
	if err := validArch(s, a); err != nil {
		return nil, err
	}
	c, err := s.Canonical(a)
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("%s/%d/%d", c.JSON(), n, r)
	gc := &t.graphs
	if e, ok := gc.byKey[key]; ok {
		gc.order.MoveToFront(e)
		return e.Value.(*cachedGraph).g, nil
	}
	g, err := t.m.build(c, n, r)
	if err != nil {
		return nil, err
	}
	gc.byKey[key] = gc.order.PushFront(&cachedGraph{key: key, g: g})
	for gc.order.Len() > gc.max {
		e := gc.order.Back()
		gc.order.Remove(e)
		delete(gc.byKey, e.Value.(*cachedGraph).key)
	}
	return g, nil
}

// StepResult summarises one sandwich step.
type StepResult struct {
	Loss         float64 // mean loss over the step's subnets (each with its distillation term), at the batch's size
	LargestLoss  float64 // the top subnet's loss at the batch's size (the largest, or Config.Top; label-smoothed cross-entropy, plus the distillation term under TopKD, or weighed by TopKDWeight where it is TopKD's teacher)
	LargestAcc   float64 // top-1 accuracy of the top subnet on the batch
	Subnets      int     // forward and backward passes run, the top's at Config.TopSizes included
	LearningRate float64
}

// Step runs one sandwich step on a batch x [n,3,r,r] with integer labels: forward and
// backward of the largest subnet, or cfg.Top (its softmax becomes the soft target of the others),
// the smallest and cfg.Subnets sampled ones, gradients summed, then one SGD update at
// learning rate lr.
func (t *Trainer) Step(ctx context.Context, x []float32, r int, labels []int, lr float64) (StepResult, error) {
	s := t.sn.Spec
	n, k := len(labels), s.Classes
	if n == 0 || r < 1 || len(x) != n*3*r*r {
		return StepResult{}, fmt.Errorf("trainer: batch of %d labels with %d values, want %d", n, len(x), n*3*r*r)
	}
	top := s.Largest()
	if t.cfg.Top != nil {
		top = *t.cfg.Top
	}
	archs := []supernet.Arch{top, t.smallest()}
	if t.cfg.Fixed != nil {
		archs = []supernet.Arch{*t.cfg.Fixed}
	} else {
		for range t.cfg.Subnets {
			a := t.cfg.Sampler.Sample(t.rng)
			if t.cfg.Elastic != nil {
				a = s.Pin(a, *t.cfg.Elastic)
			}
			archs = append(archs, a)
		}
	}
	hard := make([]float32, n*k)
	eps := float32(t.cfg.LabelSmoothing)
	for i, l := range labels {
		if l < 0 || l >= k {
			return StepResult{}, fmt.Errorf("trainer: label %d outside [0,%d)", l, k)
		}
		row := hard[i*k : (i+1)*k]
		for j := range row {
			row[j] = eps / float32(k)
		}
		row[l] += 1 - eps
	}
	logits := make([]float32, n*k)
	target := make([]float32, n*k)
	var teacher []float32
	if t.cfg.Teacher != nil && t.cfg.KDRatio > 0 {
		z, err := t.cfg.Teacher(ctx, x, n, r)
		if err != nil {
			return StepResult{}, fmt.Errorf("trainer: teacher: %w", err)
		}
		if len(z) != n*k {
			return StepResult{}, fmt.Errorf("trainer: teacher gave %d logits, want %d×%d", len(z), n, k)
		}
		teacher = softmax(z, k)
	}
	res := StepResult{Subnets: len(archs), LearningRate: lr}
	done := map[int]bool{r: true} // sizes the top has trained at this step
	// TopKD implies TopSizes (validate), and so no Fixed subnet. kdTop: the top at the
	// batch's size is TopKD's teacher (the batch is at its largest size).
	kdTop := false
	if t.cfg.TopKD && t.cfg.KDRatio > 0 {
		rt := slices.Max(append([]int{r}, t.cfg.TopSizes...))
		kdTop = rt == r
		if !kdTop {
			z := make([]float32, n*k)
			if err := t.topAt(ctx, top, x, n, r, rt, t.topKDTarget(hard), z); err != nil {
				return res, err
			}
			done[rt] = true
			res.Subnets++
			teacher = softmax(z, k)
		}
	}
	for i, a := range archs {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		g, err := t.graph(a, n, r)
		if err != nil {
			return res, fmt.Errorf("trainer: subnet %d: %w", i, err)
		}
		src := hard
		if i == 0 && kdTop {
			src = t.topKDTarget(hard)
		}
		copy(target, src)
		if teacher != nil {
			kd := float32(t.cfg.KDRatio)
			for j, v := range teacher {
				target[j] += kd * v
			}
		}
		loss, err := g.run(x, target, logits)
		if err != nil {
			return res, fmt.Errorf("trainer: subnet %d %s (batch %d × %d px): %w", i, a.JSON(), n, r, err)
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return res, fmt.Errorf("trainer: step %d: loss is %v", t.step, loss)
		}
		res.Loss += loss / float64(len(archs))
		if i == 0 {
			res.LargestLoss = loss
			res.LargestAcc = accuracy(logits, labels, k)
			if t.cfg.KDRatio > 0 && len(archs) > 1 && teacher == nil {
				teacher = softmax(logits, k)
			}
		}
	}
	if t.cfg.Fixed == nil && len(t.cfg.TopSizes) > 0 {
		// The top at its other sizes, on the target it had at the batch's size: the hard
		// labels, plus soft targets from a frozen Teacher or, with TopKD, from the top at
		// its largest size. Its own softmax at the batch's size is not one of them.
		copy(target, hard)
		if (t.cfg.Teacher != nil || t.cfg.TopKD) && teacher != nil {
			kd := float32(t.cfg.KDRatio)
			for j, v := range teacher {
				target[j] += kd * v
			}
		}
		for _, r2 := range t.cfg.TopSizes {
			if done[r2] {
				continue
			}
			done[r2] = true
			if err := t.topAt(ctx, top, x, n, r, r2, target, nil); err != nil {
				return res, err
			}
			res.Subnets++
		}
	}
	if t.cfg.Trainable != nil {
		for _, p := range t.m.params {
			if p.present && !t.cfg.Trainable(p.name) {
				clear(p.grad)
				p.present = false // no update this step
			}
		}
	}
	t.opt.step(t.m.params, lr)
	t.m.zeroGrad()
	t.step++
	return res, nil
}

// topKDTarget is the target of TopKD's teacher pass: the hard labels weighed by
// TopKDWeight (0 = 1).
func (t *Trainer) topKDTarget(hard []float32) []float32 {
	w := float32(t.cfg.TopKDWeight)
	if w == 0 || w == 1 {
		return hard
	}
	out := make([]float32, len(hard))
	for j, v := range hard {
		out[j] = w * v
	}
	return out
}

// topAt trains the top subnet once on the batch x [n,3,r,r] resized to r2 px, against
// target; logits, if not nil, gets its output.
func (t *Trainer) topAt(ctx context.Context, top supernet.Arch, x []float32, n, r, r2 int, target, logits []float32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	g, err := t.graph(top, n, r2)
	if err != nil {
		return fmt.Errorf("trainer: top at %d px: %w", r2, err)
	}
	x2 := make([]float32, n*3*r2*r2)
	if err := preprocess.ResizePlanes(x, n*3, r, r2, x2); err != nil {
		return fmt.Errorf("trainer: top at %d px: %w", r2, err)
	}
	loss, err := g.run(x2, target, logits)
	if err != nil {
		return fmt.Errorf("trainer: top %s (batch %d × %d px): %w", top.JSON(), n, r2, err)
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return fmt.Errorf("trainer: step %d: loss at %d px is %v", t.step, r2, loss)
	}
	return nil
}

// smallest is the sandwich's smallest subnet within the elastic dimensions.
func (t *Trainer) smallest() supernet.Arch {
	if t.cfg.Elastic != nil {
		return t.sn.Spec.SmallestIn(*t.cfg.Elastic)
	}
	return t.sn.Spec.Smallest()
}

func softmax(z []float32, k int) []float32 {
	out := make([]float32, len(z))
	for i := 0; i < len(z); i += k {
		row := z[i : i+k]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, float64(v))
		}
		var s float64
		for _, v := range row {
			s += math.Exp(float64(v) - m)
		}
		for j, v := range row {
			out[i+j] = float32(math.Exp(float64(v)-m) / s)
		}
	}
	return out
}

func accuracy(logits []float32, labels []int, k int) float64 {
	hit := 0
	for i, l := range labels {
		best := 0
		for j := 1; j < k; j++ {
			if logits[i*k+j] > logits[i*k+best] {
				best = j
			}
		}
		if best == l {
			hit++
		}
	}
	return float64(hit) / float64(len(labels))
}
