package deploy

import (
	"bytes"
	"context"
	"fmt"
	goversion "go/version"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	digest "github.com/opencontainers/go-digest"
	appsv1 "k8s.io/api/apps/v1"
)

// offlineImages answers BuildKit's base-image look-ups with an empty linux/amd64 image
// config, so that the linter runs without a registry. Checks that need the real base image
// (its ENV for UndefinedVar, its platform) see only PATH.
type offlineImages struct{}

func (offlineImages) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	cfg := `{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}}`
	return ref, digest.FromString(cfg), []byte(cfg), nil
}

// lintDockerfile runs BuildKit's Dockerfile checks, the ones `docker build --check` runs,
// over every stage. Any warning is an error here.
func lintDockerfile(dt []byte) []error {
	sm := llb.NewSourceMap(nil, "Dockerfile", "Dockerfile", dt)
	sm.Definition = &llb.Definition{}
	res, err := dockerfile2llb.DockerfileLint(context.Background(), dt, dockerfile2llb.ConvertOpt{
		MetaResolver: offlineImages{},
		SourceMap:    sm,
	})
	if err != nil {
		return []error{fmt.Errorf("lint: %w", err)}
	}
	var errs []error
	for _, w := range res.Warnings {
		line := 0
		if len(w.Location.Ranges) > 0 {
			line = int(w.Location.Ranges[0].Start.Line)
		}
		errs = append(errs, fmt.Errorf("Dockerfile:%d: %s: %s (%s)", line, w.RuleName, w.Detail, w.URL))
	}
	if res.Error != nil {
		errs = append(errs, fmt.Errorf("Dockerfile: %s", res.Error.Message))
	}
	return errs
}

// dockerInput is what checkDockerfile reads: the Dockerfile, .dockerignore, the build
// context, and the settings it must agree with.
type dockerInput struct {
	dockerfile   []byte
	dockerignore []byte
	root         string             // the build context: the repository root
	goVersion    string             // go.mod's go directive
	env          map[string]envKind // what natgw serve reads
	k8sUser      int64              // runAsUser of the natgw Deployment
}

func readDockerInput(t *testing.T) dockerInput {
	t.Helper()
	root := repoRoot(t)
	in := dockerInput{root: root, env: serveEnv(t)}
	var err error
	if in.dockerfile, err = os.ReadFile(filepath.Join(root, "Dockerfile")); err != nil {
		t.Fatal(err)
	}
	if in.dockerignore, err = os.ReadFile(filepath.Join(root, ".dockerignore")); err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	in.goVersion = string(m[1])
	_, objs := loadK8s(t)
	sc := find[*appsv1.Deployment](t, objs, "natgw").Spec.Template.Spec.SecurityContext
	if sc == nil || sc.RunAsUser == nil {
		t.Fatal("deployment natgw sets no runAsUser")
	}
	in.k8sUser = *sc.RunAsUser
	return in
}

// TestDockerfile lints the Dockerfile with BuildKit and checks it with checkDockerfile.
func TestDockerfile(t *testing.T) {
	in := readDockerInput(t)
	for _, err := range lintDockerfile(in.dockerfile) {
		t.Error(err)
	}
	for _, err := range checkDockerfile(in) {
		t.Error(err)
	}
}

