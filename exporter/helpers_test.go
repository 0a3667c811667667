package exporter

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natgw/natgw/internal/testutil"
	"github.com/natgw/natgw/onnxrt"
	"github.com/natgw/natgw/supernet"
)

// parityDir is the OFA parity fixture folder; it skips (fails with NATGW_REQUIRE_SHARED=1)
// unless the supernet checkpoint every parity test loads is there.
func parityDir(t testing.TB) string {
	t.Helper()
	return filepath.Dir(testutil.Shared(t, "fixtures/ofa-parity/ofa_mbv3_d234_e346_k357_w1.0_seed0.pth"))
}

// requireORT skips (or fails with NATGW_REQUIRE_ORT=1) with a clear message.
func requireORT(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("NATGW_REQUIRE_ORT") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// ortEnv returns an onnxruntime Env with fixed thread counts.
func ortEnv(t testing.TB, intra int) *onnxrt.Env {
	t.Helper()
	if _, err := onnxrt.ResolveLibraryPath(onnxrt.Config{}); err != nil {
		requireORT(t, "onnxruntime library missing: run scripts/install-onnxruntime.sh (or set ONNXRUNTIME_LIB): "+err.Error())
	}
	env, err := onnxrt.NewEnv(onnxrt.Config{IntraOpThreads: intra, InterOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// ortRun runs model bytes once on x [n,3,r,r].
func ortRun(t testing.TB, env *onnxrt.Env, model []byte, x []float32, n, r int) []float32 {
	t.Helper()
	sess, err := env.NewSession(model)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	out, _, err := sess.Run(context.Background(), x, []int64{int64(n), 3, int64(r), int64(r)})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkONNX runs onnx.checker.check_model(full_check=True) from Debian's python3-onnx
// on each file; it skips when no python3 has onnx unless NATGW_REQUIRE_ORT=1.
func checkONNX(t testing.TB, paths ...string) {
	t.Helper()
	py := testutil.Python(t, "NATGW_REQUIRE_ORT", "onnx")
	script := `import sys, onnx
for p in sys.argv[1:]:
    onnx.checker.check_model(p, full_check=True)
    m = onnx.load(p)
    assert m.opset_import[0].version == 17 and m.ir_version == 8, p
print("ok", len(sys.argv) - 1)`
	out, err := exec.Command(py, append([]string{"-c", script}, paths...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("onnx.checker rejected the export: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "ok ") {
		t.Fatalf("onnx.checker: unexpected output %q", out)
	}
}

type parityCase struct {
	ID         string        `json:"id"`
	Config     supernet.Arch `json:"config"`
	Resolution int           `json:"resolution"`
}

var parityIDs = []string{"A0_smallest", "A1_largest", "A2_uniform_k5_e4_d3", "A3_random", "A4_random", "A5_random"}

func loadCase(t testing.TB, dir, id string) parityCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, id+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var c parityCase
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	c.Config.R = c.Resolution
	return c
}

func loadOFA(t testing.TB, dir string) *supernet.Supernet {
	t.Helper()
	sn, err := supernet.Load(filepath.Join(dir, "ofa_mbv3_d234_e346_k357_w1.0_seed0.pth"), supernet.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sn
}

func randInput(seed uint64, n int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// enliven gives every BatchNorm of a random-weight subnet seeded non-trivial statistics
// and a gain that offsets ReLU's halving of the variance, so that logits of a deep random
// network stay O(1) and depend on the input (plain random weights fade to ~1e-6, where an
// absolute tolerance means nothing).
func enliven(sub *supernet.Subnet, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 3))
	bn := func(l *supernet.ConvLayer) {
		if l == nil || l.BN == nil {
			return
		}
		for i := range l.BN.Weight {
			l.BN.Weight[i] = float32(1.2 + 0.3*rng.Float64())
			l.BN.Bias[i] = float32(0.1 * rng.NormFloat64())
			l.BN.Mean[i] = float32(0.1 * rng.NormFloat64())
			l.BN.Var[i] = float32(0.5 + rng.Float64())
		}
	}
	bn(&sub.Stem)
	for i := range sub.Blocks {
		b := &sub.Blocks[i]
		bn(b.Expand)
		bn(&b.Depthwise)
		bn(&b.Project)
	}
	bn(sub.FinalExpand)
	bn(sub.FeatureMix)
}

// randomSubnet extracts arch a (nil: the smallest) from a seeded random supernet.
func randomSubnet(t testing.TB, spec *supernet.Spec, seed uint64, a *supernet.Arch) *supernet.Subnet {
	t.Helper()
	sn, err := supernet.Random(spec, seed)
	if err != nil {
		t.Fatal(err)
	}
	arch := spec.Smallest()
	if a != nil {
		arch = *a
	}
	sub, err := sn.Extract(arch)
	if err != nil {
		t.Fatal(err)
	}
	return sub
}
