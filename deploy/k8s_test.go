package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// object is one decoded manifest with where it came from.
type object struct {
	src string // file:document
	obj runtime.Object
}

// decoder decodes the kinds natgw deploys, strictly: an unknown or duplicated field, a
// wrong type, a bad quantity or a kind outside this scheme is an error, as the API server's
// strict field validation would make it.
func decoder(t testing.TB) runtime.Decoder {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, autoscalingv2.AddToScheme, policyv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}

// decodeManifests splits a YAML stream into documents and decodes each; documents that hold
// only comments are skipped.
func decodeManifests(dec runtime.Decoder, name string, data []byte) ([]object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []object
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return objs, fmt.Errorf("%s: %w", name, err)
		}
		var probe any
		if err := yaml.Unmarshal(doc, &probe); err != nil {
			return objs, fmt.Errorf("%s#%d: %w", name, i, err)
		}
		if probe == nil {
			continue
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			return objs, fmt.Errorf("%s#%d: %w", name, i, err)
		}
		objs = append(objs, object{src: fmt.Sprintf("%s#%d", name, i), obj: obj})
	}
}

// kustomization is the part of kustomization.yaml that deploy/k8s uses; decoding it
// strictly catches a misspelt field, which kustomize would otherwise reject only at apply time.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images"`
}

func k8sDir(t testing.TB) string { return filepath.Join(repoRoot(t), "deploy", "k8s") }

// loadK8s decodes every manifest that deploy/k8s/kustomization.yaml lists.
func loadK8s(t *testing.T) (kustomization, []object) {
	t.Helper()
	dir := k8sDir(t)
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	dec := decoder(t)
	var objs []object
	for _, res := range k.Resources {
		data, err := os.ReadFile(filepath.Join(dir, res))
		if err != nil {
			t.Fatalf("kustomization.yaml resource %s: %v", res, err)
		}
		o, err := decodeManifests(dec, res, data)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o...)
	}
	return k, objs
}

// TestK8sKustomization checks kustomization.yaml itself: the fields it uses, that it lists
// every manifest in the folder (a forgotten file is never applied) and that each image it
// rewrites is used by some container (a misspelt name rewrites nothing, silently).
func TestK8sKustomization(t *testing.T) {
	k, objs := loadK8s(t)
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml: apiVersion/kind %q/%q", k.APIVersion, k.Kind)
	}
	if errs := validation.IsDNS1123Label(k.Namespace); len(errs) > 0 {
		t.Errorf("kustomization.yaml: namespace %q: %v", k.Namespace, errs)
	}
	files, err := filepath.Glob(filepath.Join(k8sDir(t), "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		base := filepath.Base(f)
		if base != "kustomization.yaml" && !slices.Contains(k.Resources, base) {
			t.Errorf("%s is not listed in kustomization.yaml resources", base)
		}
	}
	images := map[string]bool{}
	for _, o := range objs {
		if spec := podSpec(o.obj); spec != nil {
			for _, c := range spec.Containers {
				name, _, _ := strings.Cut(c.Image, ":")
				images[name] = true
			}
		}
	}
	for _, im := range k.Images {
		if !images[im.Name] {
			t.Errorf("kustomization.yaml images: %q is no container's image (have %v)", im.Name, sortedKeys(images))
		}
	}
	for _, o := range objs {
		if ns := meta(o.obj).GetNamespace(); ns != "" && ns != k.Namespace {
			t.Errorf("%s: namespace %q differs from kustomization's %q", o.src, ns, k.Namespace)
		}
	}
}

// TestK8sManifests decodes every manifest strictly into the k8s.io/api types and checks
// how the objects fit together (checkCluster).
func TestK8sManifests(t *testing.T) {
	_, objs := loadK8s(t)
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[fmt.Sprintf("%T", o.obj)]++
	}
	for _, want := range []string{"*v1.Namespace", "*v1.ConfigMap", "*v1.Deployment", "*v1.Service", "*v2.HorizontalPodAutoscaler", "*v1.PodDisruptionBudget"} {
		if kinds[want] == 0 {
			t.Errorf("no %s among the manifests (have %v)", want, kinds)
		}
	}
	for _, err := range checkCluster(objs, serveEnv(t)) {
		t.Error(err)
	}
}

