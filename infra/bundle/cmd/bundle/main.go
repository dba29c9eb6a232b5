// Command bundle writes the Cloud Functions deploy zip (the same files Terraform's
// archive_file uploads, in the same order, without timestamps) and prints its MD5 and
// the object name that MD5 gives.
//
//	go run ./infra/bundle/cmd/bundle [-o function-source.zip] [-list]
//
// The zip can also be deployed by hand:
// unzip it into a directory and run `gcloud functions deploy NAME --gen2 --source DIR ...`.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bitbrat/twitch-edge/infra/bundle"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bundle:", err)
		os.Exit(1)
	}
}

func run() error {
	out := flag.String("o", filepath.Join(os.TempDir(), "function-source.zip"), "where to write the zip")
	root := flag.String("root", "", "repository root (default: the directory of the go.mod above the working directory)")
	list := flag.Bool("list", false, "print the files in the zip")
	flag.Parse()

	dir := *root
	if dir == "" {
		var err error
		if dir, err = bundle.RepoRoot("."); err != nil {
			return err
		}
	}
	spec, err := bundle.LoadSpec()
	if err != nil {
		return err
	}
	res, err := spec.Build(dir, *out)
	if err != nil {
		return err
	}
	if *list {
		for _, f := range res.Files {
			fmt.Println(f.Name)
		}
	}
	fmt.Printf("wrote %s: %d files, md5 %s, object %s\n", res.Path, len(res.Files), res.MD5, bundle.ObjectName(res.MD5))
	return nil
}
