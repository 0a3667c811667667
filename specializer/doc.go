// Package specializer turns a task's supernet into a set of measured subnets and answers
// cost budgets from it, following Neural Architecture Transfer (Lu et al., "Neural
// Architecture Transfer", TPAMI 2021) and NSGANetV2 (Lu et al., ECCV 2020).
//
// Measuring: a SubnetEvaluator extracts a subnet, recalibrates its BatchNorm statistics on
// a fixed seeded sample of the train split (OFA's set_running_statistics) and measures
// top-1 on the whole val split with the CPU forward. It opens only the train and val
// splits — any other name, above all "test", is refused with ErrSplitRefused — so no
// selection can see test images. Images are decoded once and their tensors cached per
// resolution; results are cached by canonical arch hash, in memory and through the
// archive.
//
// Searching: Search runs NAT's loop. It measures an initial sample (the smallest and the
// largest subnet, then uniform-random archs), and then, per iteration, fits accuracy
// surrogates on Features of the measured archs with adaptive switching
// (surrogate.Select, by cross-validated Kendall tau), runs NSGA-II (package nsga2) on the
// surrogate over the integer encoding of supernet.Spec.Encode — a Repair hook keeps
// depths valid through a Decode/Encode round trip — and measures PerIteration new archs
// spread along the predicted front (nsga2.PickSpread). Costs (MAdds, params) come from
// Layers/CountArch, which match supernet.Subnet.Count without extracting weights; latency
// from a LatencyModel. Every measurement is appended to the archive and saved atomically,
// and every random choice derives from (seed, iteration), so a killed search resumes from
// its archive and ends exactly where an uninterrupted one would.
//
// Latency: MeasureLatency times an exported subnet in onnxruntime (batch 1, median after
// warm-up); LatencyModel learns per-layer-type costs from such whole-network
// measurements by least squares, in place of OFA's per-layer lookup table.
//
// Answering: Best picks the most accurate measured entry that fits a Budget. A Resolver
// answers with it at once, always: only measured subnets are answers, so accuracy never
// drops as a budget grows. When every measured fit lies far below a budget, it runs a
// short constrained NSGA-II search on the surrogate in the background; a winner predicted
// to beat the answer is measured there too, joins the archive, and answers the budgets it
// fits from then on if, and only if, it measured better. Answers report that pending work
// (Answer.Pending), and Settled lets a caller wait for it. ForTask builds a task's
// resolver, measuring on the task folder's own calibration and val images and keeping
// each measured subnet's BatchNorm statistics with the task's, so that serving it needs no
// forward pass. PlotFront draws an archive's front.
package specializer
