package load

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FloorSenderEnv marks the child process Floor starts as its sender: the address
// to write to, then the rate and the count ("ADDR,RATE,N").
const FloorSenderEnv = "BITBRAT_LOAD_FLOOR_SENDER"

// FloorResult is the CPU a Go process spends only reading messages from a socket.
type FloorResult struct {
	Rate, Messages int
	Elapsed, CPU   time.Duration
}

// PerMessage is the reader's CPU time per message.
func (f FloorResult) PerMessage() time.Duration {
	if f.Messages == 0 {
		return 0
	}
	return f.CPU / time.Duration(f.Messages)
}

// Floor measures the least a Go process can spend per notification at rate: it
// reads 1,078-byte messages (the load run's frame size) from a loopback TCP socket,
// written by a separate process at rate for d, and does nothing else. Its CPU time
// (getrusage, the whole process) over the messages is what the runtime costs per
// wake-up on this machine: the netpoller's epoll wait, the threads parked and woken,
// sysmon's 20 µs polling while the process keeps entering syscalls. The connector
// cannot spend less than this per frame; the rest of its time is its own work.
func Floor(rate int, d time.Duration) (FloorResult, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return FloorResult{}, fmt.Errorf("floor: listen: %w", err)
	}
	defer ln.Close()
	self, err := os.Executable()
	if err != nil {
		return FloorResult{}, fmt.Errorf("floor: %w", err)
	}
	n := int(d.Seconds() * float64(rate))
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), FloorSenderEnv+"="+ln.Addr().String()+","+strconv.Itoa(rate)+","+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return FloorResult{}, fmt.Errorf("floor: start the sender: %w", err)
	}
	defer func() { _ = cmd.Wait() }()
	if err := ln.(*net.TCPListener).SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return FloorResult{}, err
	}
	c, err := ln.Accept()
	if err != nil {
		_ = cmd.Process.Kill()
		return FloorResult{}, fmt.Errorf("floor: the sender did not connect: %w", err)
	}
	defer c.Close()
	if err := c.SetReadDeadline(time.Now().Add(d + 30*time.Second)); err != nil {
		return FloorResult{}, err
	}
	buf := make([]byte, floorMessage)
	cpu0, t0 := processCPU(), time.Now()
	got := 0
	for ; got < n; got++ {
		if _, err := io.ReadFull(c, buf); err != nil {
			return FloorResult{}, fmt.Errorf("floor: read message %d of %d: %w", got+1, n, err)
		}
	}
	return FloorResult{Rate: rate, Messages: got, Elapsed: time.Since(t0), CPU: processCPU() - cpu0}, nil
}

const floorMessage = 1078

// FloorSend is the sender's side (the child process): spec is FloorSenderEnv's
// value. It writes one message per write at the rate, catching up when late.
func FloorSend(spec string) error {
	var addr string
	var rate, n int
	if _, err := fmt.Sscanf(strings.ReplaceAll(spec, ",", " "), "%s %d %d", &addr, &rate, &n); err != nil || rate <= 0 {
		return fmt.Errorf("floor sender: bad spec %q", spec)
	}
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return fmt.Errorf("floor sender: %w", err)
	}
	defer c.Close()
	msg := make([]byte, floorMessage)
	start := time.Now()
	for i := 0; i < n; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); wait > 0 {
			time.Sleep(wait)
		}
		if _, err := c.Write(msg); err != nil {
			return fmt.Errorf("floor sender: write: %w", err)
		}
	}
	return nil
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