// TestDockerfileRejects shows that the linter and checkDockerfile fail on broken files.
func TestDockerfileRejects(t *testing.T) {
	orig := readDockerInput(t)
	tests := []struct {
		name     string
		ignore   bool // edit .dockerignore instead of the Dockerfile
		old, new string
		want     string
	}{
		{"lint: as casing", false, "AS build", "as build", "FromAsCasing"},
		{"lint: legacy ENV", false, "ENV CGO_ENABLED=1", "ENV CGO_ENABLED 1", "LegacyKeyValueFormat"},
		{"lint: undefined ARG in FROM", false, "golang:${GO_VERSION}-bookworm", "golang:${GO_VER}-bookworm", "UndefinedArgInFrom"},
		{"lint: shell-form ENTRYPOINT", false, `ENTRYPOINT ["/usr/local/bin/natgw"]`, "ENTRYPOINT /usr/local/bin/natgw", "JSONArgsRecommended"},
		{"parse error", false, "STOPSIGNAL SIGTERM", "STOPSIGNAL", "STOPSIGNAL"},
		{"root user", false, "USER 10001:10001", "USER root", "runs as root"},
		{"named user", false, "USER 10001:10001", "USER natgw", "numeric"},
		{"user differs from k8s", false, "USER 10001:10001", "USER 10002:10002", "runAsUser 10001"},
		{"no user", false, "USER 10001:10001\n", "", "no USER"},
		{"no healthcheck", false, "HEALTHCHECK --interval", "# HEALTHCHECK --interval", "no HEALTHCHECK"},
		{"healthcheck tool missing", false, "libstdc++6 busybox ca-certificates", "libstdc++6 ca-certificates", `"busybox" is not installed`},
		{"stop signal", false, "STOPSIGNAL SIGTERM", "STOPSIGNAL SIGINT", "STOPSIGNAL"},
		{"no trimpath", false, "go build -trimpath", "go build", "-trimpath"},
		{"no cgo", false, "ENV CGO_ENABLED=1", "ENV CGO_ENABLED=0", "CGO_ENABLED=1"},
		{"old go", false, "ARG GO_VERSION=1.26.8", "ARG GO_VERSION=1.25.3", "older than go.mod"},
		{"no openblas at run time", false, "libopenblas0 ", "", "libopenblas0"},
		{"ort path", false, "ONNXRUNTIME_LIB=/opt/onnxruntime/lib/libonnxruntime.so.1", "ONNXRUNTIME_LIB=/opt/onnxruntime/libonnxruntime.so.1", "ONNXRUNTIME_LIB"},
		{"unknown setting", false, "NATGW_MODELS=/srv/natgw/models", "NATGW_MODEL=/srv/natgw/models", "NATGW_MODEL: natgw serve reads no such variable"},
		{"expose", false, "EXPOSE 8080", "EXPOSE 9090", "does not EXPOSE 8080"},
		{"ignored sources", true, "**/testdata", "**/testdata\n**/*.c", "internal/cpu/kernels.c"},
		{"ignored copy source", true, "**/testdata", "**/testdata\nscripts", "COPY source scripts/install-onnxruntime.sh"},
		{"context not trimmed", true, ".git\n", "", ".git"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := orig
			target := &in.dockerfile
			if tt.ignore {
				target = &in.dockerignore
			}
			if !bytes.Contains(*target, []byte(tt.old)) {
				t.Fatalf("file no longer contains %q: update this case", tt.old)
			}
			*target = bytes.Replace(*target, []byte(tt.old), []byte(tt.new), 1)
			errs := append(lintDockerfile(in.dockerfile), checkDockerfile(in)...)
			if !errorsContain(errs, tt.want) {
				t.Fatalf("errors %v, want one containing %q", errs, tt.want)
			}
			t.Logf("rejected: %v", errs)
		})
	}
}

