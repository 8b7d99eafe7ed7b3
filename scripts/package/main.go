package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// commands lists what run accepts, for error messages.
const commands = "build (compile the binaries), zip (the extension package) or deb (the agent's .deb); " +
	"go run ./scripts/package <command> -h lists a command's flags"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Getenv)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "package:", err)
		os.Exit(2)
	}
}

// run executes one command; it prints the paths it wrote to out.
func run(ctx context.Context, args []string, out io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return errors.New("no command: want " + commands)
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	arches := fs.String("arches", "amd64,arm64", "comma-separated Go architectures")
	binDir := fs.String("bins", "dist/build", "directory of linux_<arch>/<binary>: build writes it, zip and deb read it")
	outDir := fs.String("out", "dist", "output directory")
	ext := fs.String("ext", "extension.json", "extension identity (publisher, type, version)")
	unit := fs.String("unit", "agent/unitfile/msp-agent.service", "systemd unit of the agent")
	switch args[0] {
	case "build":
		module := fs.String("module", ".", "module root the cmd/ packages are built from")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		pkgs := map[string]string{}
		for _, name := range zipBinaries {
			pkgs[name] = "./cmd/" + name
		}
		if err := buildBinaries(ctx, *module, *binDir, splitList(*arches), pkgs); err != nil {
			return err
		}
		fmt.Fprintln(out, *binDir)
		return nil
	case "zip":
		hm := fs.String("handler-manifest", "manifest/HandlerManifest.json", "HandlerManifest.json")
		xml := fs.String("manifest-xml", "", "manifest.xml (ExtensionImage definition); optional")
		config := fs.String("config", "", "default agent config, shipped as payload/config.json; optional")
		schemas := fs.String("schemas", "", "comma-separated directories whose *.json go to payload/schema/")
		id, epoch, err := parseArchiveFlags(fs, args[1:], ext, getenv)
		if err != nil {
			return err
		}
		path, err := writeZip(zipConfig{ID: id, BinDir: *binDir, Arches: splitList(*arches),
			HandlerManifest: *hm, ManifestXML: *xml, Unit: *unit, Config: *config,
			SchemaDirs: splitList(*schemas), OutDir: *outDir, Epoch: epoch})
		if err != nil {
			return err
		}
		fmt.Fprintln(out, path)
		return nil
	case "deb":
		maintainer := fs.String("maintainer", "MSP guest maintainers <msp-guest@example.invalid>", "Maintainer field")
		id, epoch, err := parseArchiveFlags(fs, args[1:], ext, getenv)
		if err != nil {
			return err
		}
		for _, arch := range splitList(*arches) {
			path, err := writeDeb(debConfig{Version: id.Version, Arch: arch,
				Agent: binaryPath(*binDir, arch, "msp-agent"), Unit: *unit, Maintainer: *maintainer,
				Description: id.Description, OutDir: *outDir, Epoch: epoch})
			if err != nil {
				return fmt.Errorf("deb %s: %w", arch, err)
			}
			fmt.Fprintln(out, path)
		}
		return nil
	default:
		return fmt.Errorf("unknown command %q: want %s", args[0], commands)
	}
}

// parseArchiveFlags parses a zip or deb command line and reads what both
// archives need: the extension identity and the entries' mtime.
func parseArchiveFlags(fs *flag.FlagSet, args []string, ext *string, getenv func(string) string) (identity, time.Time, error) {
	if err := fs.Parse(args); err != nil {
		return identity{}, time.Time{}, err
	}
	id, err := readIdentity(*ext)
	if err != nil {
		return identity{}, time.Time{}, err
	}
	epoch, err := sourceDateEpoch(getenv)
	return id, epoch, err
}
