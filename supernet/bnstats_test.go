package supernet

import (
	"context"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// randomBatches yields count seeded random batches of batch images at resolution r.
func randomBatches(count, batch, r int, seed uint64) Batches {
	return func(ctx context.Context, fn func(x []float32, batch, h, w int) error) error {
		rng := rand.New(rand.NewPCG(seed, 7))
		for range count {
			x := make([]float32, batch*3*r*r)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			if err := fn(x, batch, r, r); err != nil {
				return err
			}
		}
		return nil
	}
}

func smallSubnet(t *testing.T, seed uint64) (*Supernet, Arch) {
	t.Helper()
	spec := OFAMobileNetV3(1.0, 10)
	sn, err := Random(spec, seed)
	if err != nil {
		t.Fatal(err)
	}
	a := spec.Uniform(5, 4, 3, 64)
	return sn, a
}

// A subnet given another's recalibrated statistics runs exactly as that one does.
func TestSetBNStatsReproducesRecalibration(t *testing.T) {
	sn, a := smallSubnet(t, 3)
	cal, err := sn.Extract(a)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := cal.BNStats()
	if err := cal.Recalibrate(context.Background(), randomBatches(2, 5, a.R, 1)); err != nil {
		t.Fatal(err)
	}
	mean, variance := cal.BNStats()
	if len(mean) != cal.BNChannels() || reflect.DeepEqual(mean, before) {
		t.Fatalf("statistics: %d channels (want %d), changed by recalibration: %v", len(mean), cal.BNChannels(), !reflect.DeepEqual(mean, before))
	}
	fresh, _ := sn.Extract(a)
	if err := fresh.SetBNStats(mean, variance); err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 2*3*a.R*a.R)
	for i := range x {
		x[i] = float32(i%17) / 9
	}
	y1, err := cal.Compile().Forward(context.Background(), x, 2, a.R, a.R)
	if err != nil {
		t.Fatal(err)
	}
	y2, _ := fresh.Compile().Forward(context.Background(), x, 2, a.R, a.R)
	if !reflect.DeepEqual(y1, y2) {
		t.Fatal("a subnet given stored statistics computes other logits than the recalibrated one")
	}
	if err := fresh.SetBNStats(mean[1:], variance); err == nil {
		t.Fatal("statistics of the wrong length accepted")
	}
}

// Recalibration gives the same statistics on one core as on several.
func TestRecalibrateOnIndependentOfWorkers(t *testing.T) {
	sn, a := smallSubnet(t, 4)
	var got [][]float32
	for _, w := range []int{1, 2, 3} {
		sub, _ := sn.Extract(a)
		if err := sub.RecalibrateOn(context.Background(), randomBatches(2, 6, a.R, 2), w); err != nil {
			t.Fatal(err)
		}
		m, v := sub.BNStats()
		got = append(got, append(m, v...))
	}
	if !reflect.DeepEqual(got[0], got[1]) || !reflect.DeepEqual(got[0], got[2]) {
		t.Fatal("recalibration on 1, 2 and 3 workers gave different statistics")
	}
}

// channelMoments is ChannelMoments bit for bit, whatever the channel count, the lanes'
// remainder and the workers.
func TestChannelMomentsMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, sh := range [][3]int{{1, 1, 1}, {2, 7, 5}, {3, 8, 49}, {4, 21, 100}, {2, 64, 1}, {5, 37, 64}, {2, 37, 4096}} {
		n, c, hw := sh[0], sh[1], sh[2]
		y := make([]float32, n*c*hw)
		for i := range y {
			y[i] = float32(rng.NormFloat64()*3 + 1e3*float64(i%3))
		}
		for _, w := range []int{1, 2, 4} {
			mean, vari := make([]float64, c), make([]float64, c)
			channelMoments(y, n, c, hw, mean, vari, w)
			for ch := range c {
				m, v := ChannelMoments(y, n, c, hw, ch)
				if m != mean[ch] || v != vari[ch] {
					t.Fatalf("shape %v, %d workers, channel %d: (%v, %v), reference (%v, %v)", sh, w, ch, mean[ch], vari[ch], m, v)
				}
			}
		}
	}
}

// An image's logits depend on the batch it runs in and on the cores only by float32
// rounding (BLAS kernels sum edge rows in another order): a measurement may pick its batch
// for memory, at the price of an argmax flip at rounding level, never more.
func TestLogitsBatchRoundingOnly(t *testing.T) {
	sn, a := smallSubnet(t, 5)
	sub, _ := sn.Extract(a)
	if err := sub.Recalibrate(context.Background(), randomBatches(1, 4, a.R, 3)); err != nil {
		t.Fatal(err)
	}
	r, n := a.R, 12
	x := make([]float32, n*3*r*r)
	for i := range x {
		x[i] = float32((i*37)%101) / 50
	}
	img := 3 * r * r
	whole, err := sub.Compile().Forward(context.Background(), x, n, r, r)
	if err != nil {
		t.Fatal(err)
	}
	classes := len(whole) / n
	for _, workers := range []int{1, 2} {
		net := sub.CompileOn(workers)
		for _, b := range []int{5, 4, 1} {
			var got []float32
			for lo := 0; lo < n; lo += b {
				hi := min(lo+b, n)
				y, err := net.Forward(context.Background(), x[lo*img:hi*img], hi-lo, r, r)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, y...)
			}
			worst := 0.0
			for i := range got {
				worst = max(worst, math.Abs(float64(got[i]-whole[i]))/(1+math.Abs(float64(whole[i]))))
			}
			if worst > 1e-5 {
				t.Fatalf("batches of %d on %d workers: logits differ by %.3g (relative) from one batch of %d (%d classes)", b, workers, worst, n, classes)
			}
		}
	}
}

// The version digest covers every tensor's bits and nothing else.
func TestDigest(t *testing.T) {
	sn, _ := smallSubnet(t, 6)
	d := sn.Digest()
	sn.Meta["note"] = "metadata is not weights"
	if sn.Digest() != d {
		t.Fatal("metadata changed the digest")
	}
	p := sn.Params()[len(sn.Params())-1]
	p.Data[0] += 1e-6
	if sn.Digest() == d {
		t.Fatal("a changed tensor kept the digest")
	}
	sn.Meta[MetaID] = "x"
	sn.StampVersion()
	if sn.Version() != "x@"+sn.Digest() {
		t.Fatalf("version %q", sn.Version())
	}
}
