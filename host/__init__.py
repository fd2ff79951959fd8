"""Host side of the needle pen: the Pen API and the penctl CLI.

``from host import Pen``"""

from host.api import Pen
from host.link import LinkError, PenIncompatible, PenRefused

__all__ = ["Pen", "LinkError", "PenIncompatible", "PenRefused"]
