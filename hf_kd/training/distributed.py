"""The old path of `hf_kd.processes` (a run's process state is used by the pipeline, the export and the CLI, not by
training), kept so that its imports still work."""

from ..processes import barrier, is_main_process, leave_process_group, on_cpu, start_state, state

__all__ = ["barrier", "is_main_process", "leave_process_group", "on_cpu", "start_state", "state"]
