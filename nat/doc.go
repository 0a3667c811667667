// Package nat builds tasks: Neural Architecture Transfer (Lu et al., "Neural Architecture
// Transfer", TPAMI 2021) over natgw's weight-sharing supernets, as a library that the natgw
// commands and the gateway call.
//
// # The recipe
//
// Create turns a labelled image folder into a served task folder in six stages, each
// resumable from its work folder (a rerun after a kill skips what is done and continues
// what is not, to the same files):
//
//	data     CheckData: the layout, the classes and every image checked before any training
//	         (refusals name each problem: a *DataError); a val split sliced from train when
//	         there is none (stratified, seeded, recorded in task.json)
//	import   Import: the ImageNet-pretrained TensorFlow Lite MobileNetV2 as the largest
//	         subnet of natgw's elastic MobileNetV2 space, BatchNorm rebuilt on train images
//	warm-up  Train: the whole supernet on the task (sandwich rule), its new head at N(0, σ²)
//	adapt    Run: NAT's rounds (below), then the task folder
//	crops    ChooseCrops: the eval centre crop per input size, chosen on val
//	test     Evaluate: the front measured on the test split, recorded as test_top1
//
// A Recipe holds every stage's settings; Presets name recipes ("standard" built the shipped
// Flowers task, "quick" a small task in minutes). The test split is opened by the final
// evaluation only (CheckData decodes and hashes its files, to refuse broken ones and warn of
// images shared with train or val, and nothing else reads them before).
//
// # The adaptation
//
// Run alternates, for Config.Iterations rounds, a surrogate-assisted NSGA-II search of the
// current weights (package specializer; the previous round's best measured again first)
// with fine-tuning on subnets drawn from the archive's elite (package trainer), then searches
// the final weights — averaged over the last rounds and rounded to float16 as configured —
// whose archive the task serves, pre-resolving standard budgets so that those answers are
// measured. It writes the task folder (package task): manifest, supernet, labels, archive,
// calibration and val images, and every measured subnet's BatchNorm statistics. Config
// .Validate refuses settings out of range before any work, as a *ConfigError naming each
// field; Result reports every round.
//
// # Identity and progress
//
// Weights are identified by supernet.Supernet.Version (a digest of the tensors), which
// archives, stored statistics and the gateway's caches are keyed by. Long runs report
// Events through a Progress function: the stage, units done of the stage's total, a line
// for people, and the whole run's elapsed time, fraction done and ETA, priced at the run's
// own pace.
package nat
