// Command soak runs the fault script of package soak against the whole local
// pipeline and prints the counts. It exits 1 on any loss or duplicate (or any egress
// event not delivered and finalized exactly once), 2 when the script itself could
// not run.
//
//	go run ./infra/cmd/soak          # ~3 minutes, 100 notifications/s
//	go run ./infra/cmd/soak -short   # the CI version, about 1 minute
//	go run ./infra/cmd/soak -transport conduit   # the conduit script: two instances, one shard each
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/bitbrat/twitch-edge/infra/soak"
)

func main() {
	short := flag.Bool("short", false, "the CI version: short gaps between faults, fewer egress events")
	rate := flag.Int("rate", 0, "notifications per second (default 50 with -short, else 100)")
	every := flag.Duration("reconnect-every", 30*time.Second, "session_reconnect period")
	verbose := flag.Bool("v", false, "print the components' log lines")
	transport := flag.String("transport", "websocket", "websocket (the fault script) or conduit (two instances on a conduit: kill -9, rolling restart, shard disabled, channel added and removed)")
	flag.Parse()
	if *rate < 0 || *rate > 2000 {
		fmt.Fprintln(os.Stderr, "soak: -rate must be from 1 to 2000")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *transport != "websocket" && *transport != "conduit" {
		fmt.Fprintln(os.Stderr, "soak: -transport must be websocket or conduit")
		os.Exit(2)
	}
	o := soak.Options{Transport: *transport, Short: *short, Rate: *rate, ReconnectEvery: *every, Log: os.Stderr}
	if *verbose {
		o.Output = func(component, line string) { fmt.Fprintf(os.Stderr, "[%s] %s\n", component, line) }
	}
	res, err := soak.Run(ctx, o)
	if res != nil && len(res.Phases) > 0 {
		fmt.Print(res.String())
	}
	switch {
	case err != nil:
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	case !res.OK():
		os.Exit(1)
	}
}
