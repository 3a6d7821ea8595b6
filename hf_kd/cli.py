"""`hf-kd`: run distillation recipes from the command line.

    hf-kd distill RECIPE.yaml [--section.field VALUE ...]
    hf-kd evaluate --model PATH --recipe RECIPE.yaml [--split validation] [--side student]
    hf-kd search RECIPE.yaml [--n_trials N] [--n_particles P] [--section.field VALUE ...]

Works the same under `accelerate launch -m hf_kd.cli ...`: every process runs the command, only the main process
prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import yaml

from .pipeline import _SECTIONS, DistillationPipelineConfig

__all__ = ["build_parser", "leave_process_group", "main", "parse_overrides"]

_OVERRIDE_HELP = """\
Recipe overrides: every recipe field can be set after the recipe as `--<section>.<field> VALUE` (or
`--<section>.<field>=VALUE`), e.g. `--student.alpha 0.3 --teacher.num_train_epochs 2 --data.train_size 200
--output_dir runs/x`. Values are parsed as YAML (`0.3`, `1e-4`, `[0,2,4]`, `null`, `true`). Flat names are accepted
too and resolved as in a flat recipe: `output_dir`/`seed`, then a data/evaluation/search field, then a student field or
DistillationTrainingArguments field (the distillation's), then `teacher_<field>` / `student_<field>` (e.g.
`--alpha 0.3`, `--teacher_learning_rate 2e-4`). An unknown field is an error naming it.
"""


def _section_help() -> str:
    lines = ["Recipe sections and fields:"]
    for name, section_cls in _SECTIONS.items():
        own = [f.name for f in fields(section_cls) if f.name != "training"]
        extra = (
            " + any DistillationTrainingArguments field" if "training" in {f.name for f in fields(section_cls)} else ""
        )
        lines.append(f"  {name}: {', '.join(own)}{extra}")
    lines.append("  (top level): output_dir, seed")
    return "\n".join(lines)


def parse_overrides(tokens: Sequence[str]) -> dict[str, Any]:
    """
    Parse `--key value` / `--key=value` pairs into a mapping of recipe overrides (values read as YAML).

    Args:
        tokens (`Sequence[str]`):
            The remaining command-line tokens.

    Returns:
        `dict[str, Any]`: Key -> value, in order.

    Raises:
        `ValueError`: On a token that is not `--key`, or a key without a value.
    """
    overrides: dict[str, Any] = {}
    items = list(tokens)
    i = 0
    while i < len(items):
        token = items[i]
        if not token.startswith("--") or len(token) == 2:
            raise ValueError(f"Expected a `--field value` override, got {token!r}.")
        key = token[2:]
        if "=" in key:
            key, _, raw = key.partition("=")
            i += 1
        else:
            if i + 1 >= len(items) or items[i + 1].startswith("--"):
                raise ValueError(f"Override `--{key}` has no value.")
            raw = items[i + 1]
            i += 2
        overrides[key.replace("-", "_") if "." not in key else key] = yaml.safe_load(raw) if raw != "" else ""
    return overrides


def build_parser() -> argparse.ArgumentParser:
    """
    The `hf-kd` argument parser (recipe overrides are parsed separately by [`parse_overrides`]).

    Returns:
        `argparse.ArgumentParser`: The parser.
    """
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="hf-kd",
        description="Knowledge distillation of text classifiers with Hugging Face transformers.",
        epilog=_OVERRIDE_HELP + "\n" + _section_help(),
        formatter_class=formatter,
        allow_abbrev=False,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{distill,evaluate,search}")

    distill = sub.add_parser(
        "distill",
        help="Run (or resume) a distillation recipe: teacher fine-tuning, gate, cached logits, student, report.",
        description=(
            "Run the recipe's stages in order; each writes under OUTPUT_DIR/<stage>/ and a re-run skips the "
            "finished ones (teacher, teacher_eval, teacher_logits, student_warmup, student, evaluation)."
        ),
        epilog=_OVERRIDE_HELP + "\n" + _section_help(),
        formatter_class=formatter,
        allow_abbrev=False,
    )
    distill.add_argument("recipe", help="The recipe YAML file.")

    evaluate = sub.add_parser(
        "evaluate",
        help="Evaluate a saved classifier on a split of a recipe's data, with the pipeline's metrics.",
        description=(
            "Multi-label: the threshold is tuned on the validation split and applied to --split. Prints the metrics "
            "as JSON."
        ),
        epilog=_OVERRIDE_HELP,
        formatter_class=formatter,
        allow_abbrev=False,
    )
    evaluate.add_argument("--model", required=True, help="Folder (or Hub id) of the classifier and its tokenizer.")
    evaluate.add_argument("--recipe", required=True, help="The recipe YAML file (its data and evaluation sections).")
    evaluate.add_argument("--split", default="validation", help="Split to report (default: validation).")
    evaluate.add_argument(
        "--side",
        default="student",
        choices=("student", "teacher"),
        help="Read the student's text column and max_length, or the teacher's (default: student).",
    )
    evaluate.add_argument("--output", default=None, help="Also write the metrics to this JSON file.")

    search = sub.add_parser(
        "search",
        help="Particle-swarm search of the student's distillation hyperparameters (hf_kd.pso).",
        description=(
            "Runs (or reuses) the teacher stages, then DistillationTrainer.hyperparameter_search(backend='pso') over "
            "the recipe's `search.hp_space` ({field: [low, high] | [low, high, 'log'] | [low, high, 'int']}), "
            "maximising eval_<search.metric>. Resumable: state in OUTPUT_DIR/search/pso/. "
            "`--search.backend tpe` or `--search.backend random` searches the same space with Optuna's TPE or random "
            "sampler through Trainer's own optuna backend instead (needs optuna)."
        ),
        epilog=_OVERRIDE_HELP,
        formatter_class=formatter,
        allow_abbrev=False,
    )
    search.add_argument("recipe", help="The recipe YAML file.")
    search.add_argument("--n_trials", type=int, default=None, help="Number of trials (default: search.n_trials).")
    search.add_argument("--n_particles", type=int, default=None, help="Swarm size (default: search.n_particles).")
    return parser


def _print(text: str) -> None:
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(text, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """
    Entry point of the `hf-kd` console script.

    Args:
        argv (`Sequence[str]`, *optional*):
            Command-line arguments; defaults to `sys.argv[1:]`.

    Returns:
        `int`: The exit status (0 on success).
    """
    from .pipeline import evaluate_model, run_pipeline, run_search

    parser = build_parser()
    args, rest = parser.parse_known_args(list(argv) if argv is not None else None)
    try:
        overrides = parse_overrides(rest)
        recipe = args.recipe
        config = DistillationPipelineConfig.from_yaml(recipe, overrides)
    except (ValueError, OSError) as error:
        parser.error(str(error))
    if args.command == "distill":
        result = run_pipeline(config)
        summary = {
            "output_dir": result["output_dir"],
            "stages": result["stages"],
            "student_model": result["student_model"],
        }
        _print(json.dumps(summary, indent=2))
    elif args.command == "evaluate":
        metrics = evaluate_model(config, args.model, split=args.split, side=args.side)
        text = json.dumps(metrics, indent=2)
        _print(text)
        if args.output:
            from accelerate import PartialState

            if PartialState().is_main_process:
                with open(args.output, "w", encoding="utf-8") as handle:
                    handle.write(text + "\n")
    else:
        best = run_search(config, n_trials=args.n_trials, n_particles=args.n_particles)
        _print(json.dumps({"objective": best.objective, "hyperparameters": best.hyperparameters}, indent=2))
    leave_process_group()
    return 0


def leave_process_group() -> None:
    """
    End a multi-process run cleanly: free the DDP-wrapped models, wait for every process, close the process group.

    Call it once, after the last collective, in a script run under `accelerate launch` or `torchrun`; it does nothing
    in a single process. `hf-kd` calls it when a command succeeds.

    Why: a gloo process group that is still open when the interpreter exits can abort the process in a worker thread
    ("terminate called without an active exception"), and a DDP wrapper freed after the group is closed can hang in
    the group's destructor (on CPU with torch 2.13: the abort in about 1 two-process run in 15, the hang once in 40).
    Collecting garbage first frees the wrappers (trainers hold them in reference cycles) while the group is still
    registered; the barrier lets every process finish its last collective; closing the group then joins its worker
    threads.
    """
    import gc

    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
