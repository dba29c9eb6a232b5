package load

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ListenerPID finds the process listening on hostPort (a loopback TCP address) from
// /proc: the socket's inode in /proc/net/tcp, then the process holding it. The load
// run uses it to read the Pub/Sub emulator's CPU time (its Java process is a
// grandchild, started by the emulator's wrapper script).
func ListenerPID(hostPort string) (int, error) {
	_, p, err := net.SplitHostPort(hostPort)
	if err != nil {
		return 0, fmt.Errorf("listener of %s: %w", hostPort, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return 0, fmt.Errorf("listener of %s: %w", hostPort, err)
	}
	inode := ""
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			// sl local_address rem_address st ... inode (field 9)
			if len(fs) < 10 || fs[3] != "0A" { // 0A: LISTEN
				continue
			}
			i := strings.LastIndexByte(fs[1], ':')
			if i < 0 {
				continue
			}
			if lp, err := strconv.ParseInt(fs[1][i+1:], 16, 32); err == nil && int(lp) == port {
				inode = fs[9]
				break
			}
		}
		f.Close()
		if inode != "" {
			break
		}
	}
	if inode == "" {
		return 0, fmt.Errorf("no process listens on %s", hostPort)
	}
	want := "socket:[" + inode + "]"
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range procs {
		fds, _ := filepath.Glob(dir + "/fd/*")
		for _, fd := range fds {
			if l, err := os.Readlink(fd); err == nil && l == want {
				return strconv.Atoi(filepath.Base(dir))
			}
		}
	}
	return 0, fmt.Errorf("the process listening on %s is not visible in /proc", hostPort)
}
