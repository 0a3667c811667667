package cpu

/*
#cgo noescape k_act
#cgo nocallback k_act
#include "kernels.h"
*/
import "C"

import "fmt"

// Act is an activation fused into an op or applied with Apply.
type Act int

const (
	ActNone     Act = iota
	ActReLU         // max(x, 0)
	ActReLU6        // min(max(x, 0), 6)
	ActHSwish       // x*relu6(x+3)/6, dividing by 6 like PyTorch's CPU kernel
	ActHSigmoid     // relu6(x+3)/6, dividing by 6 like PyTorch's CPU kernel
)

func (a Act) String() string {
	switch a {
	case ActNone:
		return "none"
	case ActReLU:
		return "relu"
	case ActReLU6:
		return "relu6"
	case ActHSwish:
		return "hswish"
	case ActHSigmoid:
		return "hsigmoid"
	}
	return fmt.Sprintf("Act(%d)", int(a))
}

func (a Act) check() {
	if a < ActNone || a > ActHSigmoid {
		panic(fmt.Sprintf("cpu: unknown activation %d", int(a)))
	}
}

// Apply applies act to x in place.
func Apply(act Act, x []float32) {
	act.check()
	if act == ActNone || len(x) == 0 {
		return
	}
	w := workersFor(float64(len(x)), minElemsPerWorker, len(x))
	parallel(len(x), w, func(_, lo, hi int) {
		C.k_act(C.int(act), fptr(x[lo:hi]), C.long(hi-lo))
	})
}
