"""`hf-kd`: run distillation recipes from the command line.

    hf-kd distill RECIPE.yaml [--section.field VALUE ...]
    hf-kd evaluate --model PATH --recipe RECIPE.yaml [--split validation] [--side student] [--section.field VALUE ...]
    hf-kd search RECIPE.yaml [--n_trials N] [--n_particles P] [--section.field VALUE ...]
    hf-kd init --train FILE [--validation FILE] [--test FILE] [--unlabeled FILE ...] --model TEACHER [--target T]
    hf-kd export MODEL_DIR --output OUT [--quantize int8] [--triton DIR]
    hf-kd predict MODEL FILE [FILE ...] --output OUT [--text_column C] [--id_column C] [--logits]

`--shared-cpu` (with any command) suits a server whose cores other work uses too: passive OpenMP waits, half the
cores, no onnxruntime spinning (`share_cpu`).

Works the same under `accelerate launch -m hf_kd.cli ...`: every process runs the command, only the main process
prints. The module imports only the standard library at first; a command imports what it needs when it runs, so
`hf-kd --help` answers at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["SHARED_CPU_FLAG", "build_parser", "main", "share_cpu"]

COMMANDS = {
    "distill": "Run (or resume) a distillation recipe: teacher fine-tuning, gate, cached logits, student, report.",
    "evaluate": "Evaluate a saved classifier on a split of a recipe's data, with the pipeline's metrics.",
    "search": "Search the student's distillation hyperparameters (particle swarm, or Optuna's TPE / random).",
    "init": "Write a starting recipe for your own data files and teacher, from what the data shows.",
    "export": "Export a saved classifier to ONNX (optionally int8) with its tokenizer, labels and threshold.",
    "predict": "Classify files of notes with a saved student or an export; writes ids, labels and probabilities.",
}

_OVERRIDES = """\
Recipe overrides: every recipe field is `--<section>.<field> VALUE` (or `--<section>.<field>=VALUE`), typed like
the field, e.g. `--student.alpha 0.3 --teacher.num_train_epochs 2 --data.train_size 200 --output_dir runs/x`. Lists
take several values (`--student.from_teacher_layers 0 2 4`), mappings a YAML mapping (`--search.hp_space
'{alpha: [0.1, 0.9]}'`), and `null` unsets an optional field. The teacher and student sections also take every
DistillationTrainingArguments field of their training run (`--student.learning_rate 1e-4`). `hf-kd <command>
--help` lists the fields."""


def _section_lines() -> str:
    from dataclasses import fields

    from .recipe.sections import SECTIONS

    lines = ["Recipe sections and their fields:"]
    for name, cls in SECTIONS.items():
        own = [f.name for f in fields(cls) if f.name != "training"]
        extra = " + every DistillationTrainingArguments field" if name in ("teacher", "student") else ""
        lines.append(f"  {name}: {', '.join(own)}{extra}")
    lines.append("  (top level): output_dir, seed")
    return "\n".join(lines)


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-kd",
        description="Knowledge distillation of text classifiers with Hugging Face transformers.",
        epilog=_OVERRIDES
        + "\n\n"
        + _section_lines()
        + "\n\n--shared-cpu (with any command): for a server whose cores other work uses too (passive OpenMP waits, "
        "half the cores, no onnxruntime spinning).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    for name, text in COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


def build_parser(command: str, training_fields: bool = True) -> Any:
    """
    The parser of one `hf-kd` command: its own options plus every recipe field as `--section.field`.

    Args:
        command (`str`):
            `"distill"`, `"evaluate"` or `"search"`.
        training_fields (`bool`, *optional*, defaults to `True`):
            Include the `DistillationTrainingArguments` fields of the teacher and student sections (they are not
            listed by `--help`, which does without them).

    Returns:
        [`~hf_kd.recipe.config.RecipeParser`]: The parser.
    """
    from .recipe.config import RecipeParser

    usage = {
        "distill": "hf-kd distill RECIPE [--force-unlock] [--section.field VALUE ...]",
        "evaluate": "hf-kd evaluate --model PATH --recipe RECIPE [--split SPLIT] [--side SIDE] [--output FILE] "
        "[--section.field VALUE ...]",
        "search": "hf-kd search RECIPE [--n_trials N] [--n_particles P] [--section.field VALUE ...]",
    }[command]
    parser = RecipeParser(
        training_fields=training_fields,
        prog=f"hf-kd {command}",
        usage=usage,
        description=COMMANDS[command],
        epilog=_OVERRIDES,
    )
    options = parser.add_argument_group(f"{command} options")
    options.add_argument(
        "--debug", action="store_true", help="Show the traceback of an error (by default one `hf-kd: error:` line)."
    )
    if command == "evaluate":
        options.add_argument("--model", required=True, help="Folder (or Hub id) of the classifier and its tokenizer.")
        options.add_argument("--recipe", required=True, help="The recipe YAML file (its data, evaluation sections).")
        options.add_argument("--split", default="validation", help="Split to report (default: validation).")
        options.add_argument(
            "--side",
            default="student",
            choices=("student", "teacher"),
            help="Read the student's text column and max_length, or the teacher's (default: student).",
        )
        options.add_argument("--output", default=None, help="Also write the metrics to this JSON file.")
    else:
        options.add_argument("recipe", help="The recipe YAML file.")
        options.add_argument(
            "--force-unlock",
            dest="force_unlock",
            action="store_true",
            help="Take over the output folder's lock when it was written on another host or cannot be read.",
        )
    if command == "search":
        options.add_argument("--n_trials", type=int, default=None, help="Number of trials (default: search.n_trials).")
        options.add_argument("--n_particles", type=int, default=None, help="Swarm size (default: search.n_particles).")
    return parser


def _init_parser() -> argparse.ArgumentParser:
    from .constants import TASK_TYPES

    parser = argparse.ArgumentParser(prog="hf-kd init", description=COMMANDS["init"], allow_abbrev=False)
    parser.add_argument("--train", required=True, help="The training file (CSV, TSV, JSON Lines or Parquet).")
    parser.add_argument("--validation", default=None, help="The validation file (thresholds, the gate).")
    parser.add_argument("--test", default=None, help="The test file (reported; without labels: predicted).")
    parser.add_argument(
        "--unlabeled", nargs="+", default=None, metavar="FILE", help="Unlabeled text for the transfer set."
    )
    parser.add_argument("--model", required=True, help="The teacher: a local path or a Hub id.")
    parser.add_argument("--text_column", default="text", help="Column the models read (default: text).")
    parser.add_argument("--label_column", default="labels", help="The label column (default: labels).")
    parser.add_argument("--teacher_text_column", default=None, help="Column the teacher reads, if another.")
    parser.add_argument(
        "--problem_type",
        default=None,
        choices=TASK_TYPES,
        help="The task (inferred from the labels by default; two classes are binary).",
    )
    parser.add_argument("--label_delimiter", default=None, help="Separator of several labels in one cell.")
    parser.add_argument("--positive", default=None, help="For two named classes: the positive one.")
    parser.add_argument(
        "--target",
        default="deploy",
        choices=("accurate", "deploy", "smallest"),
        help="The student: accurate (half depth), deploy (2 layers, pruned vocabulary, transfer set, int8 export; "
        "the default) or smallest (deploy at half width, with general distillation).",
    )
    parser.add_argument(
        "--validation_size",
        type=float,
        default=0.1,
        help="Without --validation: the share of train held out as validation (default: 0.1).",
    )
    parser.add_argument("--output", default="recipe.yaml", help="The recipe to write (default: recipe.yaml).")
    parser.add_argument("--force", action="store_true", help="Replace an existing recipe file.")
    parser.add_argument("--debug", action="store_true", help="Show the traceback of an error.")
    return parser


def _init(rest: list[str]) -> int:
    from .recipe.template import starting_recipe, write_starting_recipe

    options = _init_parser().parse_args(rest)
    files = {s: getattr(options, s) for s in ("train", "validation", "test") if getattr(options, s)}
    try:
        recipe, summary = starting_recipe(
            files,
            options.model,
            text_column=options.text_column,
            label_column=options.label_column,
            teacher_text_column=options.teacher_text_column,
            problem_type=options.problem_type,
            label_delimiter=options.label_delimiter,
            positive_label=options.positive,
            unlabeled_files=options.unlabeled,
            target=options.target,
            validation_size=options.validation_size,
        )
        path = write_starting_recipe(options.output, recipe, overwrite=options.force, target=options.target)
    except (ValueError, OSError) as error:
        if options.debug:
            raise
        _fail(str(error))
    print(json.dumps({"recipe": str(path), **summary}, indent=2, ensure_ascii=False))
    return 0


def _export(rest: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hf-kd export", description=COMMANDS["export"], allow_abbrev=False)
    parser.add_argument("model_dir", help="Folder of the saved classifier and its tokenizer (e.g. a run's student).")
    parser.add_argument("--output", required=True, help="Folder to write: model.onnx, tokenizer, hf_kd_export.json.")
    parser.add_argument(
        "--quantize", default=None, choices=("int8",), help="Quantize to dynamic int8 (default: fp32)."
    )
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17).")
    parser.add_argument(
        "--triton",
        default=None,
        metavar="DIR",
        help="Also write a Triton model repository (onnxruntime backend, dynamic batching) in DIR.",
    )
    parser.add_argument("--debug", action="store_true", help="Show the traceback of an error.")
    options = parser.parse_args(rest)
    try:
        from .export.onnx import export_onnx

        info = export_onnx(options.model_dir, options.output, quantize=options.quantize, opset=options.opset)
        if options.triton:
            from .export.serving import write_triton_repository

            info["triton"] = str(write_triton_repository(options.output, options.triton))
    except (ValueError, OSError, ImportError) as error:
        if options.debug:
            raise
        _fail(str(error))
    keys = ("path", "size_mb", "quantize", "task", "label_names", "threshold", "triton")
    print(json.dumps({k: info[k] for k in keys if k in info}, indent=2, ensure_ascii=False))
    return 0


def _predict(rest: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hf-kd predict", description=COMMANDS["predict"], allow_abbrev=False)
    parser.add_argument("model", help="An export folder (hf-kd export) or a saved student (a run's student/model).")
    parser.add_argument("files", nargs="+", metavar="FILE", help="CSV, TSV, JSONL, JSON or Parquet files.")
    parser.add_argument("--output", required=True, help="The predictions: .jsonl, .csv or .parquet.")
    parser.add_argument("--text_column", default="text", help="Column the model reads (default: text).")
    parser.add_argument(
        "--id_column", default=None, help="Column identifying a row (default: id when present, else the row number)."
    )
    parser.add_argument("--logits", action="store_true", help="Also write the logits.")
    parser.add_argument("--batch_size", type=int, default=64, help="Rows per model run (default: 64).")
    parser.add_argument("--chunk_rows", type=int, default=4096, help="Rows held in memory at once (default: 4096).")
    parser.add_argument("--num_threads", type=int, default=None, help="Runtime threads (default: the runtime's).")
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing output file.")
    parser.add_argument("--debug", action="store_true", help="Show the traceback of an error.")
    options = parser.parse_args(rest)
    try:
        from .export.predict import predict_files
        from .processes import leave_process_group

        result = predict_files(
            options.model,
            options.files,
            options.output,
            text_column=options.text_column,
            id_column=options.id_column,
            batch_size=options.batch_size,
            chunk_rows=options.chunk_rows,
            with_logits=options.logits,
            overwrite=options.overwrite,
            num_threads=options.num_threads,
        )
    except (ValueError, OSError, ImportError) as error:
        if options.debug:
            raise
        _fail(str(error))
    _print(json.dumps(result, indent=2))
    leave_process_group()
    return 0


def _print(text: str) -> None:
    from .processes import is_main_process

    if is_main_process():
        print(text, flush=True)


def _fail(message: str) -> None:
    lines = [line for line in str(message).strip().splitlines() if line.strip()]
    print(f"hf-kd: error: {lines[0] if lines else 'unknown error'}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
    """
    Entry point of the `hf-kd` console script.

    Args:
        argv (`Sequence[str]`, *optional*):
            Command-line arguments; defaults to `sys.argv[1:]`.

    Returns:
        `int`: The exit status (0 on success).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if SHARED_CPU_FLAG in args:
        args = [a for a in args if a != SHARED_CPU_FLAG]
        share_cpu()
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        _top_parser().parse_args(args or ["--help"])  # prints the help, or the error naming the unknown command
        return 2  # pragma: no cover - parse_args exits
    command, rest = args[0], args[1:]
    if command == "init":
        return _init(rest)
    if command == "export":
        return _export(rest)
    if command == "predict":
        return _predict(rest)
    if "-h" in rest or "--help" in rest:
        build_parser(command, training_fields=False).parse_args(["--help"])
    from .pipeline.markers import RunLockedError
    from .pipeline.run import QualityGateError
    from .processes import leave_process_group
    from .recipe.config import RecipeError, read_recipe_file

    parser = build_parser(command)
    debug = "--debug" in rest
    config = None
    try:
        options, _ = parser.parse_known_args(rest)
        config = parser.parse_recipe(read_recipe_file(options.recipe), args=rest)
        _run(command, config, options)
    except (RecipeError, RunLockedError, QualityGateError, ValueError, OSError, ImportError) as error:
        # User errors (a recipe, data or model that does not fit, a gate, a busy folder): one line; `--debug` shows
        # the traceback.
        if debug:
            raise
        _fail(_disk_full(error, config) or str(error) or type(error).__name__)
    except Exception as error:
        # A full disk surfaces as the writer's own error (safetensors, torch.save): one line too.
        if debug or (message := _disk_full(error, config)) is None:
            raise
        _fail(message)
    leave_process_group()
    return 0


