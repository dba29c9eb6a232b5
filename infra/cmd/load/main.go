// Command load runs the connector under increasing notification rates against the
// fake Twitch and the official Pub/Sub and Firestore emulators, measures the
// functions server's start-up, and writes the results: a Markdown table (stdout and
// OUT/load.md), an SVG plot (OUT/load.svg) and the raw figures (OUT/load.json).
//
//	go run ./infra/cmd/load                               # 500, 1000, 2000, 5000 /s, 60 s each
//	go run ./infra/cmd/load -rates 500,1000 -duration 10s # a quick look
//	go run ./infra/cmd/load -rates 1000,5000 -rounds 3    # medians of 3 interleaved rounds
//
// It exits 1 when a notification was lost or duplicated.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bitbrat/twitch-edge/infra/load"
	"github.com/bitbrat/twitch-edge/infra/stack"
)

func main() {
	if spec := os.Getenv(load.FloorSenderEnv); spec != "" {
		if err := load.FloorSend(spec); err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			os.Exit(1)
		}
		return
	}
	code, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func run() (int, error) {
	var (
		rates    = flag.String("rates", "500,1000,2000,5000", "notification rates per second, comma-separated, run in order")
		duration = flag.Duration("duration", 60*time.Second, "how long each rate runs")
		rounds   = flag.Int("rounds", 1, "run the list of rates this many times; the report adds the medians per rate")
		drain    = flag.Duration("drain", 30*time.Second, "give up waiting for a step's notifications after this long without progress")
		startup  = flag.Int("startup-runs", 5, "functions start-up measurements (median reported); 0 skips")
		out      = flag.String("out", "docs/perf", "results directory (relative to the module root unless absolute)")
		envEmu   = flag.Bool("env-emulators", false, "reuse PUBSUB_EMULATOR_HOST / FIRESTORE_EMULATOR_HOST instead of starting emulators")
		connEnv  = flag.String("connector-env", "", "further connector variables, KEY=VALUE,... (e.g. GOMEMLIMIT=32MiB)")
		connBin  = flag.String("connector-bin", "", "run this connector binary instead of building ./connector (compare builds side by side)")
		floor    = flag.Bool("floor", false, "only measure the floor: the CPU this Go process spends just reading 1 KB messages from a socket at each of -rates, for -duration each (no connector, no emulators)")
		render   = flag.String("render", "", "only re-render the table and plot from a load.json of an earlier run")
	)
	flag.Parse()
	if *render != "" {
		b, err := os.ReadFile(*render)
		if err != nil {
			return 1, fmt.Errorf("-render: %w", err)
		}
		var rep load.Report
		if err := json.Unmarshal(b, &rep); err != nil {
			return 1, fmt.Errorf("-render %s: %w", *render, err)
		}
		return 0, write(&rep, *out, "")
	}
	var rs []int
	for _, f := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 || n > 50_000 {
			return 2, fmt.Errorf("-rates: %q is not a rate from 1 to 50000", f)
		}
		rs = append(rs, n)
	}
	if *duration <= 0 || *duration > 10*time.Minute {
		return 2, fmt.Errorf("-duration must be positive and at most 10m")
	}
	if *floor {
		fmt.Printf("Socket-read floor, %s, GOMAXPROCS=%s, load average %s\n\n", time.Now().UTC().Format(time.RFC3339), os.Getenv("GOMAXPROCS"), loadavg())
		fmt.Println("| rate /s | messages | CPU s | CPU µs / message |\n|---:|---:|---:|---:|")
		for _, r := range rs {
			f, err := load.Floor(r, *duration)
			if err != nil {
				return 1, err
			}
			fmt.Printf("| %d | %d | %.3f | %.1f |\n", r, f.Messages, f.CPU.Seconds(), float64(f.PerMessage().Nanoseconds())/1e3)
		}
		fmt.Printf("\nload average at the end: %s\n", loadavg())
		return 0, nil
	}
	cenv := map[string]string{}
	for _, kv := range strings.Split(*connEnv, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return 2, fmt.Errorf("-connector-env: %q is not KEY=VALUE", kv)
		}
		cenv[k] = v
	}
	sr := *startup
	if sr == 0 {
		sr = -1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *rounds < 1 || *rounds > 20 {
		return 2, fmt.Errorf("-rounds must be from 1 to 20")
	}
	o := load.Options{Rates: rs, Rounds: *rounds, Duration: *duration, Drain: *drain, StartupRuns: sr, ConnectorEnv: cenv, ConnectorBin: *connBin, Log: os.Stderr}
	if *envEmu {
		o.PubSubHost, o.FirestoreHost = os.Getenv("PUBSUB_EMULATOR_HOST"), os.Getenv("FIRESTORE_EMULATOR_HOST")
	}
	rep, err := load.Run(ctx, o)
	if rep == nil || len(rep.Steps) == 0 {
		return 1, err
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load: stopped early:", err)
	}

	cmdline := strings.TrimSpace("go run ./infra/cmd/load " + strings.Join(os.Args[1:], " "))
	if werr := write(rep, *out, cmdline); werr != nil {
		return 1, werr
	}
	if err != nil {
		return 1, err
	}
	if !rep.OK() {
		return 1, fmt.Errorf("notifications were lost or duplicated (see the table)")
	}
	return 0, nil
}

// write prints the table and writes load.md, load.svg and load.json under dir
// (relative to the module root unless absolute). With an empty cmdline (a re-render)
// the JSON is left as it is.
func write(rep *load.Report, dir, cmdline string) error {
	if !filepath.IsAbs(dir) {
		root, err := stack.ModuleRoot()
		if err != nil {
			return err
		}
		dir = filepath.Join(root, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("results directory: %w", err)
	}
	if cmdline != "" {
		rep.Command = cmdline
	}
	md := rep.Markdown(rep.Command)
	fmt.Print(md)
	files := map[string][]byte{"load.md": []byte(md), "load.svg": []byte(rep.SVG())}
	if cmdline != "" {
		raw, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return fmt.Errorf("encode the results: %w", err)
		}
		files["load.json"] = raw
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	fmt.Fprintf(os.Stderr, "load: wrote the results to %s\n", dir)
	return nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
