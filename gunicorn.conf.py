"""For running gunicorn by hand from the repository: the settings live in the package."""

from gateway.gunicorn_conf import *  # noqa: F403
from gateway.gunicorn_conf import child_exit, on_starting  # noqa: F401
