package supernet

import "fmt"

// BatchNorms returns the subnet's BatchNorm layers in network order: the stem's, then each
// block's expand, depthwise and project ones, then the final expand's and the feature
// mix's. BNStats and SetBNStats use this order.
func (n *Subnet) BatchNorms() []*BatchNorm {
	var out []*BatchNorm
	add := func(l *ConvLayer) {
		if l != nil && l.BN != nil {
			out = append(out, l.BN)
		}
	}
	add(&n.Stem)
	for i := range n.Blocks {
		b := &n.Blocks[i]
		add(b.Expand)
		add(&b.Depthwise)
		add(&b.Project)
	}
	add(n.FinalExpand)
	add(n.FeatureMix)
	return out
}

// BNChannels is the length of the vectors BNStats returns.
func (n *Subnet) BNChannels() int {
	c := 0
	for _, bn := range n.BatchNorms() {
		c += len(bn.Mean)
	}
	return c
}

// BNStats returns every BatchNorm's running mean and variance, concatenated in
// BatchNorms order: what Recalibrate computes, and all that distinguishes a recalibrated
// subnet from the one Extract gives.
func (n *Subnet) BNStats() (mean, variance []float32) {
	for _, bn := range n.BatchNorms() {
		mean = append(mean, bn.Mean...)
		variance = append(variance, bn.Var...)
	}
	return mean, variance
}

// SetBNStats replaces every BatchNorm's running statistics with vectors in BNStats's
// layout (copied), so that a subnet extracted again takes the statistics a recalibration
// gave without running it.
func (n *Subnet) SetBNStats(mean, variance []float32) error {
	want := n.BNChannels()
	if len(mean) != want || len(variance) != want {
		return fmt.Errorf("batchnorm statistics: %d means and %d variances, the subnet has %d channels", len(mean), len(variance), want)
	}
	off := 0
	for _, bn := range n.BatchNorms() {
		c := len(bn.Mean)
		copy(bn.Mean, mean[off:off+c])
		copy(bn.Var, variance[off:off+c])
		off += c
	}
	return nil
}
