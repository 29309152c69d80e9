"""Where containers run: a Docker engine, or plain processes on this machine.

Both implement :class:`Backend`; :func:`byoc.local.choose_backend` picks one.
"""

from .base import Backend as Backend
from .base import HostSpec as HostSpec
from .base import LogSink as LogSink
from .base import ProcessingBackend as ProcessingBackend
from .base import ProcessingHost as ProcessingHost
from .base import ProcessingSpec as ProcessingSpec
from .base import Run as Run
from .base import Server as Server
from .base import ServeSpec as ServeSpec
from .base import TrainSpec as TrainSpec
from .docker import DockerBackend as DockerBackend
from .process import ProcessBackend as ProcessBackend
