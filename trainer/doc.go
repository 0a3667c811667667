// Package trainer trains a weight-sharing supernet on the CPU: each step runs the sandwich
// rule (largest, smallest and N sampled subnets, soft targets from the largest) with
// gradients landing in the shared supernet tensors, then one SGD (Nesterov) update.
// Every subnet of a step runs at the batch's input size, which a loader with several
// Resolutions draws per step (OFA's elastic resolution).
//
// A subnet's forward and backward pass is a gorgonia expression graph. Every heavy layer
// (convolution, depthwise convolution, BatchNorm+activation, squeeze-excite pieces,
// linear layers, the kernel-size transformation, the loss) is a gorgonia Op of this
// package whose Do runs internal/cpu's float32 kernels and whose SymDiff builds the
// gradient from more such ops. Parameters enter the graph as whole supernet tensors and
// pass through slicing ops whose gradients scatter back into full-size accumulators, so
// an active subnet trains exactly the leading rows/columns OFA's dynamic layers use.
//
// Semantics follow OFA's training code: train-mode BatchNorm with batch statistics and
// in-place running-statistic updates (momentum from the spec), label smoothing, Nesterov
// SGD without weight decay on names containing "bn" or "bias", cosine schedule with a
// linear warm-up. One deliberate choice differs from OFA under PyTorch 1.x: a parameter
// that no subnet of a step used gets no update at all that step (PyTorch ≥ 2.0's
// set_to_none behaviour), instead of drifting with stale momentum and weight decay.
package trainer
