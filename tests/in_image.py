r"""Run the build's ``test`` step the way the image runs it: ``make test`` runs the suite this way.

    python -m tests.in_image [EXTRA PYTEST ARGS]

No Docker engine here, so the image's working directory is materialized from the Dockerfile's
own ``COPY`` lines (``tests/image.py``) into a fresh directory, and the ``test`` step's command
from ``cloudbuild.yaml`` runs in it with the step's and the Dockerfile's environment, a private
``/tmp`` and an empty ``HOME``. A module the Dockerfile forgets to copy, or a test that reads a
file the image does not hold, fails here, on every CI run, not first in Cloud Build.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from tests.image import Image
from tests.rehearsal import Build


def run(extra: list[str]) -> int:
    build = Build({"PROJECT_ID": "p", "COMMIT_SHA": "local", "_BUCKET": "b"})
    step = build.steps["test"]
    image = Image()
    if step.get("dir") != image.workdir:
        print(
            f"in_image: the test step runs in {step.get('dir')}, the image's files are in "
            f"{image.workdir}",
            file=sys.stderr,
        )
        return 2
    command = build.command("test")
    with tempfile.TemporaryDirectory(prefix="gan-image-") as root:
        app = image.materialize(os.path.join(root, "app"))
        container_tmp = os.path.join(root, "tmp")  # the container's own /tmp
        home = os.path.join(root, "home")
        os.makedirs(container_tmp)
        os.makedirs(home)
        step_env = dict(item.split("=", 1) for item in step.get("env", []))
        step_env = {
            k: container_tmp + v[len("/tmp") :] if v.startswith("/tmp/") else v
            for k, v in step_env.items()
        }
        env = {**os.environ, **image.env, **step_env, "HOME": home, "TMPDIR": container_tmp}
        print(
            f"in_image: {' '.join(command)} (in {app}, as the image's {image.workdir})", flush=True
        )
        # `python` in the image is its interpreter with the locked dependencies: this one.
        return subprocess.run([sys.executable, *command[1:], *extra], cwd=app, env=env).returncode


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
