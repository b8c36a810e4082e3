"""`python -m waebench.launch.gpu_worker JOB RESULT`: run one pickled Hydra job (from the `gpus`
launcher) and pickle its JobReturn to RESULT. Writes `seen.json` beside RESULT: the GPUs this
process saw, read after the job so that the check itself never initialises CUDA first."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cloudpickle
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import run_job, setup_globals


def devices_seen() -> dict:
    seen = {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return {**seen, "cuda_device_count": 0}
    props = torch.cuda.get_device_properties(0)
    return {
        **seen,
        "cuda_device_count": torch.cuda.device_count(),
        "name": props.name,
        "uuid": str(props.uuid),
    }


def main(job_file: str, result_file: str) -> None:
    hydra_context, config, task_function, singleton_state = cloudpickle.loads(
        Path(job_file).read_bytes()
    )
    setup_globals()
    Singleton.set_state(singleton_state)
    HydraConfig.instance().set_config(config)
    result = run_job(
        hydra_context=hydra_context,
        config=config,
        task_function=task_function,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    (Path(result_file).parent / "seen.json").write_text(json.dumps(devices_seen()))
    Path(result_file).write_bytes(cloudpickle.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:3])
