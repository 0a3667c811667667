package surrogate

import (
	"math"
	"math/rand/v2"
)

// dataset is a train/test split of a known function.
type dataset struct {
	trX, teX [][]float64
	trY, teY []float64
}

func sample(seed uint64, nTrain, nTest int, draw func(*rand.Rand) []float64, f func([]float64) float64) dataset {
	rng := rand.New(rand.NewPCG(seed, 1))
	var ds dataset
	for i := 0; i < nTrain+nTest; i++ {
		x := draw(rng)
		if i < nTrain {
			ds.trX, ds.trY = append(ds.trX, x), append(ds.trY, f(x))
		} else {
			ds.teX, ds.teY = append(ds.teX, x), append(ds.teY, f(x))
		}
	}
	return ds
}

// smooth10 is sum_i sin(x_i) + 0.1 x_i^2 on [-2, 2]^10.
func smooth10(seed uint64) dataset {
	return sample(seed, 100, 200, func(r *rand.Rand) []float64 {
		x := make([]float64, 10)
		for i := range x {
			x[i] = -2 + 4*r.Float64()
		}
		return x
	}, func(x []float64) float64 {
		s := 0.0
		for _, v := range x {
			s += math.Sin(v) + 0.1*v*v
		}
		return s
	})
}

// int22Cards are the gene cardinalities of a 22-gene, OFA-like encoding:
// resolution (5 choices), five stage depths (3 choices) and 16 block codes
// (9 choices: kernel x expand ratio).
func int22Cards() []int {
	cards := []int{5, 3, 3, 3, 3, 3}
	for len(cards) < 22 {
		cards = append(cards, 9)
	}
	return cards
}

// int22 is a saturating accuracy-like function of the integer encoding, with
// gene weights that differ and interactions between neighbouring blocks.
func int22(seed uint64, nTrain, nTest int) dataset {
	cards := int22Cards()
	return sample(seed, nTrain, nTest, func(r *rand.Rand) []float64 {
		x := make([]float64, len(cards))
		for i, c := range cards {
			x[i] = float64(r.IntN(c))
		}
		return x
	}, func(x []float64) float64 {
		s := 1.5 * math.Sqrt(x[0])
		for i := 1; i <= 5; i++ {
			s += 0.4 * float64(i) / 5 * x[i]
		}
		for i := 6; i < 22; i++ {
			kernel, expand := math.Floor(x[i]/3), math.Mod(x[i], 3)
			s += 0.15*kernel + 0.25*math.Sqrt(expand)
			if i > 6 {
				s += 0.03 * expand * math.Mod(x[i-1], 3)
			}
		}
		return 80 - 20*math.Exp(-s/6)
	})
}

// steps10 is an axis-aligned step function of two of ten features on [0, 1]^10.
func steps10(seed uint64) dataset {
	return sample(seed, 120, 200, func(r *rand.Rand) []float64 {
		x := make([]float64, 10)
		for i := range x {
			x[i] = r.Float64()
		}
		return x
	}, func(x []float64) float64 {
		y := 0.0
		if x[0] > 0.5 {
			y += 2
		}
		if x[3] > 0.3 {
			y++
		}
		if x[3] > 0.8 {
			y += 0.5
		}
		return y
	})
}
