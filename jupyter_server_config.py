# JupyterLab for this repository: `make lab` (= `jupyter lab --config=jupyter_server_config.py`).
#
# 1. The file browser starts at the repository root, whichever directory `jupyter lab` was started from.
#    (A notebook's kernel still starts in the notebook's own directory; the notebooks move to the root
#    themselves with `siasamrea.pipeline.workspace.enter_root()`.)
# 2. Notebooks under notebooks/ are DVC dependencies of the pipeline's stages and are committed without
#    outputs. JupyterLab autosaves a notebook with its outputs, which would change the file, make the stage
#    `changed deps` and show a git diff. So every save of a notebook under notebooks/ strips what running it
#    adds: outputs, execution counts, widget state, the kernel it ran on and the UI's per-cell state. A
#    notebook saved after running is then byte-identical to the one committed (tests/test_explorer.py,
#    in a real browser). To keep an executed copy, "Save Notebook As…" outside notebooks/ (e.g. runs/).
from pathlib import Path

ROOT = Path(__file__).resolve().parent
STRIPPED_DIR = "notebooks/"
UI_CELL_METADATA = ("execution", "scrolled", "collapsed", "jupyter", "trusted")
KERNEL_METADATA = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}

c = get_config()  # noqa: F821 (defined by traitlets when it loads this file)
c.ServerApp.root_dir = str(ROOT)


def strip_outputs(model, path, contents_manager=None, **kwargs):
    """The ContentsManager pre-save hook: edits ``model["content"]`` (an nbformat dict) in place."""
    if model.get("type") != "notebook" or not path.lstrip("/").startswith(STRIPPED_DIR):
        return
    nb = model["content"]
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        for key in UI_CELL_METADATA:
            cell.get("metadata", {}).pop(key, None)
    meta = nb.setdefault("metadata", {})
    meta.pop("widgets", None)
    # The kernel the notebook last ran on (its display name, Python version, lexer...) is not part of it:
    # papermill runs every stage on the `python3` kernel.
    meta.update(KERNEL_METADATA)


c.ContentsManager.pre_save_hook = strip_outputs
