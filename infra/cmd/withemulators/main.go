// Command withemulators starts the Pub/Sub and Firestore emulators on free loopback
// ports, runs a command with PUBSUB_EMULATOR_HOST and FIRESTORE_EMULATOR_HOST set,
// and stops the emulators when the command ends (or on Ctrl-C). `make test` runs the
// whole test suite under it, so every package shares one pair of emulators.
//
//	go run ./infra/cmd/withemulators -- go test ./...
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/bitbrat/twitch-edge/shared/emulators"
)

func main() {
	code, err := run(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "withemulators:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func run(args []string) (int, error) {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		return 2, errors.New("usage: withemulators -- COMMAND [ARGS...]")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	for _, k := range []emulators.Kind{emulators.PubSub, emulators.Firestore} {
		if h := os.Getenv(k.EnvVar()); h != "" {
			fmt.Fprintf(os.Stderr, "withemulators: using the %s emulator at %s\n", k, h)
			continue
		}
		e, err := emulators.Start(ctx, k)
		if err != nil {
			return 1, err
		}
		defer e.Stop()
		os.Setenv(k.EnvVar(), e.Host)
		fmt.Fprintf(os.Stderr, "withemulators: %s emulator at %s\n", k, e.Host)
	}

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return 1, fmt.Errorf("start %s: %w", args[0], err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return exitCode(err), nil
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGINT)
		return exitCode(<-done), nil
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return 1
	}
	return 0
}
