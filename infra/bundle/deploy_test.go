package bundle

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/bitbrat/twitch-edge/shared/emulators"
)

// builderMain is the main package Cloud Functions' Go builder generates for a function
// whose framework version supports declarative registration: it blank-imports the
// function's package (our root package) and starts the framework, which serves the
// function named by FUNCTION_TARGET at "/".
const builderMain = `package main

import (
	"log"
	"net/http"
	"os"

	_ %q

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"
)

func main() {
	http.HandleFunc("/robots.txt", http.NotFound)
	http.HandleFunc("/favicon.ico", http.NotFound)
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	if err := funcframework.Start(port); err != nil {
		log.Fatalf("Function failed to start: %%v\n", err)
	}
}
`

// The builder moves the uploaded source into this directory and writes its main into
// <it>/functions.local/app, inside the function's own module.
const (
	builderSourceDir = "serverless_function_source_code"
	builderAppDir    = "functions.local/app"
)

// TestBundleServesEntryPoints is the deploy acceptance test. It builds the zip
// Terraform uploads, unpacks it and builds it the way Cloud Functions' Go builder does
// (offline: only the module cache), then starts the binary once per entry point that
// Terraform deploys (terraform/main.tf), with that function's environment as Terraform
// sets it and the real Pub/Sub and Firestore emulators, and pushes it a Pub/Sub message
// the way our push subscriptions do. The message is not JSON: each function must
// acknowledge it (2xx) and dead-letter it, which shows it was served, configured and
// able to reach Pub/Sub.
func TestBundleServesEntryPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the deploy bundle and starts the emulators")
	}
	repo := repoRoot(t)
	s := loadSpec(t)
	targets := terraformEntryPoints(t, repo)

	work := t.TempDir()
	res, err := s.Build(repo, filepath.Join(work, "function-source.zip"))
	if err != nil {
		t.Fatal(err)
	}
	// The bundle is built offline (GOPROXY=off). Make sure the module cache holds what
	// the functions package needs, as any build in the repository would.
	prime := exec.Command("go", "list", "-deps", "./functions")
	prime.Dir = repo
	if out, err := prime.CombinedOutput(); err != nil {
		t.Fatalf("go list -deps ./functions: %v\n%s", err, out)
	}

	src := filepath.Join(work, "workspace", builderSourceDir)
	unzip(t, res.Path, src)
	bin := buildLikeCloudFunctions(t, src, filepath.Join(work, "function"))

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	psHost, fsHost := emulatorHost(t, ctx, emulators.PubSub), emulatorHost(t, ctx, emulators.Firestore)
	t.Setenv("PUBSUB_EMULATOR_HOST", psHost)

	project := emulators.ProjectID(t)
	const busPrefix = "bundle."
	topic := func(name string) string { return busPrefix + name }
	trigger := map[string]string{ // entry point → the topic its subscription is on
		"Normalize":     topic("twitch.eventsub.raw.v1"),
		"EgressChat":    topic("internal.egress.v1"),
		"EgressWhisper": topic("twitch.egress.whisper.v1"),
		"Finalize":      topic("internal.persistence.finalize.v1"),
	}
	deadLetters := receiveDeadLetters(t, ctx, project, busPrefix)

	for _, name := range targets {
		t.Run(name, func(t *testing.T) {
			env := functionEnv(name, project, busPrefix, psHost, fsHost)
			if env == nil {
				t.Fatalf("no environment known for entry point %s: add it to functionEnv (as in terraform/main.tf)", name)
			}
			addr, logs, stop := startFunction(t, bin, name, env)
			defer stop()

			body := pushBody([]byte("this is not JSON {"))
			url := fmt.Sprintf("http://%s/projects/%s/topics/%s", addr, project, trigger[name])
			resp, err := http.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatalf("POST %s: %v\n%s", url, err, logs())
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				t.Fatalf("%s answered %d %s to a Pub/Sub push of a poison message, want 2xx (acknowledged after dead-lettering)\nlogs:\n%s",
					name, resp.StatusCode, answer, logs())
			}
			select {
			case m := <-deadLetters:
				var dl struct {
					Type string `json:"type"`
				}
				if err := json.Unmarshal(m, &dl); err != nil || dl.Type != "system.deadletter.v1" {
					t.Errorf("dead letter from %s is %s, want a system.deadletter.v1 record", name, m)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("%s acknowledged the poison message but nothing reached %s\nlogs:\n%s", name, topic("internal.deadletter.v1"), logs())
			}
		})
	}
}

