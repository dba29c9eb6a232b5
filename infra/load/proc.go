package load

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It is 100 on
// every Linux architecture Go supports (the kernel's ABI fixes it, whatever HZ is).
const clockTicks = 100

// Mem is a process's resident memory, from /proc/PID/status.
type Mem struct {
	// RSS is VmRSS and Peak VmHWM (the high-water mark since start or the last
	// ResetPeak), in bytes.
	RSS, Peak int64
	// Anon and File split RSS: the heap, stacks and runtime against the binary's
	// mapped pages (which no setting of the Go runtime moves).
	Anon, File int64
}

// ReadMem reads pid's resident set size and its high-water mark.
func ReadMem(pid int) (Mem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Mem{}, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	var m Mem
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			m.RSS = kB(line)
		case strings.HasPrefix(line, "VmHWM:"):
			m.Peak = kB(line)
		case strings.HasPrefix(line, "RssAnon:"):
			m.Anon = kB(line)
		case strings.HasPrefix(line, "RssFile:"):
			m.File = kB(line)
		}
	}
	return m, nil
}

func kB(line string) int64 {
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.ParseInt(f[1], 10, 64)
	return n * 1024
}

// ResetPeak resets pid's VmHWM to its current RSS (writing 5 to clear_refs), so
// that the peak of each load step is its own.
func ResetPeak(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("reset the peak RSS of process %d: %w", pid, err)
	}
	return nil
}

// CPUSeconds is the user and system CPU time pid has used so far.
func CPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time of process %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces: count fields after its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("process %d: unexpected /proc stat %q", pid, b)
	}
	f := strings.Fields(string(b[i+1:]))
	// After ')' come state (field 3) ... utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("process %d: short /proc stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("process %d: bad utime/stime in /proc stat", pid)
	}
	return float64(ut+st) / clockTicks, nil
}

// LoadAverage is the first line of /proc/loadavg ("0.52 0.61 0.70 ...").
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return strings.TrimSpace(string(b))
	}
	return strings.Join(f[:3], " ")
}
