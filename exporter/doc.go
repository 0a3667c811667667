// Package exporter turns an extracted subnet (supernet.Subnet) into a self-describing
// ONNX model for onnxruntime, and reads the description back.
//
// # Graph
//
// IR version 8, default-domain opset 17 (HardSwish needs ≥ 14), producer_name "natgw".
// One input "input" float32 [batch,3,R,R] and one output "logits" float32 [batch,C];
// only the batch dimension is symbolic (dim_param "batch"), R is the subnet's resolution.
//
//   - Every BatchNorm is folded into the convolution before it, which then has a bias
//     (same float64 arithmetic as supernet's compiled forward).
//   - Activations: ReLU → Relu, ReLU6 → Clip(0, 6) (bounds as two shared scalar
//     initializers), h_swish → HardSwish; a layer without activation emits nothing.
//   - Squeeze-and-excitation: GlobalAveragePool, Conv 1×1 (bias), Relu, Conv 1×1 (bias),
//     HardSigmoid(alpha=1/6, beta=0.5), Mul with the block's feature map.
//   - Residual blocks end in Add(project, block input).
//   - Head: final expand Conv (if any), GlobalAveragePool, feature-mix Conv 1×1 on the 1×1
//     map (if any), Flatten(axis=1), Gemm(transB=1) with the classifier.
//   - Every Conv carries explicit pads [top,left,bottom,right] from supernet.Pads for the
//     layer's input size, which is known statically from R, so TensorFlow's SAME padding
//     comes out as asymmetric pads.
//
// Names follow the subnet's structure: initializers "first_conv.weight",
// "blocks.<i>.{expand,dw,project}.{weight,bias}", "blocks.<i>.se.{reduce,expand}.{weight,bias}",
// "final_expand.*", "feature_mix.*", "classifier.{weight,bias}" (i is the supernet block
// index); each node is named after the value it produces. There are no doc strings or
// timestamps, metadata_props are sorted by key and the protobuf is marshalled
// deterministically, so the same subnet and Options give byte-identical files.
//
// # Metadata
//
// metadata_props carry (keys are part of the file format):
//
//	natgw.format            "1"
//	natgw.task              task name (Options.Task, default "default")
//	natgw.arch              canonical arch JSON {"ks":[...],"e":[...],"d":[...],"r":R}
//	natgw.resolution        R
//	natgw.madds, natgw.params  OFA-rule counts of the subnet (decimal)
//	natgw.supernet.id, natgw.supernet.version  provenance (may be empty)
//	natgw.spec              search-space spec name
//	natgw.labels            JSON array of C labels, in logit order
//	natgw.preprocess        JSON of preprocess.Spec (how to build the input tensor)
//	natgw.producer          "natgw <version>"
//
// ReadMetadata parses them from model bytes without decoding the weights; ParseProps does
// the same from a key/value map such as onnxruntime's custom metadata.
package exporter