// terraformEntryPoints returns the entry points terraform/main.tf deploys.
func terraformEntryPoints(t *testing.T, repo string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "terraform", "main.tf"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\s*entry_point\s*=\s*"(\w+)"`).FindAllSubmatch(b, -1) {
		names = append(names, string(m[1]))
	}
	if len(names) != 4 {
		t.Fatalf("terraform/main.tf deploys %q, want the four entry points", names)
	}
	return names
}

// functionEnv is the environment Terraform gives each function (terraform/main.tf:
// common_env, twitch_env for the Twitch callers and each function's own), with the
// emulators instead of Google Cloud and an unreachable Twitch, plus what the Cloud
// Functions runtime sets itself.
func functionEnv(name, project, busPrefix, psHost, fsHost string) []string {
	env := []string{
		"GOOGLE_CLOUD_PROJECT=" + project,
		"FIRESTORE_DATABASE=(default)",
		"BUS_PREFIX=" + busPrefix,
		"LOG_LEVEL=debug",
		"PUBSUB_EMULATOR_HOST=" + psHost,
		"FIRESTORE_EMULATOR_HOST=" + fsHost,
		"FUNCTION_TARGET=" + name,
		"FUNCTION_SIGNATURE_TYPE=http", // deployed without an Eventarc trigger
		"K_SERVICE=" + strings.ToLower(name),
		"K_REVISION=" + strings.ToLower(name) + "-00001",
		"HOME=" + os.TempDir(),
		"TMPDIR=" + os.TempDir(),
	}
	twitch := []string{
		"TWITCH_CLIENT_ID=bundle-test-client",
		"TWITCH_CLIENT_SECRET=bundle-test-secret", // a Secret Manager env var in the cloud
		"TWITCH_BOT_USER_ID=12345",
		"TWITCH_API_BASE_URL=http://127.0.0.1:9/helix", // nothing listens: no call may be needed
		"TWITCH_AUTH_BASE_URL=http://127.0.0.1:9/oauth2",
	}
	switch name {
	case "Normalize":
		return append(env, "NORMALIZE_MAX_AGE=24h")
	case "EgressChat":
		return append(append(env, twitch...), "WHISPER_TOPIC=twitch.egress.whisper.v1")
	case "EgressWhisper":
		return append(env, twitch...)
	case "Finalize":
		return append(env, "EVENT_TTL=168h")
	}
	return nil
}

func unzip(t *testing.T, zipPath, dir string) {
	t.Helper()
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
			t.Fatalf("zip entry %q escapes the directory", f.Name)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// buildLikeCloudFunctions does what the Go builder does with a go.mod source: find the
// root package, write the generated main into the function's module, resolve modules
// (go mod tidy) and build it. GOPROXY=off: everything must come from go.mod, go.sum and
// the module cache.
func buildLikeCloudFunctions(t *testing.T, src, out string) string {
	t.Helper()
	gomod, err := os.ReadFile(filepath.Join(src, "go.mod"))
	if err != nil {
		t.Fatalf("the zip has no go.mod at its root: %v", err)
	}
	module := ModulePath(gomod)

	// The builder reads the package name of the .go files at the root and builds
	// <module>/<name> if such a directory exists, else the module's root package.
	files, err := filepath.Glob(filepath.Join(src, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]bool{}
	for _, f := range files {
		pf, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.PackageClauseOnly)
		if err != nil {
			t.Fatal(err)
		}
		pkgs[pf.Name.Name] = true
	}
	if len(pkgs) != 1 {
		t.Fatalf("the zip root holds packages %v, want exactly one", pkgs)
	}
	for name := range pkgs {
		if name == "main" {
			t.Fatal("the zip's root package is main; the builder needs a library package")
		}
		if _, err := os.Stat(filepath.Join(src, name)); err == nil {
			t.Fatalf("the zip has a directory %q like its root package: the builder would build that instead", name)
		}
	}

	app := filepath.Join(src, filepath.FromSlash(builderAppDir))
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(app, "main.go"), fmt.Appendf(nil, builderMain, module), 0o644); err != nil {
		t.Fatal(err)
	}
	goEnv := append(os.Environ(),
		"GOPROXY=off", "GOFLAGS=-mod=mod -buildvcs=false", "GOTOOLCHAIN=local", "GOWORK=off", "CGO_ENABLED=0")
	run := func(args ...string) {
		cmd := exec.Command("go", args...)
		cmd.Dir, cmd.Env = src, goEnv
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s in the unpacked bundle: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("mod", "tidy")
	start := time.Now()
	run("build", "-o", out, "./"+builderAppDir)
	t.Logf("built the bundle like Cloud Functions' Go builder in %s", time.Since(start).Round(time.Second))
	return out
}

// emulatorHost returns a running emulator of kind: the one named by its environment
// variable (make test starts both once), else one started for this test.
func emulatorHost(t *testing.T, ctx context.Context, kind emulators.Kind) string {
	t.Helper()
	if h := os.Getenv(kind.EnvVar()); h != "" {
		return h
	}
	e, err := emulators.Start(ctx, kind)
	if err != nil {
		t.Fatalf("start the %s emulator: %v", kind, err)
	}
	t.Cleanup(e.Stop)
	return e.Host
}

// receiveDeadLetters creates every topic Terraform creates (prefix applied) in the
// emulator, subscribes to the dead-letter topic and delivers what arrives there.
func receiveDeadLetters(t *testing.T, ctx context.Context, project, busPrefix string) <-chan []byte {
	t.Helper()
	client, err := pubsub.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	for _, name := range []string{
		"twitch.eventsub.raw.v1", "internal.ingress.v1", "internal.egress.v1", "twitch.egress.whisper.v1",
		"internal.persistence.finalize.v1", "internal.deadletter.v1",
	} {
		if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{
			Name: fmt.Sprintf("projects/%s/topics/%s%s", project, busPrefix, name),
		}); err != nil {
			t.Fatalf("create topic %s: %v", name, err)
		}
	}
	sub := fmt.Sprintf("projects/%s/subscriptions/deadletter-inspect", project)
	if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name:  sub,
		Topic: fmt.Sprintf("projects/%s/topics/%sinternal.deadletter.v1", project, busPrefix),
	}); err != nil {
		t.Fatalf("create subscription: %v", err)
	}
	ch := make(chan []byte, 16)
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = client.Subscriber(sub).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
			m.Ack()
			select {
			case ch <- m.Data:
			default:
			}
		})
	}()
	t.Cleanup(func() { stop(); wg.Wait() })
	return ch
}

// pushBody is the envelope a Pub/Sub push subscription POSTs.
func pushBody(data []byte) []byte {
	b, _ := json.Marshal(map[string]any{
		"message": map[string]any{
			"data":        base64.StdEncoding.EncodeToString(data),
			"messageId":   "1",
			"publishTime": time.Now().UTC().Format(time.RFC3339Nano),
			"attributes":  map[string]string{},
		},
		"subscription": "projects/p/subscriptions/s",
	})
	return b
}

// startFunction runs the built function as FUNCTION_TARGET=name on a free loopback port
// and waits until it accepts connections. It returns the address, a way to read its
// output, and a stop function.
func startFunction(t *testing.T, bin, name string, env []string) (addr string, logs func() string, stop func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	addr = "127.0.0.1:" + strconv.Itoa(port)

	var out lockedBuffer
	cmd := exec.Command(bin)
	cmd.Env = append(env, "PORT="+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return addr, out.String, stop
		}
		select {
		case <-exited:
			t.Fatalf("%s exited before serving:\n%s", name, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("%s did not listen on %s within 20s:\n%s", name, addr, out.String())
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
