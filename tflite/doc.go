// Package tflite reads TensorFlow Lite flatbuffer models: tensors (shape, type, quantization,
// constant data), operators (opcode, inputs, outputs, convolution/pool options) and buffers,
// through bounds-checked accessors over the flatbuffers Table API, so that arbitrary bytes give
// an error rather than a panic. It dequantizes constant tensors (w = scale·(q − zero_point),
// per tensor or per axis) and runs a float interpreter over the few operators a MobileNet
// needs, which importers use to measure activations and to check a converted network.
//
// Only the fields a classifier import needs are decoded; the schema is TensorFlow's
// tensorflow/lite/schema/schema.fbs (field numbers are noted next to each accessor).
package tflite
