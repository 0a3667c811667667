package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// command is one subcommand: its name path ("subnet info"), a one-line summary and its body.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *cli, args []string) error
}

// cli carries what every command writes to; tests swap them.
type cli struct {
	stdout, stderr io.Writer
}

// usageError marks bad command lines: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// oneLine keeps a joined error on a single stderr line.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

func commands() []command {
	return []command{
		{"subnet info", "print a subnet's canonical arch, MAdds and params as JSON", cmdSubnetInfo},
		{"subnet forward", "run a subnet on raw float32 NCHW input, write raw float32 logits", cmdSubnetForward},
		{"supernet convert", "convert a checkpoint between OFA .pth and natgw's native format", cmdSupernetConvert},
		{"serve", "run the gateway (REST API, ONNX downloads, inference, OIP v2, metrics)", cmdServe},
		{"supernet average", "write the element-wise mean of checkpoints of one spec (weight averaging)", cmdSupernetAverage},
		{"supernet info", "describe a checkpoint: spec, tensors, metadata", cmdSupernetInfo},
		{"export", "export a subnet to ONNX with task, labels and preprocessing metadata", cmdExport},
		{"infer", "classify an image with an exported ONNX model (top-k labels and probabilities)", cmdInfer},
		{"search", "NAT search: measure subnets on a data set into a resumable archive", cmdSearch},
		{"train", "train a supernet with the sandwich rule (largest, smallest, random subnets) and save it", cmdTrain},
		{"front", "print an archive's accuracy/MAdds front as JSON, optionally plot it", cmdFront},
		{"adapt", "NAT adaptation: alternate archive-guided fine-tuning and search, write a servable task folder", cmdAdapt},
		{"tune-crop", "choose a task's eval centre crop per resolution on val and re-measure its archive with it", cmdTuneCrop},
		{"task create", "build a task from a labelled image folder: import, warm-up, NAT adaptation, eval crops, test evaluation (resumable)", cmdTaskCreate},
		{"task calibrate", "store a task's BatchNorm statistics (and val images) so that serving needs no forward pass", cmdTaskCalibrate},
		{"evaluate", "final evaluation: measure a task's front on a held-out split as served, record test_top1", cmdEvaluate},
		{"import-tflite", "import TensorFlow Lite's quantized MobileNetV2 as a natgw supernet (BatchNorm restored by calibration)", cmdImportTFLite},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env := &cli{stdout: stdout, stderr: stderr}
	cmds := commands()
	for n := min(2, len(args)); n >= 1; n-- {
		name := strings.Join(args[:n], " ")
		for _, c := range cmds {
			if c.name == name {
				return c.run(ctx, env, args[n:])
			}
		}
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printUsage(stdout, cmds)
		return nil
	}
	printUsage(stderr, cmds)
	return usageError{fmt.Sprintf("unknown command %q", strings.Join(args, " "))}
}

func printUsage(w io.Writer, cmds []command) {
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	fmt.Fprintln(w, "usage: natgw <command> [flags]\n\ncommands:")
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-18s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'natgw <command> -h' for a command's flags.")
}

// newFlags makes a flag set that reports errors instead of exiting.
func newFlags(env *cli, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("natgw "+name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	return fs
}

// parse parses flags and turns their errors into usage errors; -h returns flag.ErrHelp
// which callers pass up as success.
func parse(fs *flag.FlagSet, args []string, required ...string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	for _, r := range required {
		if f := fs.Lookup(r); f != nil && f.Value.String() == "" {
			return usageError{fmt.Sprintf("%s: --%s is required", fs.Name(), r)}
		}
	}
	return nil
}

// helpOK maps -h to a clean exit.
func helpOK(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}
