// Package dataset reads image-folder data sets laid out as
// <root>/<split>/<class>/<file> (JPEG or PNG) and turns them into batches of
// NCHW float32 tensors for training and evaluation.
//
// Class indices are the positions of the class folder names in sorted order,
// taken over all splits of the root so that train and eval agree even when a
// split lacks a class. Human-readable labels come from a classes file in the
// root when there is one (classes.tsv or classes.txt, tab-separated: the row
// whose field equals a folder name gives that class, its last field is the
// label; an index column, when present, must agree with the sorted order).
//
// [Loader] decodes on several goroutines but delivers batches in order, and
// all augmentation randomness comes from a generator seeded by (seed, epoch,
// item index), so the batches of an epoch do not depend on the number of
// workers or on scheduling. Eval batches are produced by
// preprocess.Spec.Tensor itself. Unreadable or corrupt files are skipped with
// a warning and counted, so a batch can hold fewer than Batch items
// (Batch.N says how many).
package dataset
