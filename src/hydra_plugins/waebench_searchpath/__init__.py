"""Your own config folders, from the environment: `WAEBENCH_CONFIG_PATH=/a/conf:/b/conf`.

Each folder (separated by ':', os.pathsep; relative to the working directory) joins Hydra's
config search path after waebench's own configs, as `--config-dir` and `hydra.searchpath`
do: a file `<folder>/regularizer/energy.yaml` becomes the option `regularizer=energy` of
`waebench-train` and `waebench-eval`. The built-in options keep their names (an option of the
same name in your folder is not used: give yours new names). Other Hydra apps installed
beside waebench are left alone. See docs/extending.md.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

VARIABLE = "WAEBENCH_CONFIG_PATH"

log = logging.getLogger(__name__)


def config_folders() -> list[Path]:
    """The folders of WAEBENCH_CONFIG_PATH, absolute. A missing one is named in a warning and
    kept: an option asked for and not found then lists the search path, that folder in it."""
    folders = []
    for entry in os.environ.get(VARIABLE, "").split(os.pathsep):
        if not entry.strip():
            continue
        folder = Path(entry).expanduser().absolute()
        if not folder.is_dir():
            log.warning(
                "%s=%s: the config folder '%s' does not exist. Fix: create it, or list only "
                "folders of your own configs (separated by '%s').",
                VARIABLE, os.environ[VARIABLE], folder, os.pathsep,
            )  # fmt: skip
        folders.append(folder)
    return folders


def is_waebench(search_path: ConfigSearchPath) -> bool:
    """Whether the app's primary configs are waebench's (the package's conf/ folder)."""
    spec = importlib.util.find_spec("waebench")
    if spec is None or not spec.submodule_search_locations:
        return False
    configs = (Path(spec.submodule_search_locations[0]) / "conf").resolve()
    return any(
        e.provider == "main" and Path(e.path.removeprefix("file://")).resolve() == configs
        for e in search_path.get_path()
        if e.path
    )


class WaebenchSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if not is_waebench(search_path):
            return
        for folder in config_folders():
            search_path.append(provider=VARIABLE, path=f"file://{folder}")