// TestK8sKustomizeBuild renders the kustomization with `kubectl kustomize` (kustomize built
// into kubectl, offline) and checks the rendered objects as above, plus that every
// namespaced object lands in the Namespace that is deployed with them.
func TestK8sKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		if os.Getenv("NATGW_REQUIRE_KUBECTL") == "1" {
			t.Fatal("kubectl not found and NATGW_REQUIRE_KUBECTL=1")
		}
		t.Skip("kubectl not found: the rendered kustomization is not checked (the manifests still are)")
	}
	out, err := exec.Command(kubectl, "kustomize", k8sDir(t)).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("kubectl kustomize: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("kubectl kustomize: %v", err)
	}
	objs, err := decodeManifests(decoder(t), "kustomize", out)
	if err != nil {
		t.Fatal(err)
	}
	_, raw := loadK8s(t)
	if len(objs) != len(raw) {
		t.Errorf("kustomize rendered %d objects, the manifests hold %d", len(objs), len(raw))
	}
	namespaces := map[string]bool{}
	for _, o := range objs {
		if ns, ok := o.obj.(*corev1.Namespace); ok {
			namespaces[ns.Name] = true
		}
	}
	for _, o := range objs {
		if _, ok := o.obj.(*corev1.Namespace); ok {
			continue
		}
		if ns := meta(o.obj).GetNamespace(); !namespaces[ns] {
			t.Errorf("%s %s: namespace %q is not one of the deployed namespaces %v", o.src, meta(o.obj).GetName(), ns, sortedKeys(namespaces))
		}
	}
	for _, err := range checkCluster(objs, serveEnv(t)) {
		t.Error(err)
	}
}

// TestK8sDecodeRejects shows that the strict decoder fails on broken manifests, so that
// a pass above means something.
func TestK8sDecodeRejects(t *testing.T) {
	dec := decoder(t)
	const deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n"
	tests := []struct {
		name, doc, want string
	}{
		{"unknown field", deployment + "  replica: 2\n", `unknown field "spec.replica"`},
		{"nested unknown field", deployment + "  template: {spec: {containers: [{name: a, image: b, livenesProbe: {}}]}}\n",
			`unknown field "spec.template.spec.containers[0].livenesProbe"`},
		{"wrong type", deployment + "  replicas: two\n", "cannot unmarshal"},
		{"bad quantity", deployment + "  template: {spec: {containers: [{name: a, image: b, resources: {limits: {memory: 2GB}}}]}}\n", "quantities must match"},
		{"duplicate field", deployment + "  replicas: 2\n  replicas: 3\n", "already set"},
		{"unknown kind", "apiVersion: apps/v1\nkind: Deploymnt\nmetadata: {name: x}\n", "no kind"},
		{"old api version", "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: x}\n", "no kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeManifests(dec, "doc", []byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("decode error %v, want one containing %q", err, tt.want)
			}
			t.Logf("rejected: %v", err)
		})
	}
}