SHARED_CPU_FLAG = "--shared-cpu"
"""The flag (any command, anywhere on the line) for a server whose cores other work uses too: [`share_cpu`]."""


def share_cpu(threads: int | None = None) -> int:
    """
    Settings for a CPU that other processes use too (`--shared-cpu`): OpenMP waits passively instead of spinning
    (`OMP_WAIT_POLICY=PASSIVE`, read when torch loads: the flag is handled before), torch and OpenMP use half the
    cores, and onnxruntime's threads do not spin (`hf-kd predict`, the latency of an export). With OpenMP's default
    active wait, a training step beside one busy process on a 2-core machine was measured 2.85× slower than alone,
    and 1.75× with these settings (`benchmarks/results/shared_cpu.md`).

    Args:
        threads (`int`, *optional*):
            The thread count; half the cores (at least 1) by default.

    Returns:
        `int`: The thread count set.
    """
    import os

    from .constants import SHARED_CPU_ENV

    threads = threads or max(1, (os.cpu_count() or 2) // 2)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ[SHARED_CPU_ENV] = "1"
    if "torch" in sys.modules:  # already loaded (a caller's import): the wait policy is set, the threads still are
        sys.modules["torch"].set_num_threads(threads)
    return threads


def _disk_full(error: BaseException, config: Any) -> str | None:
    """The one line for a write that failed for lack of space (naming the folder and the space free), else None."""
    import errno
    import shutil
    from pathlib import Path

    text = str(error)
    full = getattr(error, "errno", None) == errno.ENOSPC or any(
        marker in text for marker in ("No space left", "StorageFull", "code: 28", "file write failed")
    )
    if not full:
        return None
    where = Path(getattr(error, "filename", None) or getattr(config, "output_dir", None) or ".")
    existing = next((p for p in (where, *where.parents) if p.exists()), Path("."))
    free_mb = shutil.disk_usage(existing).free / 1e6
    return (
        f"No space left on the device of {str(where)!r} ({free_mb:.0f} MB free there): free some space, then run "
        "the same command again; it resumes from the last complete checkpoint."
    )


def _run(command: str, config: Any, options: argparse.Namespace) -> None:
    if command == "distill":
        from .pipeline.run import run_pipeline

        result = run_pipeline(config, force_unlock=options.force_unlock)
        summary = {k: result[k] for k in ("output_dir", "stages", "student_model")}
        _print(json.dumps(summary, indent=2))
    elif command == "evaluate":
        from .pipeline.scoring import evaluate_model
        from .processes import is_main_process

        metrics = evaluate_model(config, options.model, split=options.split, side=options.side)
        text = json.dumps(metrics, indent=2)
        _print(text)
        if options.output and is_main_process():
            with open(options.output, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
    else:
        from .pipeline.recipe_search import run_search

        best = run_search(
            config, n_trials=options.n_trials, n_particles=options.n_particles, force_unlock=options.force_unlock
        )
        _print(json.dumps({"objective": best.objective, "hyperparameters": best.hyperparameters}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
