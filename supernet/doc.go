// Package supernet is natgw's ground floor: the Once-for-All (OFA) MobileNetV3-style
// weight-sharing supernet as data. A Spec describes a search space and the shape of every
// tensor; an Arch (OFA's {"ks","e","d","r"} JSON) selects one subnet; Extract takes that
// subnet out exactly as OFA's get_active_subnet(preserve_weight=True) does; Count gives its
// MAdds and parameters by OFA's rule; Net runs it on the CPU; Recalibrate rebuilds its
// BatchNorm statistics with OFA's set_running_statistics semantics.
//
// Checkpoints load from OFA's torch.save files (zip or legacy) or from natgw's native
// safetensors files, which embed the spec. The package depends only on the leaf helpers
// in internal/ (file formats and CPU kernels), never on the rest of natgw.
package supernet