// checkDockerfile checks the image's build against what natgw needs: a cgo build with the
// release flags, onnxruntime and the models where the settings point, a non-root numeric
// user that matches Kubernetes' runAsUser, a health check whose tool is installed, and a
// build context that carries every file the build reads.
func checkDockerfile(in dockerInput) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf("Dockerfile: "+format, args...)) }
	ast, err := parser.Parse(bytes.NewReader(in.dockerfile))
	if err != nil {
		return []error{fmt.Errorf("Dockerfile: %w", err)}
	}
	stages, metaArgs, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		return []error{fmt.Errorf("Dockerfile: %w", err)}
	}
	if len(stages) < 2 {
		return []error{fmt.Errorf("Dockerfile: %d stages, want a build stage and a runtime stage", len(stages))}
	}
	args := map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				args[kv.Key] = *kv.Value
			}
		}
	}
	expand := func(s string) string {
		return os.Expand(s, func(k string) string { return args[k] })
	}
	byName := map[string]instructions.Stage{}
	for _, s := range stages {
		byName[s.Name] = s
	}

	// The Go build: golang on bookworm at least as new as go.mod, cgo, OpenBLAS headers,
	// release flags.
	var build *instructions.Stage
	for i, s := range stages {
		if strings.HasPrefix(expand(s.BaseName), "golang:") {
			build = &stages[i]
		}
	}
	if build == nil {
		fail("no stage FROM golang")
	} else {
		base := expand(build.BaseName)
		tag := strings.TrimPrefix(base, "golang:")
		ver, distro, _ := strings.Cut(tag, "-")
		switch {
		case distro != "bookworm":
			fail("build stage %s: want a bookworm golang image (the runtime is debian:bookworm-slim; glibc must match)", base)
		case !goversion.IsValid("go" + ver):
			fail("build stage %s: tag %q is no Go version", base, ver)
		case goversion.Compare("go"+ver, "go"+in.goVersion) < 0:
			fail("build stage %s: Go %s is older than go.mod's go %s", base, ver, in.goVersion)
		}
		env := stageEnv(*build)
		if env["CGO_ENABLED"] != "1" {
			fail("build stage: CGO_ENABLED=1 is not set (the CPU kernels and OpenBLAS need cgo)")
		}
		if !stageInstalls(*build, "libopenblas-dev") {
			fail("build stage: libopenblas-dev is not installed")
		}
		goBuild := ""
		for _, r := range runs(*build) {
			if strings.Contains(r, "go build") {
				goBuild = r
			}
		}
		if goBuild == "" {
			fail("build stage: no RUN go build")
		}
		for _, want := range []string{"-trimpath", "-s -w", "-X main.version=", "./cmd/natgw"} {
			if goBuild != "" && !strings.Contains(goBuild, want) {
				fail("build stage: go build lacks %s", want)
			}
		}
	}

	// The runtime stage.
	final := stages[len(stages)-1]
	if base := expand(final.BaseName); base != "debian:bookworm-slim" {
		fail("runtime stage FROM %s, want debian:bookworm-slim", base)
	}
	for _, pkg := range []string{"libopenblas0", "ca-certificates"} {
		if !stageInstalls(final, pkg) {
			fail("runtime stage: %s is not installed", pkg)
		}
	}
	env := stageEnv(final)
	for _, k := range sortedKeys(env) {
		if err := checkEnv(in.env, k, env[k]); err != nil {
			fail("ENV %v", err)
		}
	}
	copies := map[string]*instructions.CopyCommand{} // destination -> COPY
	var user, stopSignal string
	var health *instructions.HealthCheckCommand
	var entry *instructions.EntrypointCommand
	var exposed []string
	for _, s := range stages {
		for _, cmd := range s.Commands {
			if c, ok := cmd.(*instructions.CopyCommand); ok {
				if c.From != "" {
					if _, ok := byName[c.From]; !ok {
						fail("stage %s: COPY --from=%s names no stage", s.Name, c.From)
					}
				} else {
					errs = append(errs, checkCopySources(in, c.SourcePaths)...)
				}
			}
		}
	}
	for _, cmd := range final.Commands {
		switch c := cmd.(type) {
		case *instructions.CopyCommand:
			dest := c.DestPath
			if strings.HasSuffix(dest, "/") && len(c.SourcePaths) == 1 {
				dest += path.Base(c.SourcePaths[0])
			}
			copies[path.Clean(dest)] = c
		case *instructions.UserCommand:
			user = c.User
		case *instructions.HealthCheckCommand:
			health = c
		case *instructions.StopSignalCommand:
			stopSignal = c.Signal
		case *instructions.EntrypointCommand:
			entry = c
		case *instructions.ExposeCommand:
			exposed = append(exposed, c.Ports...)
		}
	}
	switch uid, gid, _ := strings.Cut(user, ":"); {
	case user == "":
		fail("no USER in the runtime stage: the image would run as root")
	case uid == "root" || uid == "0":
		fail("USER %s runs as root", user)
	default:
		n, err := strconv.ParseInt(uid, 10, 64)
		if err != nil {
			fail("USER %s: use a numeric uid so that Kubernetes' runAsNonRoot can verify it", user)
		} else if n != in.k8sUser {
			fail("USER %s but deploy/k8s runs the pod with runAsUser %d", user, in.k8sUser)
		}
		if gid == "0" {
			fail("USER %s: group root", user)
		}
	}
	if stopSignal != "SIGTERM" {
		fail("STOPSIGNAL %q, want SIGTERM (natgw drains on SIGTERM)", stopSignal)
	}
	port, err := addrPort(env)
	if err != nil {
		fail("%v", err)
	}
	if !slices.ContainsFunc(exposed, func(p string) bool { return strings.TrimSuffix(p, "/tcp") == strconv.Itoa(port) }) {
		fail("listens on %d (NATGW_ADDR) but does not EXPOSE %d (exposes %v)", port, port, exposed)
	}
	if health == nil || health.Health == nil || len(health.Health.Test) < 2 || health.Health.Test[0] == "NONE" {
		fail("no HEALTHCHECK in the runtime stage")
	} else {
		test := strings.Join(health.Health.Test[1:], " ")
		if !strings.Contains(test, "/v2/health/live") {
			fail("HEALTHCHECK %q does not ask /v2/health/live", test)
		}
		// The tool the check runs must be in the image: slim Debian has no curl or wget.
		tool := strings.Fields(test)[0]
		if _, copied := copies[tool]; !copied && !stageInstalls(final, path.Base(tool)) {
			fail("HEALTHCHECK runs %q but %q is not installed in the runtime stage", tool, path.Base(tool))
		}
	}
	if entry == nil || entry.PrependShell || len(entry.CmdLine) == 0 {
		fail("ENTRYPOINT must be in exec form, so that natgw is PID 1 and gets SIGTERM")
	} else if _, ok := copies[entry.CmdLine[0]]; !ok {
		fail("ENTRYPOINT %s is not a file copied into the runtime stage", entry.CmdLine[0])
	}
	// onnxruntime: ONNXRUNTIME_LIB names the library copied from the stage that ran the
	// repo's install script.
	ort, ok := copies[env[ortLibEnv]]
	switch {
	case env[ortLibEnv] == "":
		fail("%s is not set in the runtime stage", ortLibEnv)
	case !ok || ort.From == "":
		fail("%s=%s is not copied from a build stage", ortLibEnv, env[ortLibEnv])
	default:
		src := byName[ort.From]
		if !slices.ContainsFunc(runs(src), func(r string) bool { return strings.Contains(r, "scripts/install-onnxruntime.sh") }) {
			fail("stage %s does not run scripts/install-onnxruntime.sh", ort.From)
		}
		if len(ort.SourcePaths) != 1 || !strings.HasSuffix(ort.SourcePaths[0], "/third_party/onnxruntime/lib/libonnxruntime.so.1") {
			fail("%s is copied from %v, not from the install script's third_party/onnxruntime/lib/libonnxruntime.so.1", ortLibEnv, ort.SourcePaths)
		}
	}
	if models := env["NATGW_MODELS"]; models == "" {
		fail("NATGW_MODELS is not set in the runtime stage")
	} else if _, ok := copies[path.Clean(models)]; !ok {
		fail("NATGW_MODELS=%s is not a folder copied into the runtime stage", models)
	}
	errs = append(errs, checkContext(in)...)
	return errs
}