// TestK8sCheckRejects breaks the real manifests one way at a time and expects checkCluster to
// say so: each check can fail.
func TestK8sCheckRejects(t *testing.T) {
	env := serveEnv(t)
	gateway := func(objs []object) *appsv1.Deployment { return find[*appsv1.Deployment](t, objs, "natgw") }
	natgw := func(objs []object) *corev1.Container { return &gateway(objs).Spec.Template.Spec.Containers[0] }
	config := func(objs []object) *corev1.ConfigMap { return find[*corev1.ConfigMap](t, objs, "natgw-config") }
	tests := []struct {
		name   string
		break_ func(objs []object) // nil: append a copy of the last object
		want   string
	}{
		{"selector", func(o []object) { gateway(o).Spec.Template.Labels["app.kubernetes.io/component"] = "api" }, "does not select its own pod template"},
		{"writable root", func(o []object) { natgw(o).SecurityContext.ReadOnlyRootFilesystem = nil }, "readOnlyRootFilesystem"},
		{"root user", func(o []object) { gateway(o).Spec.Template.Spec.SecurityContext.RunAsNonRoot = nil }, "runAsNonRoot"},
		{"no limits", func(o []object) { delete(natgw(o).Resources.Limits, corev1.ResourceMemory) }, "memory request and limit"},
		{"probe port", func(o []object) { natgw(o).LivenessProbe.HTTPGet.Port = intstr.FromString("web") }, `no container port named "web"`},
		{"probe path", func(o []object) { natgw(o).ReadinessProbe.HTTPGet.Path = "/v2/health/live" }, "readiness probe must be an httpGet of /v2/health/ready"},
		{"no startup probe", func(o []object) { natgw(o).StartupProbe = nil }, "startup probe"},
		{"no tmp", func(o []object) { natgw(o).VolumeMounts = nil }, "/tmp is not an emptyDir"},
		{"unknown setting", func(o []object) { config(o).Data["NATGW_REDIS"] = "x" }, "NATGW_REDIS: natgw serve reads no such variable"},
		{"bad duration", func(o []object) { config(o).Data["NATGW_SHUTDOWN_DELAY"] = "5" }, `NATGW_SHUTDOWN_DELAY="5"`},
		{"bad int", func(o []object) { config(o).Data["NATGW_QUEUE"] = "lots" }, `NATGW_QUEUE="lots"`},
		{"no shutdown delay", func(o []object) { delete(config(o).Data, "NATGW_SHUTDOWN_DELAY") }, "NATGW_SHUTDOWN_DELAY is not set"},
		{"short grace", func(o []object) { g := int64(20); gateway(o).Spec.Template.Spec.TerminationGracePeriodSeconds = &g }, "terminationGracePeriodSeconds 20"},
		{"addr port", func(o []object) { config(o).Data["NATGW_ADDR"] = ":9090" }, "listens on 9090"},
		{"redis host", func(o []object) { config(o).Data["NATGW_REDIS_URL"] = "redis://redis:6379/0" }, `NATGW_REDIS_URL host "redis"`},
		{"missing configmap", func(o []object) { natgw(o).EnvFrom[0].ConfigMapRef.Name = "natgw-settings" }, `ConfigMap "natgw-settings" is not defined`},
		{"service port", func(o []object) {
			find[*corev1.Service](t, o, "natgw").Spec.Ports[0].TargetPort = intstr.FromString("web")
		}, `targetPort "web"`},
		{"hpa target", func(o []object) {
			find[*autoscalingv2.HorizontalPodAutoscaler](t, o, "natgw").Spec.ScaleTargetRef.Name = "natgw-gateway"
		}, "scaleTargetRef Deployment/natgw-gateway"},
		{"pdb blocks drains", func(o []object) {
			find[*policyv1.PodDisruptionBudget](t, o, "natgw").Spec.MinAvailable = ptr(intstr.FromInt32(2))
		}, "minAvailable 2"},
		{"redis unbounded", func(o []object) {
			find[*appsv1.Deployment](t, o, "natgw-redis").Spec.Template.Spec.Containers[0].Args = []string{"redis-server"}
		}, "no positive --maxmemory"},
		{"redis limit", func(o []object) {
			c := &find[*appsv1.Deployment](t, o, "natgw-redis").Spec.Template.Spec.Containers[0]
			c.Resources.Limits[corev1.ResourceMemory] = resource.MustParse("512Mi")
		}, "is not above --maxmemory"},
		{"duplicate object", nil, "is also defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, objs := loadK8s(t) // fresh objects per case: the mutations are in place
			if errs := checkCluster(objs, env); len(errs) > 0 {
				t.Fatalf("the unbroken manifests already fail: %v", errs)
			}
			if tt.break_ != nil {
				tt.break_(objs)
			} else {
				objs = append(objs, objs[len(objs)-1]) // the same object twice
			}
			errs := checkCluster(objs, env)
			if !errorsContain(errs, tt.want) {
				t.Fatalf("checkCluster errors %v, want one containing %q", errs, tt.want)
			}
			t.Logf("rejected: %v", errs)
		})
	}
}

func ptr[T any](v T) *T { return &v }

// find returns the object of type T with the given name.
func find[T runtime.Object](t testing.TB, objs []object, name string) T {
	t.Helper()
	for _, o := range objs {
		if x, ok := o.obj.(T); ok && meta(o.obj).GetName() == name {
			return x
		}
	}
	var zero T
	t.Fatalf("no %T named %s", zero, name)
	return zero
}

