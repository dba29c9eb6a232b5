// Command local serves the Cloud Functions of this edge on one port with the
// functions framework, as `make run` and the end-to-end tests do:
//
//   - FUNCTION_TARGET unset: every function at /<Name>, and also at
//     /<Name>/projects/P/topics/T — point a Pub/Sub push subscription there and the
//     function sees the topic, as it does in the cloud.
//   - FUNCTION_TARGET=Name: only that function, at /.
//   - /metrics: the functions' metrics in the Prometheus format.
//
// PORT (default 8080) and HOST (default 127.0.0.1) choose the address.
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	"github.com/bitbrat/twitch-edge/functions"
)

func main() {
	if err := run(); err != nil {
		log.Fatalf("functions: %v", err)
	}
}

func run() error {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	host := os.Getenv("HOST")
	if host == "" {
		host = "127.0.0.1"
	}
	if os.Getenv("FUNCTION_TARGET") == "" {
		for name, fn := range functions.Handlers() {
			if err := funcframework.RegisterCloudEventFunctionContext(context.Background(), "/"+name+"/", fn); err != nil {
				return fmt.Errorf("register %s: %w", name, err)
			}
		}
	}
	// The instances' metrics, as the connector serves its own (the deployment pushes
	// them over OTLP instead).
	if err := funcframework.RegisterHTTPFunctionContext(context.Background(), "/metrics", functions.MetricsHandler().ServeHTTP); err != nil {
		return fmt.Errorf("register /metrics: %w", err)
	}
	fmt.Fprintf(os.Stderr, "functions: serving on http://%s:%s\n", host, port)
	return funcframework.StartHostPort(host, port)
}