// stageEnv returns the ENV settings of a stage.
func stageEnv(s instructions.Stage) map[string]string {
	env := map[string]string{}
	for _, cmd := range s.Commands {
		if e, ok := cmd.(*instructions.EnvCommand); ok {
			for _, kv := range e.Env {
				env[kv.Key] = kv.Value
			}
		}
	}
	return env
}

// runs returns a stage's RUN command lines.
func runs(s instructions.Stage) []string {
	var out []string
	for _, cmd := range s.Commands {
		if r, ok := cmd.(*instructions.RunCommand); ok {
			out = append(out, strings.Join(r.CmdLine, " "))
		}
	}
	return out
}

// stageInstalls reports whether a RUN of the stage apt-get installs pkg.
func stageInstalls(s instructions.Stage, pkg string) bool {
	for _, r := range runs(s) {
		for _, part := range strings.Split(r, "&&") {
			f := strings.Fields(part)
			if len(f) > 2 && f[0] == "apt-get" && slices.Contains(f, "install") && slices.Contains(f[2:], pkg) {
				return true
			}
		}
	}
	return false
}

func ignoreMatcher(in dockerInput) (*patternmatcher.PatternMatcher, error) {
	patterns, err := ignorefile.ReadAll(bytes.NewReader(in.dockerignore))
	if err != nil {
		return nil, fmt.Errorf(".dockerignore: %w", err)
	}
	return patternmatcher.New(patterns)
}

