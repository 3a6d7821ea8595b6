"""The pipeline's push: the final student folder to the Hub, once, when the recipe asks for it.

`hf_kd.pipeline.run_report` writes the card the folder carries; `push_student` still imports from there too.
"""

from __future__ import annotations

from pathlib import Path

from .context import PipelineRun

__all__ = ["push_student"]


def push_student(run: PipelineRun, student_dir: str) -> str | None:
    """
    Push the final student folder (weights in safetensors, tokenizer, the distillation card as `README.md`; not the
    pickled `training_args.bin`) to the Hub, once, when the student section names a `hub_model_id` or sets
    `push_to_hub`.

    Args:
        run ([`~hf_kd.pipeline.context.PipelineRun`]):
            The run.
        student_dir (`str`):
            The student's folder, after its card was written.

    Returns:
        `str` or `None`: The repository id pushed to, or None when the recipe does not ask for a push.
    """
    training = run.config.student.training
    repo_id = training.get("hub_model_id")
    if not repo_id and not training.get("push_to_hub"):
        return None
    from huggingface_hub import HfApi

    api = HfApi()
    repo = api.create_repo(
        repo_id or Path(run.config.output_dir).name,
        token=training.get("hub_token"),
        private=training.get("hub_private_repo"),
        exist_ok=True,
    )
    api.upload_folder(
        repo_id=repo.repo_id,
        folder_path=student_dir,
        commit_message="Distilled student (hf-kd)",
        token=training.get("hub_token"),
        ignore_patterns=["training_args.bin"],  # a pickle of the run's arguments: not part of the model
    )
    return str(repo.repo_id)