func meta(obj runtime.Object) metav1.Object {
	m, ok := obj.(metav1.Object)
	if !ok {
		panic(fmt.Sprintf("%T has no metadata", obj))
	}
	return m
}

// podSpec returns the pod template of a workload, or nil.
func podSpec(obj runtime.Object) *corev1.PodSpec {
	if d, ok := obj.(*appsv1.Deployment); ok {
		return &d.Spec.Template.Spec
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// cluster indexes a set of objects for the cross-object checks.
type cluster struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	pdbs        []*policyv1.PodDisruptionBudget
}

// checkCluster checks what the schema cannot: names and labels are valid, selectors select,
// ports and references resolve, pods are hardened and bounded, natgw's settings are ones it
// reads with values it accepts, and the shutdown, autoscaling and disruption numbers agree.
func checkCluster(objs []object, env map[string]envKind) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	c := cluster{
		deployments: map[string]*appsv1.Deployment{},
		services:    map[string]*corev1.Service{},
		configMaps:  map[string]*corev1.ConfigMap{},
	}
	seen := map[string]string{}
	for _, o := range objs {
		m := meta(o.obj)
		id := fmt.Sprintf("%T/%s/%s", o.obj, m.GetNamespace(), m.GetName())
		if prev, ok := seen[id]; ok {
			fail("%s: %s is also defined in %s", o.src, m.GetName(), prev)
		}
		seen[id] = o.src
		if msgs := validation.IsDNS1123Subdomain(m.GetName()); len(msgs) > 0 {
			fail("%s: name %q: %v", o.src, m.GetName(), msgs)
		}
		for k, v := range m.GetLabels() {
			if msgs := append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...); len(msgs) > 0 {
				fail("%s: label %s=%s: %v", o.src, k, v, msgs)
			}
		}
		switch x := o.obj.(type) {
		case *appsv1.Deployment:
			c.deployments[x.Name] = x
		case *corev1.Service:
			if msgs := validation.IsDNS1035Label(x.Name); len(msgs) > 0 {
				fail("%s: service name %q: %v", o.src, x.Name, msgs)
			}
			c.services[x.Name] = x
		case *corev1.ConfigMap:
			c.configMaps[x.Name] = x
		case *autoscalingv2.HorizontalPodAutoscaler:
			c.hpas = append(c.hpas, x)
		case *policyv1.PodDisruptionBudget:
			c.pdbs = append(c.pdbs, x)
		}
	}
	for _, name := range sortedKeys(c.deployments) {
		errs = append(errs, c.checkDeployment(c.deployments[name], env)...)
	}
	for _, name := range sortedKeys(c.services) {
		errs = append(errs, c.checkService(c.services[name])...)
	}
	for _, h := range c.hpas {
		errs = append(errs, c.checkHPA(h)...)
	}
	for _, p := range c.pdbs {
		errs = append(errs, c.checkPDB(p)...)
	}
	return errs
}

// selected returns the deployments whose pod template sel matches.
func (c cluster) selected(sel labels.Selector) []*appsv1.Deployment {
	var out []*appsv1.Deployment
	for _, name := range sortedKeys(c.deployments) {
		d := c.deployments[name]
		if !sel.Empty() && sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			out = append(out, d)
		}
	}
	return out
}

// settings returns a container's environment as natgw sees it: envFrom ConfigMaps, then env.
func (c cluster) settings(ctr corev1.Container) (map[string]string, []error) {
	var errs []error
	s := map[string]string{}
	for _, from := range ctr.EnvFrom {
		if from.ConfigMapRef == nil {
			continue
		}
		cm, ok := c.configMaps[from.ConfigMapRef.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("container %s: envFrom ConfigMap %q is not defined", ctr.Name, from.ConfigMapRef.Name))
			continue
		}
		for k, v := range cm.Data {
			s[from.Prefix+k] = v
		}
	}
	for _, e := range ctr.Env {
		if e.ValueFrom == nil {
			s[e.Name] = e.Value
		}
	}
	return s, errs
}

