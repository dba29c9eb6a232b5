package load

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Machine describes where figures were measured.
type Machine struct {
	CPUs      int
	CPUModel  string
	Memory    string // `free -h`'s Mem line
	GoVersion string
	Kernel    string
	Load      string // load average when the run started
}

// ReadMachine reads the machine's facts.
func ReadMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Load: LoadAverage()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if out, err := exec.Command("free", "-h").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "Mem:") {
				f := strings.Fields(l)
				if len(f) >= 2 {
					m.Memory = f[1] + " total"
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// String is one line for a report.
func (m Machine) String() string {
	return fmt.Sprintf("%d CPUs (%s), %s memory, Linux %s, %s, load average %s at start",
		m.CPUs, m.CPUModel, m.Memory, m.Kernel, m.GoVersion, m.Load)
}

// Targets from the issues (#19 on top of #11's).
const (
	TargetRSSAt1000 = 35 << 20
	TargetRSSAt5000 = 45 << 20
	TargetP99At1000 = 20 * time.Millisecond
	// TargetCPUAt1000 is whole-process CPU per notification, µs.
	TargetCPUAt1000 = 15.0
	TargetStartup   = 100 * time.Millisecond
)

// Markdown renders the report as Markdown tables.
// command is the command line to show (may be empty).
func (r *Report) Markdown(command string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s on %s.\n\n", r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Machine)
	if command != "" {
		fmt.Fprintf(&b, "Command: `%s`\n\n", command)
	}
	if len(r.ConnectorEnv) > 0 {
		var kv []string
		for k, v := range r.ConnectorEnv {
			kv = append(kv, k+"="+v)
		}
		sort.Strings(kv)
		fmt.Fprintf(&b, "Connector run with `%s`.\n\n", strings.Join(kv, " "))
	}
	if r.rounds() > 1 {
		b.WriteString(r.summaryMarkdown())
		b.WriteString("\nEvery step:\n\n")
	}
	b.WriteString("| rate /s | round | sent | delivered | duplicates | send time | e2e p50 | e2e p99 | e2e max | connector p50 | connector p99 | RSS peak | CPU s (per s) | CPU µs / notification | Firestore writes / reads per event | publishes (requests) per event | Pub/Sub emu CPU s | Firestore emu CPU s | buffer full | reconnects | load before → after |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---|\n")
	for _, s := range r.Steps {
		ok := ""
		if s.Delivered != s.Sent || s.Duplicates != 0 {
			ok = " ✗"
		}
		fmt.Fprintf(&b, "| %d | %d | %d | %d%s | %d | %.1f s | %s | %s | %s | %s | %s | %.1f MB | %.1f (%.2f) | %.1f | %.4f / %.4f | %.3f (%.4f) | %.1f | %.1f | %.0f | %.0f | %s → %s |\n",
			s.Rate, s.Round, s.Sent, s.Delivered, ok, s.Duplicates, s.SendTime.Seconds(),
			ms(s.E2EP50), ms(s.E2EP99), ms(s.E2EMax), ms(s.ConnP50), ms(s.ConnP99),
			mb(s.RSSPeak), s.CPU, s.CPU/math.Max(s.SendTime.Seconds(), 1e-9), s.CPUPerNotification(),
			s.PerEvent(s.Firestore.Writes), s.PerEvent(s.Firestore.Reads), s.PerEvent(s.PubSub.Published), s.PerEvent(s.PubSub.PublishRequests),
			s.PubSubCPU, s.FirestoreCPU, s.BufferFull, s.Reconnects, s.LoadBefore, s.LoadAfter)
	}
	b.WriteString("\n- *e2e*: the fake Twitch builds the frame (message_timestamp) → the Pub/Sub emulator accepts the publish (the message's publishTime), per notification, exact quantiles.\n")
	b.WriteString("- *connector*: the connector's own `relay_frame_to_publish_seconds` (frame read → publish acknowledged), from the histogram's delta over the step, interpolated within its buckets (the connector's `metrics.LatencyBuckets`).\n")
	b.WriteString("- *delivered*: distinct EventSub message ids on a pull subscription of the raw topic; *duplicates*: a message id published twice (a second Pub/Sub message id). Redeliveries by the subscription itself are not duplicates and are not counted.\n")
	b.WriteString("- *RSS peak*: the connector's VmHWM (reset before each step) and 100 ms samples of VmRSS; *CPU*: utime+stime from /proc, and per second of sending (1.0 = one full core); *CPU µs / notification*: that CPU time over the notifications sent (the whole process: socket, parse, publish, GC, timers); *emu CPU*: the same for the emulators' Java processes, which share the 2 cores.\n")
	b.WriteString("- *Firestore writes / reads*, *publishes (requests)*: counted by a gRPC proxy between the connector and each emulator (`infra/load/opcount`): documents written and read, messages and publish calls, per notification sent (the lease renewal and session state are in them too).\n")
	if su := r.Startup; su != nil {
		fmt.Fprintf(&b, "\nFunctions server start-up (median of %d runs; process start → ...):\n\n", su.Runs)
		b.WriteString("| first HTTP response | first Normalize push acknowledged | runs (listen / first) |\n|---:|---:|---|\n")
		var runs []string
		for i := range su.ListenAll {
			runs = append(runs, fmt.Sprintf("%.0f/%.0f", msf(su.ListenAll[i]), msf(su.FirstAll[i])))
		}
		fmt.Fprintf(&b, "| %s | %s | %s ms |\n", ms(su.Listen), ms(su.First), strings.Join(runs, ", "))
	}
	b.WriteString("\nTargets: ")
	b.WriteString(r.verdicts())
	b.WriteString("\n")
	return b.String()
}

func (r *Report) verdicts() string {
	var v []string
	for _, m := range r.Medians() {
		switch m.Rate {
		case 1000:
			v = append(v, fmt.Sprintf("at 1,000/s CPU %.1f µs per notification (target ≤ %.0f µs: %s), RSS %.1f MB (≤ 35 MB: %s), p99 e2e %s / connector %s (≤ 20 ms: %s)",
				m.CPUPerNotification, TargetCPUAt1000, pass(m.CPUPerNotification <= TargetCPUAt1000),
				mb(m.RSSPeak), pass(m.RSSPeak <= TargetRSSAt1000), ms(m.E2EP99), ms(m.ConnP99),
				pass(m.E2EP99 <= TargetP99At1000 && m.ConnP99 <= TargetP99At1000)))
		case 5000:
			v = append(v, fmt.Sprintf("RSS at 5,000/s %.1f MB (target ≤ 45 MB: %s)", mb(m.RSSPeak), pass(m.RSSPeak <= TargetRSSAt5000)))
		}
	}
	all := true
	for _, s := range r.Steps {
		all = all && s.Delivered == s.Sent && s.Duplicates == 0
	}
	v = append(v, fmt.Sprintf("delivered = sent and no duplicates at every rate: %s", pass(all)))
	if su := r.Startup; su != nil {
		v = append(v, fmt.Sprintf("functions start-up %s to first response, %s to first Normalize served (target ≤ 100 ms: %s)",
			ms(su.Listen), ms(su.First), pass(su.First <= TargetStartup)))
	}
	return strings.Join(v, "; ")
}

func pass(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// OK reports whether every step delivered everything exactly once.
func (r *Report) OK() bool {
	for _, s := range r.Steps {
		if s.Delivered != s.Sent || s.Duplicates != 0 {
			return false
		}
	}
	return true
}

// SVG draws two small panels: latency (e2e p50 and p99, connector p99) against rate,
// and the connector's peak RSS and CPU against rate. Hand-written SVG, no
// dependencies; rates are spaced evenly (they grow roughly geometrically).
func (r *Report) SVG() string {
	const (
		w, h         = 760, 320
		pw, ph       = 300, 200 // plot area of each panel
		left1, top   = 70, 50
		left2        = left1 + pw + 90
		bottomMargin = top + ph
	)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="18" font-size="13" font-weight="bold">Connector under load (%d CPUs, %s)</text>`+"\n", left1, r.Machine.CPUs, esc(r.Machine.GoVersion))
	steps := r.Medians()
	n := len(steps)
	if n == 0 {
		b.WriteString("</svg>\n")
		return b.String()
	}
	x := func(left, i int) float64 {
		if n == 1 {
			return float64(left) + pw/2
		}
		return float64(left) + 15 + float64(i)*float64(pw-30)/float64(n-1)
	}
	type series struct {
		name, color string
		v           []float64
		dash        bool
	}
	panel := func(left int, title, unit string, ss []series, target float64, targetLabel string, logScale bool) {
		maxV := target
		for _, s := range ss {
			for _, v := range s.v {
				maxV = math.Max(maxV, v)
			}
		}
		maxV = niceCeil(maxV * 1.1)
		y := func(v float64) float64 { return float64(top) + ph - v/maxV*ph }
		ticks := []float64{0, maxV / 4, maxV / 2, maxV * 3 / 4, maxV}
		if logScale { // 1 ms to the next decade above the largest value
			hi := math.Ceil(math.Log10(math.Max(maxV, 10)))
			y = func(v float64) float64 {
				return float64(top) + ph - math.Log10(math.Max(v, 1))/hi*ph
			}
			ticks = ticks[:0]
			for d := 0.0; d <= hi; d++ {
				ticks = append(ticks, math.Pow(10, d))
			}
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", left, top-12, esc(title))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", left, top, pw, ph)
		for _, v := range ticks {
			fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", left, left+pw, y(v), y(v))
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-4, y(v)+4, trim(v))
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" transform="rotate(-90 %d %d)">%s</text>`+"\n",
			left-45, top+ph/2, left-45, top+ph/2, esc(unit))
		for i, s := range steps {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", x(left, i), bottomMargin+14, s.Rate)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">notifications per second</text>`+"\n", left+pw/2, bottomMargin+30)
		if target > 0 {
			fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#c00" stroke-dasharray="2,3"/>`+"\n", left, left+pw, y(target), y(target))
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#c00">%s</text>`+"\n", left+pw-3, y(target)-3, esc(targetLabel))
		}
		for k, s := range ss {
			var pts []string
			for i, v := range s.v {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(left, i), y(v)))
			}
			dash := ""
			if s.dash {
				dash = ` stroke-dasharray="5,3"`
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), s.color, dash)
			for i, v := range s.v {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s at %d/s: %s %s</title></circle>`+"\n",
					x(left, i), y(v), s.color, esc(s.name), steps[i].Rate, trim(v), esc(unit))
			}
			fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2"%s/><text x="%d" y="%d">%s</text>`+"\n",
				left+8, left+26, top+14+k*14, top+14+k*14, s.color, dash, left+30, top+18+k*14, esc(s.name))
		}
	}
	var p50, p99, c99, rss, cpu []float64
	for _, s := range steps {
		p50 = append(p50, msf(s.E2EP50))
		p99 = append(p99, msf(s.E2EP99))
		c99 = append(c99, msf(s.ConnP99))
		rss = append(rss, mb(s.RSSPeak))
		cpu = append(cpu, s.CPUPerNotification)
	}
	panel(left1, "Frame → publish latency (log scale)", "milliseconds", []series{
		{"e2e p50", "#1f77b4", p50, false}, {"e2e p99", "#d62728", p99, false}, {"connector p99", "#ff7f0e", c99, true},
	}, msf(TargetP99At1000), "p99 target 20 ms (at 1,000/s)", true)
	panel(left2, "Connector memory and CPU per notification", "MB  /  µs", []series{
		{"RSS peak (MB)", "#2ca02c", rss, false}, {"CPU per notification (µs)", "#9467bd", cpu, true},
	}, 35, "RSS target 35 MB (at 1,000/s)", false)
	b.WriteString("</svg>\n")
	return b.String()
}

func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func trim(v float64) string {
	if v >= 100 || v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
