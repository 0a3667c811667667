// Package importer turns TensorFlow Lite's quantized MobileNetV2 into a natgw supernet: the
// dequantized network becomes the largest subnet of supernet.MobileNetV2Space, with its
// 3×3 depthwise kernels centred in the stored 7×7 kernels (identity kernel-transform
// matrices keep them exact at k = 3), middle channels sorted by importance so that smaller
// expand ratios keep the most important ones, and the BatchNorm layers TFLite folded away
// restored from activation statistics measured on calibration images.
package importer