func (c cluster) checkDeployment(d *appsv1.Deployment, env map[string]envKind) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("deployment %s: "+format, append([]any{d.Name}, args...)...))
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	switch {
	case err != nil:
		fail("selector: %v", err)
	case sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)):
		fail("selector %s does not select its own pod template (labels %v)", sel, d.Spec.Template.Labels)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 1 {
		fail("replicas not set")
	}
	spec := d.Spec.Template.Spec
	podNonRoot := spec.SecurityContext != nil && spec.SecurityContext.RunAsNonRoot != nil && *spec.SecurityContext.RunAsNonRoot
	podSeccomp := spec.SecurityContext != nil && spec.SecurityContext.SeccompProfile != nil && spec.SecurityContext.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault
	if spec.SecurityContext != nil && spec.SecurityContext.RunAsUser != nil && *spec.SecurityContext.RunAsUser == 0 {
		fail("pod runAsUser 0")
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	if len(spec.Containers) == 0 {
		fail("no containers")
	}
	for _, ctr := range spec.Containers {
		cfail := func(format string, args ...any) { fail("container %s: "+format, append([]any{ctr.Name}, args...)...) }
		if ctr.Image == "" {
			cfail("no image")
		}
		// Hardening: non-root, read-only root filesystem, no privilege escalation, no capabilities.
		sc := ctr.SecurityContext
		if !podNonRoot && (sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot) {
			cfail("runAsNonRoot is not set on the pod or the container")
		}
		if !podSeccomp && (sc == nil || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault) {
			cfail("seccompProfile RuntimeDefault is not set on the pod or the container")
		}
		switch {
		case sc == nil:
			cfail("no securityContext (readOnlyRootFilesystem, allowPrivilegeEscalation, capabilities)")
		default:
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				cfail("readOnlyRootFilesystem is not true")
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				cfail("allowPrivilegeEscalation is not false")
			}
			if sc.Privileged != nil && *sc.Privileged {
				cfail("privileged")
			}
			if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
				cfail("capabilities do not drop ALL")
			}
		}
		// Bounded: requests and limits for CPU and memory, requests within limits.
		for _, rn := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, okReq := ctr.Resources.Requests[rn]
			lim, okLim := ctr.Resources.Limits[rn]
			if !okReq || !okLim {
				cfail("%s request and limit must both be set", rn)
				continue
			}
			if req.Cmp(lim) > 0 {
				cfail("%s request %s exceeds limit %s", rn, req.String(), lim.String())
			}
		}
		ports := map[string]int32{}
		for _, p := range ctr.Ports {
			if p.Name != "" {
				if msgs := validation.IsValidPortName(p.Name); len(msgs) > 0 {
					cfail("port name %q: %v", p.Name, msgs)
				}
				ports[p.Name] = p.ContainerPort
			}
			if msgs := validation.IsValidPortNum(int(p.ContainerPort)); len(msgs) > 0 {
				cfail("containerPort %d: %v", p.ContainerPort, msgs)
			}
		}
		if ctr.LivenessProbe == nil || ctr.ReadinessProbe == nil {
			cfail("liveness and readiness probes are both needed")
		}
		for name, pr := range map[string]*corev1.Probe{"startup": ctr.StartupProbe, "liveness": ctr.LivenessProbe, "readiness": ctr.ReadinessProbe} {
			if pr == nil {
				continue
			}
			var port *intstr.IntOrString
			switch {
			case pr.HTTPGet != nil:
				port = &pr.HTTPGet.Port
			case pr.TCPSocket != nil:
				port = &pr.TCPSocket.Port
			case pr.Exec != nil && len(pr.Exec.Command) > 0:
			default:
				cfail("%s probe has no handler", name)
			}
			if port != nil {
				if err := portIn(*port, ports, ctr.Ports); err != nil {
					cfail("%s probe: %v", name, err)
				}
			}
		}
		mounts := map[string]string{}
		for _, m := range ctr.VolumeMounts {
			if _, ok := volumes[m.Name]; !ok {
				cfail("volumeMount %q names no volume", m.Name)
			}
			mounts[m.MountPath] = m.Name
		}
		settings, serrs := c.settings(ctr)
		for _, err := range serrs {
			errs = append(errs, fmt.Errorf("deployment %s: %w", d.Name, err))
		}
		if ctr.Name == "natgw" {
			errs = append(errs, c.checkGateway(d, ctr, settings, ports, mounts, volumes, env)...)
		}
		if ctr.Name == "redis" {
			mem, err := redisMaxMemory(append(slices.Clone(ctr.Command), ctr.Args...))
			if err != nil {
				cfail("%v", err)
			} else if lim := ctr.Resources.Limits[corev1.ResourceMemory]; lim.Cmp(*resource.NewQuantity(mem, resource.BinarySI)) <= 0 {
				cfail("memory limit %s is not above --maxmemory (%d bytes): the OOM killer would act before eviction", lim.String(), mem)
			}
		}
	}
	return errs
}

