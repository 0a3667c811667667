package gateway

import (
	"context"
	"fmt"

	"github.com/natgw/natgw/exporter"
	"github.com/natgw/natgw/onnxrt"
	"github.com/natgw/natgw/specializer"
	"github.com/natgw/natgw/supernet"
)

// ONNXForward measures a candidate's val top-1 through onnxruntime on env's threads: the
// subnet, its BatchNorm statistics just rebuilt, is exported as it would be served and run
// in a session of its own. That is the engine that serves it, and the faster one on the
// val pass (BENCHMARKS.md, "Measuring a candidate"); the calibration before it stays in the
// Go forward, which onnxruntime ran slower (batch statistics).
func ONNXForward(env *onnxrt.Env) specializer.ForwardMaker {
	return func(ctx context.Context, sub *supernet.Subnet) (specializer.Forwarder, func(), error) {
		model, err := exporter.Export(sub, exporter.Options{})
		if err != nil {
			return nil, nil, fmt.Errorf("measure through onnxruntime: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		sess, err := env.NewSession(model)
		if err != nil {
			return nil, nil, fmt.Errorf("measure through onnxruntime: %w", err)
		}
		return onnxForwarder{sess: sess, classes: sub.Classifier.Out}, func() { sess.Close() }, nil
	}
}

// onnxForwarder is a session as a specializer.Forwarder.
type onnxForwarder struct {
	sess    *onnxrt.Session
	classes int
}

func (f onnxForwarder) Forward(ctx context.Context, x []float32, n, h, w int) ([]float32, error) {
	out, _, err := f.sess.Run(ctx, x, []int64{int64(n), 3, int64(h), int64(w)})
	return out, err
}

func (f onnxForwarder) Classes() int { return f.classes }