// checkCopySources checks that COPY sources from the build context are not dockerignored.
func checkCopySources(in dockerInput, sources []string) []error {
	pm, err := ignoreMatcher(in)
	if err != nil {
		return []error{err}
	}
	var errs []error
	for _, src := range sources {
		src = path.Clean(src)
		if src == "." {
			continue
		}
		if ignored, err := pm.MatchesOrParentMatches(src); err != nil || ignored {
			errs = append(errs, fmt.Errorf("Dockerfile: COPY source %s is excluded by .dockerignore", src))
		}
	}
	return errs
}

// checkContext checks .dockerignore against the repository: every file that `go build`
// reads (non-test Go, C and assembly files, go:embed targets, go.mod, go.sum) and the models
// folder stay in the build context; the git history and the host's third_party copy stay out.
func checkContext(in dockerInput) []error {
	pm, err := ignoreMatcher(in)
	if err != nil {
		return []error{err}
	}
	var errs []error
	check := func(rel string) {
		if ignored, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel)); err != nil || ignored {
			errs = append(errs, fmt.Errorf(".dockerignore excludes %s, which the image build needs", rel))
		}
	}
	check("go.mod")
	check("go.sum")
	check("models")
	needed := map[string]bool{".go": true, ".c": true, ".h": true, ".s": true, ".S": true, ".syso": true}
	embed := regexp.MustCompile(`(?m)^//go:embed\s+(.+)$`)
	err = filepath.WalkDir(in.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(in.root, p)
		if d.IsDir() {
			if rel == "." {
				return nil
			}
			// Folders that go build skips: hidden, _-prefixed, testdata, nested modules.
			name := d.Name()
			if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
				return filepath.SkipDir
			}
			return nil
		}
		if !needed[filepath.Ext(p)] || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		check(rel)
		if filepath.Ext(p) == ".go" {
			src, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, m := range embed.FindAllSubmatch(src, -1) {
				for _, pat := range strings.Fields(string(m[1])) {
					matches, _ := filepath.Glob(filepath.Join(filepath.Dir(p), pat))
					for _, f := range matches {
						r, _ := filepath.Rel(in.root, f)
						check(r)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	for _, out := range []string{".git", "third_party"} {
		if ignored, _ := pm.MatchesOrParentMatches(out); !ignored {
			errs = append(errs, fmt.Errorf(".dockerignore does not exclude %s (it would bloat the context and bust the layer cache)", out))
		}
	}
	return errs
}