// portIn resolves a probe or Service target port against a container's ports.
func portIn(port intstr.IntOrString, named map[string]int32, all []corev1.ContainerPort) error {
	if port.Type == intstr.String {
		if _, ok := named[port.StrVal]; !ok {
			return fmt.Errorf("no container port named %q", port.StrVal)
		}
		return nil
	}
	for _, p := range all {
		if p.ContainerPort == port.IntVal {
			return nil
		}
	}
	return fmt.Errorf("port %d is not a container port", port.IntVal)
}

// checkGateway checks the natgw container against what `natgw serve` does.
func (c cluster) checkGateway(d *appsv1.Deployment, ctr corev1.Container, settings map[string]string, ports map[string]int32,
	mounts map[string]string, volumes map[string]corev1.Volume, env map[string]envKind) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("deployment %s: container natgw: "+format, append([]any{d.Name}, args...)...))
	}
	if len(ctr.Args) == 0 || ctr.Args[0] != "serve" {
		fail("args %v do not start with serve", ctr.Args)
	}
	for _, k := range sortedKeys(settings) {
		if err := checkEnv(env, k, settings[k]); err != nil {
			fail("%v", err)
		}
	}
	for name, want := range map[string]struct {
		probe *corev1.Probe
		path  string
	}{
		"startup":   {ctr.StartupProbe, "/v2/health/live"},
		"liveness":  {ctr.LivenessProbe, "/v2/health/live"},
		"readiness": {ctr.ReadinessProbe, "/v2/health/ready"},
	} {
		if want.probe == nil || want.probe.HTTPGet == nil || want.probe.HTTPGet.Path != want.path {
			fail("%s probe must be an httpGet of %s", name, want.path)
		}
	}
	if port, err := addrPort(settings); err != nil {
		fail("%v", err)
	} else if !slices.ContainsFunc(ctr.Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort == int32(port) }) {
		fail("listens on %d (NATGW_ADDR) but declares ports %v", port, ports)
	}
	// A read-only root needs somewhere writable for temporary files.
	if v, ok := volumes[mounts["/tmp"]]; !ok || v.EmptyDir == nil {
		fail("/tmp is not an emptyDir mount")
	}
	budget, err := drainBudget(settings)
	if err != nil {
		fail("%v", err)
	} else {
		grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
		if d.Spec.Template.Spec.TerminationGracePeriodSeconds != nil {
			grace = *d.Spec.Template.Spec.TerminationGracePeriodSeconds
		}
		if float64(grace) <= budget.Seconds() {
			fail("terminationGracePeriodSeconds %d is not above NATGW_SHUTDOWN_DELAY + NATGW_SHUTDOWN_TIMEOUT (%s): draining would be killed", grace, budget)
		}
	}
	if raw, ok := settings["NATGW_REDIS_URL"]; ok && raw != "" {
		u, err := url.Parse(raw)
		if err != nil {
			fail("NATGW_REDIS_URL: %v", err)
		} else {
			host, portStr := u.Hostname(), u.Port()
			if portStr == "" {
				portStr = "6379"
			}
			port, _ := strconv.Atoi(portStr)
			// Same-namespace short names only: the manifests are namespace-agnostic.
			svc, ok := c.services[host]
			switch {
			case u.Scheme != "redis" && u.Scheme != "rediss":
				fail("NATGW_REDIS_URL scheme %q", u.Scheme)
			case !ok:
				fail("NATGW_REDIS_URL host %q is no Service here (have %v)", host, sortedKeys(c.services))
			case !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == int32(port) }):
				fail("NATGW_REDIS_URL port %d is not a port of Service %s", port, host)
			}
		}
	}
	return errs
}

