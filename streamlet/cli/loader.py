"""Load a topology script and find its :class:`~streamlet.App`."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from streamlet.errors import ConfigError


def load_app(script: str) -> "object":
    """Run ``script`` (not as ``__main__``) and return the App it builds.

    The App is the module's ``app`` variable, else the only App it defines.
    """
    from streamlet.app import App

    path = Path(script)
    if not path.is_file():
        raise ConfigError(f"script {script!r} does not exist")
    sys.path.insert(0, str(path.parent.resolve()))
    namespace = runpy.run_path(str(path), run_name="__streamlet__")
    app = namespace.get("app")
    if isinstance(app, App):
        return app
    apps = [v for v in namespace.values() if isinstance(v, App)]
    if len(apps) == 1:
        return apps[0]
    if not apps:
        raise ConfigError(f"{script} defines no streamlet App: create one, e.g. app = sl.App('my-app')")
    raise ConfigError(f"{script} defines {len(apps)} Apps: name the one to run `app`")