func (c cluster) checkService(s *corev1.Service) []error {
	var errs []error
	if len(s.Spec.Selector) == 0 {
		return []error{fmt.Errorf("service %s: no selector", s.Name)}
	}
	targets := c.selected(labels.SelectorFromSet(s.Spec.Selector))
	if len(targets) == 0 {
		return []error{fmt.Errorf("service %s: selector %v selects no deployment's pods", s.Name, s.Spec.Selector)}
	}
	for _, p := range s.Spec.Ports {
		target := p.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(p.Port)
		}
		for _, d := range targets {
			ok := false
			for _, ctr := range d.Spec.Template.Spec.Containers {
				named := map[string]int32{}
				for _, cp := range ctr.Ports {
					named[cp.Name] = cp.ContainerPort
				}
				if portIn(target, named, ctr.Ports) == nil {
					ok = true
				}
			}
			if !ok {
				errs = append(errs, fmt.Errorf("service %s: targetPort %q is no container port of deployment %s", s.Name, target.String(), d.Name))
			}
		}
	}
	return errs
}

func (c cluster) checkHPA(h *autoscalingv2.HorizontalPodAutoscaler) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("hpa %s: "+format, append([]any{h.Name}, args...)...))
	}
	ref := h.Spec.ScaleTargetRef
	d, ok := c.deployments[ref.Name]
	if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || !ok {
		fail("scaleTargetRef %s/%s (%s) is no Deployment here", ref.Kind, ref.Name, ref.APIVersion)
		return errs
	}
	min := int32(1)
	if h.Spec.MinReplicas != nil {
		min = *h.Spec.MinReplicas
	}
	if min < 1 || min > h.Spec.MaxReplicas {
		fail("minReplicas %d, maxReplicas %d", min, h.Spec.MaxReplicas)
	}
	if d.Spec.Replicas != nil && (*d.Spec.Replicas < min || *d.Spec.Replicas > h.Spec.MaxReplicas) {
		fail("deployment replicas %d outside [%d, %d]", *d.Spec.Replicas, min, h.Spec.MaxReplicas)
	}
	if len(h.Spec.Metrics) == 0 {
		fail("no metrics")
	}
	for _, m := range h.Spec.Metrics {
		if m.Type != autoscalingv2.ResourceMetricSourceType || m.Resource == nil || m.Resource.Target.Type != autoscalingv2.UtilizationMetricType {
			continue
		}
		// Utilization is relative to requests: every container needs one.
		for _, ctr := range d.Spec.Template.Spec.Containers {
			if _, ok := ctr.Resources.Requests[m.Resource.Name]; !ok {
				fail("%s utilization target but container %s requests no %s", m.Resource.Name, ctr.Name, m.Resource.Name)
			}
		}
	}
	return errs
}

func (c cluster) checkPDB(p *policyv1.PodDisruptionBudget) []error {
	var errs []error
	sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
	if err != nil {
		return []error{fmt.Errorf("pdb %s: selector: %v", p.Name, err)}
	}
	targets := c.selected(sel)
	if len(targets) == 0 {
		return []error{fmt.Errorf("pdb %s: selector %s selects no deployment's pods", p.Name, sel)}
	}
	if p.Spec.MinAvailable == nil || p.Spec.MinAvailable.Type != intstr.Int {
		return errs // percentages and maxUnavailable always leave room to evict
	}
	for _, d := range targets {
		// The fewest replicas the deployment runs: its own count, or its autoscaler's minimum.
		fewest := int32(1)
		if d.Spec.Replicas != nil {
			fewest = *d.Spec.Replicas
		}
		for _, h := range c.hpas {
			if h.Spec.ScaleTargetRef.Name == d.Name && h.Spec.MinReplicas != nil && *h.Spec.MinReplicas < fewest {
				fewest = *h.Spec.MinReplicas
			}
		}
		if p.Spec.MinAvailable.IntVal >= fewest {
			errs = append(errs, fmt.Errorf("pdb %s: minAvailable %d with %d replicas of %s: no pod could ever be evicted, node drains would block",
				p.Name, p.Spec.MinAvailable.IntVal, fewest, d.Name))
		}
	}
	return errs
}
